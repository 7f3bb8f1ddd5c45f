//! `catalog`: parses the command line and runs the command ([`catalog::commands`]).

use std::process::ExitCode;

use catalog::commands;
use catalog::config::{
    BusCommand, Cli, Command, KeysCommand, LogFormat, SnapshotsCommand, UsersCommand,
};
use clap::Parser;

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers across threads, where glibc's malloc spent about 12 % of a command's CPU
/// (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`, `cfree` in a perf profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
            "snapshots",
            "projections",
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("catalog: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Traces (when OTEL_EXPORTER_OTLP_ENDPOINT is set) are exported from the runtime; the
    // guard flushes them before the runtime stops.
    let service = match &cli.command {
        Some(Command::Serve(serve)) => format!("catalog-{}", serve.role.name()),
        _ => "catalog".to_owned(),
    };
    let _traces = {
        let _entered = runtime.enter();
        web::telemetry::init_tracing(cli.log_format == LogFormat::Json, &service)
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
    let engines = cli.engines.to_config();
    match cli.command {
        Some(Command::Serve(args)) => commands::serve(cli.data_dir, engines, *args).await,
        Some(Command::Migrate) => commands::migrate(&engines).await,
        Some(Command::Bus {
            command: BusCommand::Setup { projectors },
        }) => commands::bus_setup(&engines, projectors).await,
        Some(Command::Keys {
            command: KeysCommand::Generate { output },
        }) => commands::keys_generate(&output),
        Some(Command::Keys {
            command:
                KeysCommand::Rotate {
                    key_file,
                    overlap_seconds,
                    force,
                },
        }) => commands::keys_rotate(
            &key_file.unwrap_or_else(|| cli.data_dir.join(catalog::keys::DATA_DIR_KEY_FILE)),
            overlap_seconds,
            force,
        ),
        Some(Command::Seed(args)) => commands::seed(&cli.data_dir, &engines, args).await,
        Some(Command::Users {
            command:
                UsersCommand::Create {
                    email,
                    role,
                    password_stdin,
                },
        }) => {
            let account = commands::NewAccount {
                email,
                role,
                password_stdin,
            };
            commands::users_create(&cli.data_dir, &engines, account).await
        }
        Some(Command::Events { command }) => {
            commands::events(&cli.data_dir, &engines, command).await
        }
        Some(Command::Snapshots {
            command: SnapshotsCommand::Take { min_events },
        }) => commands::snapshots_take(&cli.data_dir, &engines, min_events).await,
        Some(Command::Projections { command }) => {
            catalog::projections_cli::run(&cli.data_dir, &engines, command).await
        }
        // `main` turns a bare `catalog` into `catalog serve --demo`.
        None => anyhow::bail!("no command given; try catalog --help"),
    }
}
