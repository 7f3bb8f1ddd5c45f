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

    #[command(flatten)]
    pub engines: EngineArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the catalog's HTTP services.
    Serve(Box<ServeArgs>),
    /// Append N generated products (and the demo categories they need) to the store.
    Seed(SeedArgs),
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Apply the PostgreSQL migrations of DATABASE_URL (serve also applies them at start).
    Migrate,
    /// Manage what the bus of CATALOG_BUS needs.
    Bus {
        #[command(subcommand)]
        command: BusCommand,
    },
    /// Manage the token signing key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Read the event log (the embedded store under --data-dir, or DATABASE_READ_URL /
    /// DATABASE_URL).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Manage the products' snapshots (the embedded store under --data-dir, or DATABASE_URL).
    Snapshots {
        #[command(subcommand)]
        command: SnapshotsCommand,
    },
    /// The views' parked events: events a view could not apply, held back with the later events
    /// of their product (the embedded database under --data-dir, or DATABASE_URL).
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// How many events each view holds back; with DATABASE_URL, each projector's state,
    /// generation, position, lag and rebuild too (the embedded mode's: GET
    /// /api/admin/projections).
    Status,
    /// List a view's parked events as NDJSON, by position, with the decisions taken on them.
    Parked {
        /// The view: read-model, redis, search or analytics.
        view: String,
    },
    /// Ask the running projector of VIEW to apply the failed event at POSITION again (after a
    /// fix); when it applies, the product's events parked behind it follow in order.
    Retry { view: String, position: u64 },
    /// Ask the running projector of VIEW to pass over the failed event at POSITION (the
    /// decision is recorded); the product's events parked behind it follow.
    Skip { view: String, position: u64 },
    /// Rebuild VIEW blue/green: the running projector builds the next generation from the
    /// event store beside the live one (which keeps serving), then switches readers to it at
    /// once. Waits with a progress bar (rate, ETA) until the switch, read from the projectors'
    /// heartbeats (in PostgreSQL, or in the embedded catalog's database), then prints the
    /// generation and position it switched at.
    Rebuild {
        /// The view: read-model, redis, search or analytics.
        view: String,
        /// Ask and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Ask the running projector of VIEW to stop applying events (they wait on the bus).
    Pause { view: String },
    /// Ask a paused projector of VIEW to apply events again.
    Resume { view: String },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotsCommand {
    /// Write a snapshot now of every product that has at least --min-events events after its
    /// latest snapshot of the current format (after a release that changed the format, or on
    /// a store written without snapshots). Command processes also write them as they go; this
    /// only saves the first command on each product the replay.
    Take {
        /// Skip products with fewer events than this after their latest snapshot.
        #[arg(long, default_value_t = 100)]
        min_events: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the envelopes after a position as NDJSON (one JSON object per line), in log order.
    Tail {
        /// Start after this position (0: from the first event).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep waiting for new events (until Ctrl-C).
        #[arg(long)]
        follow: bool,
    },
    /// Write the events in (--after, --until] to a Parquet file (one row per event; the
    /// columns are the envelope's fields, `data` as JSON text), with a progress bar.
    Export {
        /// Start after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// The last position to include [default: the head of the log at start].
        #[arg(long)]
        until: Option<u64>,
        /// The file to write (replaced only when the export completes).
        #[arg(long)]
        output: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new Ed25519 signing key (PKCS#8 PEM, owner-only) for CATALOG_JWT_KEY_FILE;
    /// refuses to overwrite a file.
    Generate {
        #[arg(long)]
        output: PathBuf,
    },
    /// Rotate the signing key without a restart. The first run stages a next key
    /// (KEY.next), published in the JWKS from then on; run again after --overlap-seconds, it
    /// signs with the staged key and keeps the old one published as KEY.previous until the
    /// rotation after. Running command roles re-read the files within 10 s; verifiers fetch
    /// the JWKS within 5 minutes.
    Rotate {
        /// The signing key [default: CATALOG_JWT_KEY_FILE, else the data dir's key].
        #[arg(long, env = "CATALOG_JWT_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// How old the staged key must be before it signs (the JWKS refresh, 300 s, plus the
        /// access-token lifetime, 900 s).
        #[arg(long, default_value_t = 1200)]
        overlap_seconds: u64,
        /// Promote the staged key however young it is.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Create the Kafka topics (catalog events, shopper analytics), or the SNS topics and one
    /// SQS queue (with its dead-letter queue and subscription) per projector plus the
    /// analytics queue. Safe to run again.
    Setup {
        /// Projector names to create queues for (SNS/SQS); defaults to every projector.
        #[arg(long = "projector")]
        projectors: Vec<String>,
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

    /// Address to listen on [default: 127.0.0.1:8080 for all, 8081 command, 8082 query,
    /// 8083 projectors].
    #[arg(long, env = "CATALOG_LISTEN")]
    pub listen: Option<String>,

    /// Listen with SO_REUSEPORT, so several processes (query-api replicas on one machine)
    /// share the port and the kernel spreads connections between them.
    #[arg(long, env = "CATALOG_REUSE_PORT")]
    pub reuse_port: bool,

    /// Edge caches to purge (Varnish with docker/varnish/catalog.vcl), comma-separated base
    /// URLs: after this process's own caches dropped what an event changed, it sends the edge
    /// `PURGE /` with `xkey-purge: <surrogate keys>` (query and all roles).
    #[arg(long, env = "CATALOG_EDGE_PURGE_URL", value_delimiter = ',')]
    pub edge_purge_url: Vec<String>,

    /// Load demo products when the store is empty.
    #[arg(long, env = "CATALOG_DEMO")]
    pub demo: bool,

    /// How many demo products `--demo` loads.
    #[arg(long, env = "CATALOG_DEMO_PRODUCTS", default_value_t = 3000)]
    pub demo_products: usize,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub analysts: AnalystArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What one client may hold and send (README, "Security").
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Proxies (CIDRs or addresses, comma-separated) whose Forwarded / X-Forwarded-For names
    /// the client; they are also exempt from the per-address connection cap. Unset: the client
    /// is the TCP peer.
    #[arg(long, env = "CATALOG_TRUSTED_PROXIES", default_value = "", value_parser = parse_proxies)]
    pub trusted_proxies: web::client::TrustedProxies,
    /// Logins and token refreshes per client (N/s, N/min, N/h or off).
    #[arg(long, env = "CATALOG_RATE_LIMIT_AUTH", default_value = "30/min", value_parser = parse_rate)]
    pub rate_limit_auth: RateSetting,
    /// Writes (every method but GET and HEAD) per client.
    #[arg(long, env = "CATALOG_RATE_LIMIT_WRITES", default_value = "100/s", value_parser = parse_rate)]
    pub rate_limit_writes: RateSetting,
    /// Reads per client (in each query process).
    #[arg(long, env = "CATALOG_RATE_LIMIT_READS", default_value = "1000/s", value_parser = parse_rate)]
    pub rate_limit_reads: RateSetting,
    /// Open connections per process; more get 503 and are closed.
    #[arg(long, env = "CATALOG_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Open connections per client address (0: no cap; trusted proxies are exempt).
    #[arg(
        long,
        env = "CATALOG_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 512
    )]
    pub max_connections_per_address: usize,
    /// Seconds within which a request's headers must arrive.
    #[arg(long, env = "CATALOG_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_seconds: u64,
    /// Seconds after which a connection on which nothing moved is closed.
    #[arg(long, env = "CATALOG_IDLE_TIMEOUT_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_seconds: u64,
    /// Seconds between SIGTERM and closing the listener, with `/readyz` answering 503
    /// `draining` and requests still served, so a balancer takes this process out before it
    /// stops accepting [default: 0 for the all-in-one role, 5 for a split role, which runs
    /// behind a balancer]. In-flight requests then finish (up to 30 s).
    #[arg(long, env = "CATALOG_DRAIN_SECONDS", value_parser = clap::value_parser!(u64).range(0..=300))]
    pub drain_seconds: Option<u64>,
}

/// A rate limit setting (`None`: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSetting(pub Option<web::rate_limit::Rate>);

fn parse_rate(text: &str) -> Result<RateSetting, String> {
    web::rate_limit::Rate::parse(text).map(RateSetting)
}

fn parse_proxies(text: &str) -> Result<web::client::TrustedProxies, String> {
    web::client::TrustedProxies::parse(text)
}

impl LimitArgs {
    pub fn to_config(&self, role: Role) -> super::LimitsConfig {
        let drain_seconds = self.drain_seconds.unwrap_or(match role {
            Role::All => 0,
            _ => 5,
        });
        super::LimitsConfig {
            drain_delay: std::time::Duration::from_secs(drain_seconds),
            rates: web::rate_limit::RateLimits {
                auth: self.rate_limit_auth.0,
                writes: self.rate_limit_writes.0,
                reads: self.rate_limit_reads.0,
            },
            connections: web::server::ConnectionLimits {
                max_connections: self.max_connections.max(1),
                per_address: self.max_connections_per_address,
                header_timeout: std::time::Duration::from_secs(self.header_timeout_seconds),
                idle_timeout: std::time::Duration::from_secs(self.idle_timeout_seconds),
                exempt: self.trusted_proxies.clone(),
                ..web::server::ConnectionLimits::default()
            },
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }
}

/// The analysts' side of query-api.
#[derive(Debug, Clone, Args)]
pub struct AnalystArgs {
    /// Events the live ring of /api/events/stream holds; a stream that falls further behind
    /// is ended with a `dropped` event (it resumes with Last-Event-ID).
    #[arg(long, env = "CATALOG_SSE_RING", default_value_t = 4096)]
    pub sse_ring: usize,
    /// Seconds between keep-alive comments on an idle event stream.
    #[arg(long, env = "CATALOG_SSE_KEEP_ALIVE_SECONDS", default_value_t = 15)]
    pub sse_keep_alive_seconds: u64,
    /// Event streams one user may hold open at once (more: 429).
    #[arg(long, env = "CATALOG_SSE_STREAMS_PER_USER", default_value_t = 4)]
    pub sse_streams_per_user: usize,
    /// Record shopper analytics (ProductViewed, SearchPerformed): `true` or `false`.
    #[arg(long, env = "CATALOG_ANALYTICS_CAPTURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub analytics_capture: bool,
    /// Analytics events queued before new ones are dropped (and counted).
    #[arg(long, env = "CATALOG_ANALYTICS_QUEUE", default_value_t = 10_000)]
    pub analytics_queue: usize,
}

impl Role {
    /// The role's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Command => "command",
            Role::Query => "query",
            Role::Projectors => "projectors",
        }
    }

    /// The address a role listens on unless told otherwise (API.md: split roles 8081–8083).
    pub fn default_listen(self) -> &'static str {
        match self {
            Role::All => "127.0.0.1:8080",
            Role::Command => "127.0.0.1:8081",
            Role::Query => "127.0.0.1:8082",
            Role::Projectors => "127.0.0.1:8083",
        }
    }
}

/// Engines of the distributed mode. Unset: the embedded default.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// PostgreSQL primary (postgres://…): event store, outbox, users, sessions, read model.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// PostgreSQL the query side reads the read model from (a streaming replica); default
    /// DATABASE_URL.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true, global = true)]
    pub database_read_url: Option<String>,
    /// Connections per PostgreSQL pool of this process.
    #[arg(
        long,
        env = "CATALOG_DATABASE_POOL_SIZE",
        default_value_t = 16,
        global = true
    )]
    pub database_pool_size: u32,
    /// Bus: kafka://host:9092[,…][?topic=&partitions=&replication=] or
    /// sns+sqs://[host:port][?region=&topic=&queue_prefix=]. Needs DATABASE_URL (the outbox).
    /// Unset with DATABASE_URL: projectors poll the event store itself.
    #[arg(long, env = "CATALOG_BUS", global = true)]
    pub bus: Option<String>,
    /// Redis views, caches and sessions: redis://host:6379[?prefix=] or
    /// redis+cluster://host:7000,host:7001[?prefix=]. Needs DATABASE_URL.
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,
    /// While the read replica is down, read from the primary (`primary`) or answer 503
    /// (`none`).
    #[arg(long, env = "CATALOG_READ_FALLBACK", value_enum, default_value_t = ReadFallback::None, global = true)]
    pub read_fallback: ReadFallback,
    /// Search engine: opensearch://…
    #[arg(long, env = "CATALOG_SEARCH", global = true)]
    pub search: Option<String>,
    /// Uploaded product images: s3://bucket[?endpoint=http://host:port&region=&public_url=]
    /// (the bucket must exist and let shoppers read; public_url: a CDN in front of it). Unset:
    /// under the data dir, served at /images/.
    #[arg(long, env = "CATALOG_IMAGES", global = true)]
    pub images: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ReadFallback {
    /// Answer 503 with Retry-After.
    #[default]
    None,
    /// Read from the primary.
    Primary,
}

#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// PEM (PKCS#8) Ed25519 private key that signs access tokens. Unset: one is generated
    /// once under the data dir and reused (replicas on other machines need this file, or
    /// CATALOG_JWKS_URL for the roles that only verify).
    #[arg(long, env = "CATALOG_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,
    /// Where roles that only verify tokens fetch the public keys
    /// (http://command-api/.well-known/jwks.json).
    #[arg(long, env = "CATALOG_JWKS_URL")]
    pub jwks_url: Option<String>,
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
