use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context};
use auth::Role as UserRole;
use catalog::config::{Cli, Command, LogFormat, Role, ServeArgs, UsersCommand};
use catalog::startup::{seed_products, shutdown_signal, Application, Engines, ServeConfig};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let names_a_command = args.iter().skip(1).any(|arg| {
        [
            "serve",
            "seed",
            "users",
            "help",
            "--help",
            "-h",
            "--version",
            "-V",
        ]
        .iter()
        .any(|name| arg == name)
    });
    if !names_a_command {
        // `catalog [flags]` is `catalog serve --demo [flags]`.
        args.splice(1..1, ["serve".into(), "--demo".into()]);
    }
    let cli = Cli::parse_from(args);
    web::telemetry::init_tracing(cli.log_format == LogFormat::Json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("catalog: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("catalog: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Serve(args)) => serve(cli.data_dir, args).await,
        Some(Command::Seed(args)) => {
            let engines = Engines::open(&cli.data_dir).await?;
            let seed = args.seed.unwrap_or_else(rand::random);
            let bar = ProgressBar::new(args.products as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} products {per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let started = std::time::Instant::now();
            seed_products(&engines.commands, seed, args.products, |done| {
                bar.inc(done as u64)
            })
            .await?;
            bar.finish();
            let head = engines.store.head().await?;
            println!(
                "added {} products in {:.1} s (seed {seed}); the store is at position {head}",
                args.products,
                started.elapsed().as_secs_f64()
            );
            engines.database.close().await;
            Ok(())
        }
        Some(Command::Users {
            command:
                UsersCommand::Create {
                    email,
                    role,
                    password_stdin,
                },
        }) => {
            let role = UserRole::parse(&role).context("role must be admin, analyst or shopper")?;
            command_api::routes::auth::check_email(&email)
                .map_err(|message| anyhow::anyhow!("--email {message}"))?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (auth::tokens::new_password(), true)
            };
            command_api::routes::auth::check_password(&password)
                .map_err(|message| anyhow::anyhow!("the password {message}"))?;
            let engines = Engines::open(&cli.data_dir).await?;
            let users = engines.database.user_store();
            let user = command_api::routes::auth::create_account(&users, &email, &password, role)
                .await
                .map_err(|problem| anyhow::anyhow!("{}", problem.detail))?;
            println!("created {} ({}) with id {}", user.email, user.role, user.id);
            if generated {
                println!("password: {password}");
            }
            engines.database.close().await;
            Ok(())
        }
        // `main` turns a bare `catalog` into `catalog serve --demo`.
        None => bail!("no command given; try catalog --help"),
    }
}

async fn serve(data_dir: std::path::PathBuf, args: ServeArgs) -> anyhow::Result<()> {
    let configured = args.engines.configured();
    if !configured.is_empty() {
        bail!(
            "{} set, but this build runs only the embedded mode so far; unset {} to run it",
            configured.join(", "),
            if configured.len() == 1 { "it" } else { "them" }
        );
    }
    if args.role != Role::All {
        bail!(
            "--role {:?} needs the distributed engines (DATABASE_URL and CATALOG_BUS), which this build does not have yet; use --role all",
            args.role
        );
    }
    let config = ServeConfig {
        listen: args.listen,
        data_dir,
        demo_products: args.demo.then_some(args.demo_products),
        jwt_key_file: args.auth.jwt_key_file,
        admin_email: args.auth.admin_email,
        admin_password: args.auth.admin_password,
        access_token_ttl_seconds: args.auth.access_token_ttl_seconds,
    };
    let application = Application::build(config).await?;
    application.run_until_stopped(shutdown_signal()).await
}
