use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context};
use auth::Role as UserRole;
use catalog::config::{
    BusCommand, Cli, Command, EventsCommand, KeysCommand, LogFormat, ServeArgs, UsersCommand,
};
use catalog::startup::{
    migrate, seed_products, shutdown_signal, Application, EngineConfig, Engines, ServeConfig,
    ANALYTICS_EVENTS, PROJECTORS,
};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let names_a_command = args.iter().skip(1).any(|arg| {
        [
            "serve",
            "seed",
            "users",
            "migrate",
            "bus",
            "keys",
            "events",
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
    let engine_config = cli.engines.to_config();
    match cli.command {
        Some(Command::Serve(args)) => serve(cli.data_dir, engine_config, args).await,
        Some(Command::Migrate) => {
            let Some(url) = &engine_config.database_url else {
                bail!(
                    "DATABASE_URL is not set: the embedded mode migrates its SQLite file at start"
                );
            };
            let database = event_store::postgres::PostgresDatabase::connect(url, 2)
                .await
                .map_err(|error| anyhow::anyhow!("DATABASE_URL: {error}"))?;
            migrate(&database).await?;
            println!("migrations applied");
            database.close().await;
            Ok(())
        }
        Some(Command::Bus {
            command: BusCommand::Setup { projectors },
        }) => bus_setup(&engine_config, projectors).await,
        Some(Command::Keys {
            command: KeysCommand::Generate { output },
        }) => {
            if output.exists() {
                bail!("{} exists; not overwriting a signing key", output.display());
            }
            auth::TokenSigner::load_or_create(&output, true, 900)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!("wrote a new Ed25519 signing key to {}", output.display());
            Ok(())
        }
        Some(Command::Seed(args)) => {
            let engines = Engines::open(&cli.data_dir, &engine_config).await?;
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
            engines.close().await;
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
            command_api::accounts::check_email(&email)
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
            command_api::accounts::check_password(&password)
                .map_err(|message| anyhow::anyhow!("the password {message}"))?;
            let engines = Engines::open(&cli.data_dir, &engine_config).await?;
            let users = engines.users();
            let user =
                command_api::accounts::create_account(users.as_ref(), &email, &password, role)
                    .await?;
            println!("created {} ({}) with id {}", user.email, user.role, user.id);
            if generated {
                println!("password: {password}");
            }
            engines.close().await;
            Ok(())
        }
        Some(Command::Events { command }) => {
            let store = catalog::events_cli::open_store(&cli.data_dir, &engine_config).await?;
            match command {
                EventsCommand::Tail { after, follow } => {
                    let mut out = std::io::BufWriter::new(std::io::stdout());
                    let tailed =
                        catalog::events_cli::tail(store.as_ref(), after, follow, &mut out, async {
                            let _ = tokio::signal::ctrl_c().await;
                        })
                        .await;
                    match tailed {
                        Ok(_) => Ok(()),
                        // The reader went away (`| head`): not an error of ours.
                        Err(error)
                            if error.downcast_ref::<std::io::Error>().is_some_and(|error| {
                                error.kind() == std::io::ErrorKind::BrokenPipe
                            }) =>
                        {
                            Ok(())
                        }
                        Err(error) => Err(error),
                    }
                }
                EventsCommand::Export {
                    after,
                    until,
                    output,
                } => {
                    let until = match until {
                        Some(until) => until,
                        None => store.head().await?,
                    };
                    let bar = ProgressBar::new(until.saturating_sub(after));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{bar:40} {pos}/{len} events {per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    let exported = catalog::events_cli::export(
                        store.as_ref(),
                        after,
                        until,
                        &output,
                        |done| bar.set_position(done),
                    )
                    .await?;
                    bar.finish();
                    let seconds = exported.elapsed.as_secs_f64();
                    println!(
                        "exported {} events (positions {}..={}) to {} in {seconds:.2} s ({:.0} events/s)",
                        exported.events,
                        after + 1,
                        exported.last,
                        output.display(),
                        exported.events as f64 / seconds.max(1e-9)
                    );
                    Ok(())
                }
            }
        }
        // `main` turns a bare `catalog` into `catalog serve --demo`.
        None => bail!("no command given; try catalog --help"),
    }
}

async fn serve(
    data_dir: std::path::PathBuf,
    engines: EngineConfig,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let config = ServeConfig {
        role: args.role,
        listen: args
            .listen
            .unwrap_or_else(|| args.role.default_listen().to_owned()),
        data_dir,
        demo_products: args.demo.then_some(args.demo_products),
        jwt_key_file: args.auth.jwt_key_file,
        jwks_url: args.auth.jwks_url.filter(|url| !url.is_empty()),
        admin_email: args.auth.admin_email,
        admin_password: args.auth.admin_password,
        access_token_ttl_seconds: args.auth.access_token_ttl_seconds,
        engines,
        reuse_port: args.reuse_port,
        analysts: args.analysts.to_config(),
    };
    let application = Application::build(config).await?;
    application.run_until_stopped(shutdown_signal()).await
}

async fn bus_setup(engines: &EngineConfig, projectors: Vec<String>) -> anyhow::Result<()> {
    let Some(url) = &engines.bus_url else {
        bail!("CATALOG_BUS is not set: name the bus to set up (kafka://… or sns+sqs://…)");
    };
    let bus = bus::ConfiguredBus::connect(url)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let names: Vec<&str> = if projectors.is_empty() {
        PROJECTORS.to_vec()
    } else {
        projectors.iter().map(String::as_str).collect()
    };
    let report = bus
        .setup(&names)
        .await
        .map_err(|error| anyhow::anyhow!("CATALOG_BUS: {error}"))?;
    for line in report {
        println!("{line}");
    }
    for line in bus
        .setup_analytics(ANALYTICS_EVENTS)
        .await
        .map_err(|error| anyhow::anyhow!("CATALOG_BUS: {error}"))?
    {
        println!("{line}");
    }
    Ok(())
}
