//! The command line: flags and environment variables agree (every flag has `env = …`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// Catalog: an event-driven CQRS product catalog.
///
/// Without a command, runs `serve --demo`: the embedded all-in-one catalog on 127.0.0.1:8080
/// with demo products, data under ./data.
#[derive(Debug, Parser)]
#[command(name = "catalog", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Where the embedded mode keeps its data (event store, users, signing key).
    #[arg(
        long,
        env = "CATALOG_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Log format.
    #[arg(long, env = "CATALOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the catalog's HTTP services.
    Serve(ServeArgs),
    /// Append N generated products (and the demo categories they need) to the store.
    Seed(SeedArgs),
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Everything in one process.
    All,
    /// command-api only.
    Command,
    /// query-api only.
    Query,
    /// Projector workers only.
    Projectors,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Which part of the catalog this process runs.
    #[arg(long, env = "CATALOG_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,

    /// Address to listen on.
    #[arg(long, env = "CATALOG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Load demo products when the store is empty.
    #[arg(long, env = "CATALOG_DEMO")]
    pub demo: bool,

    /// How many demo products `--demo` loads.
    #[arg(long, env = "CATALOG_DEMO_PRODUCTS", default_value_t = 3000)]
    pub demo_products: usize,

    #[command(flatten)]
    pub engines: EngineArgs,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Engines of the distributed mode. Unset: the embedded default.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// Event store (PostgreSQL primary).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Read model replica.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,
    /// Bus: kafka://… or sns+sqs://…
    #[arg(long, env = "CATALOG_BUS")]
    pub bus: Option<String>,
    /// Redis views and caches.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Search engine: opensearch://…
    #[arg(long, env = "CATALOG_SEARCH")]
    pub search: Option<String>,
}

impl EngineArgs {
    /// The names of the engine variables that are set.
    pub fn configured(&self) -> Vec<&'static str> {
        [
            ("DATABASE_URL", &self.database_url),
            ("DATABASE_READ_URL", &self.database_read_url),
            ("CATALOG_BUS", &self.bus),
            ("REDIS_URL", &self.redis_url),
            ("CATALOG_SEARCH", &self.search),
        ]
        .into_iter()
        .filter(|(_, value)| value.as_deref().is_some_and(|text| !text.is_empty()))
        .map(|(name, _)| name)
        .collect()
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// PEM (PKCS#8) Ed25519 private key that signs access tokens. Unset in the embedded mode:
    /// one is generated once under the data dir and reused.
    #[arg(long, env = "CATALOG_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,
    /// The first admin's email (created at start when missing).
    #[arg(long, env = "CATALOG_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// The first admin's password.
    #[arg(long, env = "CATALOG_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,
    /// Lifetime of access tokens.
    #[arg(long, env = "CATALOG_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900)]
    pub access_token_ttl_seconds: i64,
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// How many products to add.
    #[arg(long)]
    pub products: usize,
    /// Seed of the generator (the same seed on an empty store gives the same catalog).
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. The password is read from standard input with --password-stdin;
    /// otherwise one is generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "analyst", "shopper"])]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}
