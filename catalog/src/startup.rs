//! Builds the application for one role (or all of them): engines, projectors, routes,
//! listener. Tests spawn it on port 0 (`Application::build` binds; `port()` tells where).
//!
//! Engines come from configuration only:
//! - no `DATABASE_URL`: the embedded mode (SQLite event store, in-process bus, in-memory read
//!   model), role `all` only;
//! - `DATABASE_URL`: the PostgreSQL event store, users, sessions, idempotency keys and read
//!   model; with `CATALOG_BUS` the store writes an outbox and the command role relays it to
//!   Kafka or SNS/SQS, without it projectors follow the event store itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use auth::limiter::FailedLoginLimiter;
use auth::{Role as UserRole, TokenSigner, TokenVerifier};
use axum::routing::get;
use axum::Router;
use bus::ConfiguredBus;
use command_api::accounts::{SessionStore, UserStore};
use command_api::aggregate::ProductCommand;
use command_api::idempotency::IdempotencyStore;
use command_api::service::CommandService;
use command_api::CommandState;
use event_store::outbox::OutboxRelay;
use event_store::postgres::PostgresDatabase;
use event_store::sqlite::SqliteDatabase;
use events::analytics::Observation;
use events::bus::{EventBus, InProcessBus};
use events::store::EventStore;
use events::EventMetadata;
use projectors::analytics::{AnalyticsView, MemoryAnalytics, RedisAnalytics};
use projectors::read_model::postgres::{PostgresReadModel, PostgresReadModelProjection};
use projectors::read_model::{CatalogReadModel, MemoryReadModel};
use projectors::runner::Projector;
use query_api::analytics::{AnalyticsSink, Capture, ViewSink};
use query_api::events_api::{EventFeed, FeedConfig};
use query_api::QueryState;
use search::opensearch_index::OpenSearchIndex;
use search::projection::SearchProjection;
use search::tantivy_index::TantivyIndex;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use utoipa_scalar::{Scalar, Servable};
use web::ops::{Readiness, ReadinessCheck};

use crate::admin::{self, AdminState, StatusSource};
use crate::config::Role;
use crate::demo;

/// The projectors this build can run, by name (the consumer group / queue of each).
pub const PROJECTORS: [&str; 4] = [READ_MODEL, REDIS_VIEWS, SEARCH, ANALYTICS];
pub const READ_MODEL: &str = "read-model";
pub const REDIS_VIEWS: &str = "redis";
pub const SEARCH: &str = "search";
/// The analytics view in Redis (sales and categories from the catalog stream).
pub const ANALYTICS: &str = "analytics";
/// The consumer counting the shopper analytics stream into that view: Kafka consumer group
/// `catalog.analytics-events` (a group of its own, as it reads another topic), SQS queue
/// `<queue_prefix>analytics-events`.
pub const ANALYTICS_EVENTS: &str = "analytics-events";

/// The engines, as configured (empty values already read as unset).
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub database_url: Option<String>,
    pub database_read_url: Option<String>,
    pub database_pool_size: u32,
    pub bus_url: Option<String>,
    pub redis_url: Option<String>,
    pub search_url: Option<String>,
    /// Where reads go while the replica is down: the primary, or nowhere (503).
    pub read_fallback_to_primary: bool,
}

impl EngineConfig {
    /// Refuses combinations that cannot work, with one line saying why.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.redis_url {
            redis_client::RedisConfig::from_url(url).map_err(|error| anyhow::anyhow!(error))?;
            if self.database_url.is_none() {
                bail!("REDIS_URL needs DATABASE_URL: the embedded mode keeps its views in memory");
            }
        }
        if let Some(url) = &self.search_url {
            search::opensearch_index::endpoint(url).map_err(|error| anyhow::anyhow!("{error}"))?;
            if self.database_url.is_none() {
                bail!("CATALOG_SEARCH needs DATABASE_URL: the embedded mode searches with its own index");
            }
        }
        if self.database_url.is_none() {
            if self.bus_url.is_some() {
                bail!("CATALOG_BUS needs DATABASE_URL: the outbox that feeds the bus lives in PostgreSQL");
            }
            if self.database_read_url.is_some() {
                bail!("DATABASE_READ_URL needs DATABASE_URL (the primary the projectors write to)");
            }
        }
        for (name, url) in [
            ("DATABASE_URL", &self.database_url),
            ("DATABASE_READ_URL", &self.database_read_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    bail!("{name} must be a postgres:// URL");
                }
            }
        }
        Ok(())
    }

    pub fn is_distributed(&self) -> bool {
        self.database_url.is_some()
    }
}

/// What `serve` needs, already parsed.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub role: Role,
    pub listen: String,
    pub data_dir: PathBuf,
    pub demo_products: Option<usize>,
    pub jwt_key_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
    pub access_token_ttl_seconds: i64,
    pub engines: EngineConfig,
    /// Listen with SO_REUSEPORT (several processes on one port).
    pub reuse_port: bool,
    pub analysts: AnalystConfig,
}

/// The analysts' side of query-api.
#[derive(Debug, Clone)]
pub struct AnalystConfig {
    /// Envelopes the live ring of `/api/events/stream` holds.
    pub sse_ring: usize,
    pub sse_keep_alive: Duration,
    /// Record `ProductViewed` and `SearchPerformed`.
    pub capture: bool,
    /// Analytics events queued before new ones are dropped.
    pub capture_queue: usize,
}

impl Default for AnalystConfig {
    fn default() -> Self {
        AnalystConfig {
            sse_ring: 4096,
            sse_keep_alive: Duration::from_secs(15),
            capture: true,
            capture_queue: 10_000,
        }
    }
}

impl ServeConfig {
    /// Embedded defaults under `data_dir`, listening on `listen`.
    pub fn embedded(data_dir: PathBuf, listen: &str) -> Self {
        ServeConfig {
            role: Role::All,
            listen: listen.to_owned(),
            data_dir,
            demo_products: None,
            jwt_key_file: None,
            jwks_url: None,
            admin_email: None,
            admin_password: None,
            access_token_ttl_seconds: 900,
            engines: EngineConfig {
                database_pool_size: 16,
                ..EngineConfig::default()
            },
            reuse_port: false,
            analysts: AnalystConfig::default(),
        }
    }
}

/// Where the write side keeps its state.
#[derive(Clone)]
pub enum Storage {
    Sqlite(SqliteDatabase),
    Postgres(PostgresDatabase),
}

/// The engines of one process, opened from configuration.
pub struct Engines {
    pub storage: Storage,
    /// Redis, when `REDIS_URL` is set.
    pub redis: Option<(
        Arc<redis_client::RedisConfig>,
        redis_client::RedisConnection,
    )>,
    pub store: Arc<dyn EventStore>,
    /// What projectors in this process subscribe to.
    pub bus: Arc<dyn EventBus>,
    /// The external bus, when `CATALOG_BUS` is set (the relay publishes to it).
    pub configured_bus: Option<ConfiguredBus>,
    pub commands: Arc<CommandService>,
}

impl Engines {
    pub async fn open(data_dir: &Path, config: &EngineConfig) -> anyhow::Result<Self> {
        config.check()?;
        match &config.database_url {
            None => Self::open_embedded(data_dir).await,
            Some(url) => Self::open_distributed(url, config).await,
        }
    }

    async fn open_embedded(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        let path = data_dir.join("catalog.db");
        let database = SqliteDatabase::open(&path)
            .await
            .with_context(|| format!("cannot open the event store at {}", path.display()))?;
        let store: Arc<dyn EventStore> = Arc::new(database.event_store());
        let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(store.clone()));
        let commands = Arc::new(CommandService::new(store.clone(), Some(bus.clone())));
        Ok(Engines {
            storage: Storage::Sqlite(database),
            redis: None,
            store,
            bus,
            configured_bus: None,
            commands,
        })
    }

    async fn open_distributed(url: &str, config: &EngineConfig) -> anyhow::Result<Self> {
        let database = PostgresDatabase::connect(url, config.database_pool_size)
            .await
            .map_err(|error| anyhow::anyhow!("DATABASE_URL: {error}"))?;
        migrate(&database).await?;
        let configured_bus = match &config.bus_url {
            Some(url) => Some(
                ConfiguredBus::connect(url)
                    .await
                    .map_err(|error| anyhow::anyhow!("{error}"))?,
            ),
            None => None,
        };
        let (store, bus, commands) = match &configured_bus {
            Some(configured) => {
                // The store writes an outbox; the relay (command role) publishes it.
                let store: Arc<dyn EventStore> = Arc::new(database.event_store(true));
                let commands = Arc::new(CommandService::new(store.clone(), None));
                (store, configured.bus(), commands)
            }
            None => {
                // No bus: projectors follow the event store (polling it, plus live hand-offs
                // within this process).
                let store: Arc<dyn EventStore> = Arc::new(database.event_store(false));
                let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::with_poll_interval(
                    store.clone(),
                    Duration::from_millis(100),
                ));
                let commands = Arc::new(CommandService::new(store.clone(), Some(bus.clone())));
                (store, bus, commands)
            }
        };
        let redis = match &config.redis_url {
            Some(url) => {
                let redis_config = Arc::new(
                    redis_client::RedisConfig::from_url(url)
                        .map_err(|error| anyhow::anyhow!(error))?,
                );
                let connection = redis_client::RedisConnection::connect(&redis_config)
                    .await
                    .map_err(|error| anyhow::anyhow!("REDIS_URL: {error}"))?;
                Some((redis_config, connection))
            }
            None => None,
        };
        Ok(Engines {
            storage: Storage::Postgres(database),
            redis,
            store,
            bus,
            configured_bus,
            commands,
        })
    }

    pub fn users(&self) -> Arc<dyn UserStore> {
        match &self.storage {
            Storage::Sqlite(database) => Arc::new(
                command_api::accounts::sqlite::SqliteUserStore::new(database.clone()),
            ),
            Storage::Postgres(database) => Arc::new(
                command_api::accounts::postgres::PostgresUserStore::new(database.pool().clone()),
            ),
        }
    }

    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        if let Some((config, connection)) = &self.redis {
            return Arc::new(command_api::accounts::redis::RedisSessionStore::new(
                config.clone(),
                connection.clone(),
            ));
        }
        match &self.storage {
            Storage::Sqlite(database) => Arc::new(
                command_api::accounts::sqlite::SqliteSessionStore::new(database.clone()),
            ),
            Storage::Postgres(database) => Arc::new(
                command_api::accounts::postgres::PostgresSessionStore::new(database.pool().clone()),
            ),
        }
    }

    pub fn idempotency(&self) -> Arc<dyn IdempotencyStore> {
        match &self.storage {
            Storage::Sqlite(database) => Arc::new(
                command_api::idempotency::sqlite::SqliteIdempotencyStore::new(database.clone()),
            ),
            Storage::Postgres(database) => Arc::new(
                command_api::idempotency::postgres::PostgresIdempotencyStore::new(
                    database.pool().clone(),
                ),
            ),
        }
    }

    pub fn postgres(&self) -> Option<&PostgresDatabase> {
        match &self.storage {
            Storage::Postgres(database) => Some(database),
            Storage::Sqlite(_) => None,
        }
    }

    pub async fn close(&self) {
        match &self.storage {
            Storage::Sqlite(database) => database.close().await,
            Storage::Postgres(database) => database.close().await,
        }
    }
}

/// Applies every component's PostgreSQL migrations (`catalog migrate`, and every start).
pub async fn migrate(database: &PostgresDatabase) -> anyhow::Result<()> {
    database
        .migrate()
        .await
        .map_err(|error| anyhow::anyhow!("DATABASE_URL: {error}"))?;
    projectors::read_model::postgres::migrate(database.pool())
        .await
        .map_err(|error| anyhow::anyhow!("DATABASE_URL: {error}"))?;
    Ok(())
}

/// The metadata of events the binary writes itself (demo data, seeding).
pub fn system_metadata(purpose: &str) -> EventMetadata {
    EventMetadata {
        actor: Some("system".to_owned()),
        correlation_id: Some(purpose.to_owned()),
        causation_id: None,
    }
}

/// Creates the demo categories that do not exist yet.
pub async fn ensure_demo_categories(commands: &CommandService) -> anyhow::Result<()> {
    for category in demo::categories() {
        match commands
            .create_category(category, system_metadata("demo-categories"))
            .await
        {
            Ok(_) | Err(command_api::service::CommandError::DuplicateCategory(_)) => {}
            Err(error) => return Err(error).context("cannot create the demo categories"),
        }
    }
    Ok(())
}

/// Appends `count` generated products in batches, calling `progress` after each batch.
pub async fn seed_products(
    commands: &CommandService,
    seed: u64,
    count: usize,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<()> {
    ensure_demo_categories(commands).await?;
    let products = demo::products(seed, count);
    let sales = demo::sales(seed, &products);
    let with_sales: Vec<(events::ProductCreated, Vec<ProductCommand>)> = products
        .into_iter()
        .zip(sales)
        .map(|(created, units)| {
            let commands = if units > 0 && created.status == events::ProductStatus::Published {
                vec![ProductCommand::RecordSale(events::SaleRecorded {
                    quantity: units,
                })]
            } else {
                Vec::new()
            };
            (created, commands)
        })
        .collect();
    for batch in with_sales.chunks(1000) {
        commands
            .create_products_with_history(batch.to_vec(), system_metadata("seed"))
            .await
            .context("cannot append generated products")?;
        progress(batch.len());
    }
    Ok(())
}

struct StoreReadiness(Arc<dyn EventStore>);

impl ReadinessCheck for StoreReadiness {
    fn name(&self) -> &str {
        "event-store"
    }

    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.ping().await.map_err(|error| error.to_string()) })
    }
}

struct PoolReadiness(&'static str, PgPool);

impl ReadinessCheck for PoolReadiness {
    fn name(&self) -> &str {
        self.0
    }

    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.1)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

struct RedisReadiness(redis_client::RedisConnection);

impl ReadinessCheck for RedisReadiness {
    fn name(&self) -> &str {
        "redis"
    }

    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let mut connection = self.0.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

struct BusReadiness(Arc<dyn EventBus>);

impl ReadinessCheck for BusReadiness {
    fn name(&self) -> &str {
        "bus"
    }

    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.ping().await.map_err(|error| error.to_string()) })
    }
}

async fn ensure_first_admin(
    config: &ServeConfig,
    users: &dyn UserStore,
    embedded: bool,
) -> anyhow::Result<()> {
    let (email, password, generated) = match (&config.admin_email, &config.admin_password) {
        (Some(email), Some(password)) => (
            email.trim().to_lowercase(),
            password.expose_secret().to_owned(),
            false,
        ),
        (None, None) if embedded => (
            "admin@localhost".to_owned(),
            auth::tokens::new_password(),
            true,
        ),
        (None, None) => return Ok(()),
        _ => bail!("set both CATALOG_ADMIN_EMAIL and CATALOG_ADMIN_PASSWORD, or neither"),
    };
    if users.by_email(&email).await?.is_some() {
        return Ok(());
    }
    if !generated {
        command_api::accounts::check_email(&email)
            .map_err(|message| anyhow::anyhow!("CATALOG_ADMIN_EMAIL {message}"))?;
        command_api::accounts::check_password(&password)
            .map_err(|message| anyhow::anyhow!("CATALOG_ADMIN_PASSWORD {message}"))?;
    }
    let created =
        command_api::accounts::create_account(users, &email, &password, UserRole::Admin).await;
    match created {
        Ok(_) => {}
        // Another replica created it at the same moment.
        Err(_) if users.by_email(&email).await?.is_some() => return Ok(()),
        Err(error) => bail!("cannot create the first admin: {error}"),
    }
    if generated {
        tracing::warn!(
            email = %email,
            password = %password,
            "created the first admin with a generated password; it is shown only this once"
        );
    } else {
        tracing::info!(email = %email, "created the first admin");
    }
    Ok(())
}

/// The signing key of the command role: the configured file, or one generated once under
/// the data dir.
fn load_signer(config: &ServeConfig) -> anyhow::Result<TokenSigner> {
    match &config.jwt_key_file {
        Some(path) => TokenSigner::load_or_create(path, false, config.access_token_ttl_seconds)
            .with_context(|| format!("cannot read CATALOG_JWT_KEY_FILE {}", path.display())),
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("cannot create the data dir {}", config.data_dir.display())
            })?;
            TokenSigner::load_or_create(
                &config.data_dir.join("jwt-ed25519.pem"),
                true,
                config.access_token_ttl_seconds,
            )
            .context("cannot load or create the token signing key")
        }
    }
}

/// The verifier of a role that does not sign: keys from `CATALOG_JWKS_URL`, else the public
/// half of the key file (configured or under the data dir).
async fn load_verifier(config: &ServeConfig) -> anyhow::Result<TokenVerifier> {
    if let Some(url) = &config.jwks_url {
        let mut last_error = String::new();
        for _ in 0..10 {
            match fetch_jwks(url).await {
                Ok(verifier) => return Ok(verifier),
                Err(error) => last_error = error,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("cannot fetch the token keys from CATALOG_JWKS_URL {url}: {last_error}");
    }
    let path = config
        .jwt_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("jwt-ed25519.pem"));
    if !path.exists() {
        bail!(
            "no token key to verify with: set CATALOG_JWT_KEY_FILE or CATALOG_JWKS_URL \
             (looked for {})",
            path.display()
        );
    }
    let signer = TokenSigner::load_or_create(&path, false, config.access_token_ttl_seconds)
        .with_context(|| format!("cannot read the token key {}", path.display()))?;
    Ok(signer.verifier())
}

/// The query role verifies tokens only so that admins can read drafts; without keys it still
/// serves everyone else. A key file another role is about to create gets a few seconds.
async fn query_verifier(config: &ServeConfig) -> Option<Arc<TokenVerifier>> {
    let mut last_error = None;
    for _ in 0..10 {
        match load_verifier(config).await {
            Ok(verifier) => return Some(Arc::new(verifier)),
            Err(error) if config.jwks_url.is_some() => {
                last_error = Some(error);
                break;
            }
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Some(error) = last_error {
        tracing::warn!(error = %format!("{error:#}"), "the query role cannot verify tokens; admins cannot read drafts through it");
    }
    None
}

async fn fetch_jwks(url: &str) -> Result<TokenVerifier, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| error.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let jwks: serde_json::Value = response.json().await.map_err(|error| error.to_string())?;
    TokenVerifier::from_jwks(&jwks).map_err(|error| error.to_string())
}

/// A built, bound, ready-to-run catalog.
pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    engines: Engines,
    background: Vec<JoinHandle<()>>,
    /// Event streams to end when the server shuts down (graceful shutdown waits for every
    /// open connection, and a stream would never end by itself).
    feeds: Vec<Arc<EventFeed>>,
    /// Directories that live as long as the process (a query role's own search index).
    _temporary_dirs: Vec<tempfile::TempDir>,
}

impl Application {
    /// Opens the engines of `config.role`, catches projections up, binds the listener.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        // Install the recorder before anything records.
        web::telemetry::metrics_handle();
        let distributed = config.engines.is_distributed();
        if !distributed && config.role != Role::All {
            bail!(
                "--role {} needs DATABASE_URL (and CATALOG_BUS to use Kafka or SNS/SQS); \
                 without them only --role all runs",
                role_name(config.role)
            );
        }
        let runs_command = matches!(config.role, Role::All | Role::Command);
        let runs_query = matches!(config.role, Role::All | Role::Query);
        let runs_projectors = matches!(config.role, Role::All | Role::Projectors);

        let engines = Engines::open(&config.data_dir, &config.engines).await?;
        if let Some(configured) = &engines.configured_bus {
            let subscribers: Vec<&str> = if runs_projectors {
                let mut names = vec![READ_MODEL];
                if engines.redis.is_some() {
                    names.push(REDIS_VIEWS);
                    names.push(ANALYTICS);
                }
                if config.engines.search_url.is_some() {
                    names.push(SEARCH);
                }
                names
            } else {
                Vec::new()
            };
            if runs_command || runs_projectors {
                configured
                    .verify(&subscribers)
                    .await
                    .map_err(|error| anyhow::anyhow!("CATALOG_BUS: {error}"))?;
            }
        }

        let mut routes = Router::new();
        let mut checks: Vec<Arc<dyn ReadinessCheck>> =
            vec![Arc::new(StoreReadiness(engines.store.clone()))];
        if let Some((_, connection)) = &engines.redis {
            checks.push(Arc::new(RedisReadiness(connection.clone())));
        }
        let mut background = Vec::new();
        let mut verifier: Option<Arc<TokenVerifier>> = None;

        if runs_command {
            let signer = load_signer(&config)?;
            let signer_verifier = Arc::new(signer.verifier());
            verifier = Some(signer_verifier.clone());
            let command_state = CommandState {
                commands: engines.commands.clone(),
                users: engines.users(),
                sessions: engines.sessions(),
                idempotency: engines.idempotency(),
                signer: Arc::new(signer),
                verifier: signer_verifier,
                login_limiter: Arc::new(FailedLoginLimiter::new(5, Duration::from_secs(15 * 60))),
            };
            ensure_first_admin(&config, command_state.users.as_ref(), !distributed).await?;
            if let Some(count) = config.demo_products {
                if engines.store.head().await? == 0 {
                    tracing::info!(products = count, "loading demo data into the empty store");
                    seed_products(&engines.commands, 2026, count, |_| {}).await?;
                }
            }
            background.push(tokio::spawn(purge_idempotency_keys(
                command_state.idempotency.clone(),
            )));
            if let (Some(configured), Some(database)) =
                (&engines.configured_bus, engines.postgres())
            {
                checks.push(Arc::new(BusReadiness(configured.bus())));
                let relay = OutboxRelay::new(database.pool().clone(), configured.bus());
                background.push(tokio::spawn(relay.run()));
            }
            routes = routes.merge(command_api::router(command_state));
        }

        let mut local_projectors = Vec::new();
        let mut read_model: Option<Arc<dyn CatalogReadModel>> = None;
        let mut search_index: Option<Arc<dyn search::SearchIndex>> = None;
        let mut temporary_dirs = Vec::new();
        let mut analytics_view: Option<Arc<dyn AnalyticsView>> = None;
        // Whether that view is the one in Redis (kept by the projectors role).
        let mut shared_analytics = false;
        let mut feeds = Vec::new();
        // The event store analysts read (`/api/events*`): the replica when there is one.
        let mut feed_store: Option<Arc<dyn EventStore>> = None;
        match engines.postgres() {
            None => {
                // Embedded: the query side reads the in-memory model this process projects.
                let memory = Arc::new(MemoryReadModel::new());
                let projector = Projector::new(memory.clone(), engines.store.clone());
                catch_up(&projector).await?;
                background.push(tokio::spawn(projector.clone().run(engines.bus.clone())));
                local_projectors.push(projector);
                read_model = Some(memory);
                let index = TantivyIndex::open(&config.data_dir.join("search-index"))
                    .map_err(|error| anyhow::anyhow!("{error}"))?;
                let projector = Projector::new(
                    Arc::new(SearchProjection::new(index.clone(), SEARCH)),
                    engines.store.clone(),
                );
                catch_up(&projector).await?;
                background.push(tokio::spawn(projector.clone().run(engines.bus.clone())));
                local_projectors.push(projector);
                search_index = Some(index);
                let analytics = Arc::new(MemoryAnalytics::new());
                let projector = Projector::new(analytics.clone(), engines.store.clone());
                catch_up(&projector).await?;
                background.push(tokio::spawn(projector.clone().run(engines.bus.clone())));
                local_projectors.push(projector);
                analytics_view = Some(analytics);
                feed_store = Some(engines.store.clone());
            }
            Some(database) => {
                if runs_projectors {
                    let mut projections: Vec<Arc<dyn projectors::Projection>> = vec![Arc::new(
                        PostgresReadModelProjection::new(database.pool().clone(), READ_MODEL),
                    )];
                    if let Some((redis_config, connection)) = &engines.redis {
                        projections.push(Arc::new(projectors::redis::RedisProjection::new(
                            redis_config.clone(),
                            connection.clone(),
                            REDIS_VIEWS,
                        )));
                        // The shared analytics view: sales from the catalog stream, and with
                        // a bus the shoppers' views and searches from their own stream.
                        let analytics = Arc::new(RedisAnalytics::new(
                            redis_config.clone(),
                            connection.clone(),
                            ANALYTICS,
                        ));
                        if let Some(configured) = &engines.configured_bus {
                            let consumer = configured
                                .analytics_consumer(ANALYTICS_EVENTS)
                                .await
                                .map_err(|error| anyhow::anyhow!("CATALOG_BUS: {error}"))?;
                            background.push(tokio::spawn(count_analytics_events(
                                consumer,
                                analytics.clone(),
                            )));
                        }
                        projections.push(analytics);
                    }
                    if let Some(url) = &config.engines.search_url {
                        let index = OpenSearchIndex::connect(url)
                            .map_err(|error| anyhow::anyhow!("{error}"))?;
                        index
                            .setup()
                            .await
                            .map_err(|error| anyhow::anyhow!("CATALOG_SEARCH: {error}"))?;
                        index.start_flushing();
                        projections.push(Arc::new(SearchProjection::new(index, SEARCH)));
                    }
                    for projection in projections {
                        let projector = Projector::new(projection, engines.store.clone());
                        catch_up(&projector).await?;
                        background.push(tokio::spawn(projector.clone().run(engines.bus.clone())));
                        local_projectors.push(projector);
                    }
                    background.push(tokio::spawn(projectors::status::report(
                        database.pool().clone(),
                        local_projectors.clone(),
                    )));
                    if engines.configured_bus.is_some() {
                        checks.push(Arc::new(BusReadiness(engines.bus.clone())));
                    }
                }
                if runs_query {
                    let pool = match &config.engines.database_read_url {
                        Some(url) => {
                            let replica =
                                PostgresDatabase::connect(url, config.engines.database_pool_size)
                                    .await
                                    .map_err(|error| {
                                        anyhow::anyhow!("DATABASE_READ_URL: {error}")
                                    })?;
                            feed_store = Some(Arc::new(replica.event_store(false)));
                            replica.pool().clone()
                        }
                        None => {
                            feed_store = Some(engines.store.clone());
                            database.pool().clone()
                        }
                    };
                    checks.push(Arc::new(PoolReadiness("read-replica", pool.clone())));
                    let replica: Arc<dyn CatalogReadModel> =
                        Arc::new(PostgresReadModel::new(pool, READ_MODEL));
                    let primary: Option<Arc<dyn CatalogReadModel>> =
                        if config.engines.read_fallback_to_primary {
                            Some(Arc::new(PostgresReadModel::new(
                                database.pool().clone(),
                                READ_MODEL,
                            )))
                        } else {
                            None
                        };
                    let redis = engines.redis.as_ref().map(|(redis_config, connection)| {
                        (
                            redis_config.clone(),
                            Arc::new(projectors::redis::RedisReadModel::new(
                                redis_config.clone(),
                                connection.clone(),
                            )),
                        )
                    });
                    // The views this process keeps itself follow the event store.
                    let store_bus: Arc<dyn EventBus> = Arc::new(InProcessBus::with_poll_interval(
                        engines.store.clone(),
                        Duration::from_millis(100),
                    ));
                    search_index = Some(match &config.engines.search_url {
                        Some(url) => {
                            let index = OpenSearchIndex::connect(url)
                                .map_err(|error| anyhow::anyhow!("{error}"))?;
                            index.start_following();
                            index
                        }
                        None => {
                            // No search engine: this process keeps its own index, built from
                            // the event store at start and following it.
                            let directory = tempfile::Builder::new()
                                .prefix("catalog-search-")
                                .tempdir()
                                .context("cannot create a directory for the search index")?;
                            let index = TantivyIndex::open(directory.path())
                                .map_err(|error| anyhow::anyhow!("{error}"))?;
                            temporary_dirs.push(directory);
                            let projector = Projector::new(
                                Arc::new(SearchProjection::new(index.clone(), SEARCH)),
                                engines.store.clone(),
                            );
                            catch_up(&projector).await?;
                            background.push(tokio::spawn(projector.clone().run(store_bus.clone())));
                            index
                        }
                    });
                    analytics_view = Some(match &engines.redis {
                        // The view the projectors role keeps in Redis, shared by every replica.
                        Some((redis_config, connection)) => {
                            shared_analytics = true;
                            Arc::new(RedisAnalytics::new(
                                redis_config.clone(),
                                connection.clone(),
                                ANALYTICS,
                            ))
                        }
                        // No Redis: this process's shoppers, with sales from the store.
                        None => {
                            let analytics = Arc::new(MemoryAnalytics::new());
                            let projector =
                                Projector::new(analytics.clone(), engines.store.clone());
                            catch_up(&projector).await?;
                            background.push(tokio::spawn(projector.clone().run(store_bus)));
                            analytics
                        }
                    });
                    read_model = Some(query_api::read_path::LayeredReadModel::new(
                        query_api::read_path::LayerConfig::default(),
                        replica,
                        primary,
                        redis,
                    ));
                }
            }
        }
        if runs_query {
            if let Some(read_model) = read_model {
                let query_verifier = match &verifier {
                    Some(verifier) => Some(verifier.clone()),
                    None => query_verifier(&config).await,
                };
                let mut state = QueryState::new(read_model).with_verifier(query_verifier);
                if let Some(index) = search_index.clone() {
                    state = state.with_search(index);
                }
                if let Some(store) = feed_store.clone() {
                    let feed = EventFeed::new(
                        store,
                        FeedConfig {
                            ring: config.analysts.sse_ring,
                            keep_alive: config.analysts.sse_keep_alive,
                            ..FeedConfig::default()
                        },
                    );
                    background.push(tokio::spawn(feed.clone().follow()));
                    feeds.push(feed.clone());
                    state = state.with_events(feed);
                }
                if let Some(view) = analytics_view.clone() {
                    let capture = config.analysts.capture.then(|| {
                        let local: Arc<dyn AnalyticsSink> = Arc::new(ViewSink(view.clone()));
                        let sink: Arc<dyn AnalyticsSink> =
                            match (&engines.configured_bus, shared_analytics) {
                                // With a bus and Redis, onto the analytics stream only: the
                                // projectors role counts it into the shared view.
                                (Some(configured), true) => {
                                    Arc::new(BusAnalyticsSink(configured.clone()))
                                }
                                // With a bus alone, into this process's view and onto the
                                // stream for analysts.
                                (Some(configured), false) => Arc::new(AnalyticsTee {
                                    local,
                                    bus: BusAnalyticsSink(configured.clone()),
                                }),
                                // No bus (embedded, or PostgreSQL without CATALOG_BUS):
                                // straight into the view, the shared one with Redis.
                                (None, _) => local,
                            };
                        Capture::start(sink, config.analysts.capture_queue)
                    });
                    state = state.with_analytics(view, capture);
                }
                routes = routes.merge(query_api::router(state));
            }
        }
        if runs_command {
            let verifier = match verifier {
                Some(verifier) => verifier,
                None => Arc::new(load_verifier(&config).await?),
            };
            let statuses = match engines.postgres() {
                Some(database) => StatusSource::Postgres(database.pool().clone()),
                None => StatusSource::Local(local_projectors.clone()),
            };
            let admin_state = AdminState {
                statuses,
                store: engines.store.clone(),
                verifier,
            };
            routes = routes.route(
                "/api/admin/projections",
                get(admin::projections).with_state(admin_state),
            );
        }

        let openapi = Arc::new(crate::openapi::document());
        let routes = routes
            .merge(web::ops::ops_router(Readiness::new(checks)))
            .route(
                "/api/openapi.json",
                get(move || {
                    let openapi = openapi.clone();
                    async move { axum::Json(openapi.as_ref().clone()) }
                }),
            )
            .merge(Scalar::with_url("/api/docs", crate::openapi::document()));
        let router = web::middleware::with_http_layers(routes);

        let listener = bind(&config.listen, config.reuse_port)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            router,
            address,
            engines,
            background,
            feeds,
            _temporary_dirs: temporary_dirs,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests and stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!("listening on {}", self.address);
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let feeds = self.feeds.clone();
        let shutdown = async move {
            shutdown.await;
            for feed in &feeds {
                feed.close();
            }
        };
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        for task in &self.background {
            task.abort();
        }
        // Wait until the aborted tasks are gone, so what they held (a search index's lock)
        // is released when this returns.
        for task in self.background {
            let _ = task.await;
        }
        self.engines.close().await;
        served.context("the server failed")
    }
}

/// Binds `address`; with `reuse_port`, with `SO_REUSEPORT`, so several processes (query-api
/// replicas on one machine) can listen on one port and the kernel spreads connections
/// between them, as a load balancer would.
async fn bind(address: &str, reuse_port: bool) -> anyhow::Result<TcpListener> {
    if !reuse_port {
        return Ok(TcpListener::bind(address).await?);
    }
    let address: SocketAddr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{address} resolves to nothing"))?;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    Ok(socket.listen(4096)?)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::All => "all",
        Role::Command => "command",
        Role::Query => "query",
        Role::Projectors => "projectors",
    }
}

async fn catch_up(projector: &Projector) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let position = projector
        .catch_up()
        .await
        .with_context(|| format!("cannot catch up projector {}", projector.name()))?;
    tracing::info!(
        projector = projector.name(),
        position,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "projection caught up with the store"
    );
    Ok(())
}

async fn purge_idempotency_keys(store: Arc<dyn IdempotencyStore>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60 * 60));
    loop {
        interval.tick().await;
        let lifetime = chrono::Duration::from_std(command_api::idempotency::KEY_LIFETIME)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        match store.purge(chrono::Utc::now() - lifetime).await {
            Ok(removed) if removed > 0 => {
                tracing::info!(removed, "forgot expired idempotency keys")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot purge idempotency keys"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // SIGTERM's handler is installed here, when called, not when first polled: a SIGTERM that
    // arrives right after `listening on` is logged must stop the server gracefully, not kill
    // it with the default action.
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let interrupt = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {},
            _ = terminate => {},
        }
        tracing::info!("shutting down");
    }
}

/// Shopper analytics onto the bus's analytics stream.
struct BusAnalyticsSink(ConfiguredBus);

#[async_trait::async_trait]
impl AnalyticsSink for BusAnalyticsSink {
    async fn publish(&self, batch: &[Observation]) -> Result<(), String> {
        let envelopes: Vec<_> = batch.iter().map(Observation::to_envelope).collect();
        self.0
            .publish_analytics(&envelopes)
            .await
            .map_err(|error| format!("the analytics stream: {error}"))
    }
}

/// Shopper analytics into this process's view and onto the bus's analytics stream.
struct AnalyticsTee {
    local: Arc<dyn AnalyticsSink>,
    bus: BusAnalyticsSink,
}

#[async_trait::async_trait]
impl AnalyticsSink for AnalyticsTee {
    async fn publish(&self, batch: &[Observation]) -> Result<(), String> {
        let (local, bus) = tokio::join!(self.local.publish(batch), self.bus.publish(batch));
        local.and(bus)
    }
}

/// The projectors role's counter of the analytics stream: a batch at a time into the shared
/// view, acknowledged (offsets committed, messages deleted) only once the view has it, so a
/// crash redelivers rather than loses. Event types this version does not know are skipped.
async fn count_analytics_events(
    consumer: bus::analytics::AnalyticsConsumer,
    view: Arc<dyn AnalyticsView>,
) {
    const MAX_BATCH: usize = 1000;
    const LINGER: Duration = Duration::from_millis(100);
    loop {
        let batch = match consumer.next_batch(MAX_BATCH, LINGER).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot read the analytics stream; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let observations: Vec<Observation> = batch
            .envelopes
            .iter()
            .filter_map(|envelope| match Observation::from_envelope(envelope) {
                Ok(observation) => Some(observation),
                Err(error) => {
                    tracing::warn!(%error, event_id = %envelope.event_id, "skipping an analytics event");
                    None
                }
            })
            .collect();
        let mut delay = Duration::from_millis(100);
        while let Err(error) = view.record(&observations).await {
            tracing::warn!(%error, events = observations.len(), "cannot count analytics events; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        metrics::counter!("catalog_analytics_events_counted_total")
            .increment(observations.len() as u64);
        if let Err(error) = consumer.applied(&batch).await {
            tracing::warn!(%error, "cannot acknowledge analytics events (the batch may be counted again)");
        }
    }
}
