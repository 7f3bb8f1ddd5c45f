//! The engines of one process, opened from [`EngineConfig`] only:
//!
//! - no `DATABASE_URL`: the embedded mode (SQLite event store, in-process bus), role `all` only;
//! - `DATABASE_URL`: the PostgreSQL event store, users, sessions, idempotency keys and read
//!   model, migrated at open; with `CATALOG_BUS` the store writes an outbox and the command role
//!   relays it to Kafka or SNS/SQS, without it projectors follow the event store itself;
//! - `REDIS_URL`: the Redis connection the views, caches and sessions share.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus::ConfiguredBus;
use command_api::accounts::{SessionStore, UserStore};
use command_api::idempotency::IdempotencyStore;
use command_api::service::CommandService;
use event_store::postgres::PostgresDatabase;
use event_store::sqlite::SqliteDatabase;
use events::bus::{EventBus, InProcessBus};
use events::store::EventStore;
use images::ImageStore;

use crate::config::EngineConfig;

/// A Redis connection and the settings it was made from (key prefix, cluster or not).
pub type Redis = (
    Arc<redis_client::RedisConfig>,
    redis_client::RedisConnection,
);

/// Applies every component's PostgreSQL migrations (`catalog migrate`, and every start).
pub async fn migrate(database: &PostgresDatabase) -> anyhow::Result<()> {
    database.migrate().await.context("DATABASE_URL")?;
    projectors::read_model::postgres::migrate(database.pool())
        .await
        .context("DATABASE_URL")?;
    Ok(())
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
    pub redis: Option<Redis>,
    pub store: Arc<dyn EventStore>,
    /// What projectors in this process subscribe to.
    pub bus: Arc<dyn EventBus>,
    /// The external bus, when `CATALOG_BUS` is set (the relay publishes to it).
    pub configured_bus: Option<ConfiguredBus>,
    pub commands: Arc<CommandService>,
    /// Where uploaded images go: `CATALOG_IMAGES`'s bucket, else `<data dir>/images`.
    pub images: Arc<dyn ImageStore>,
}

impl Engines {
    pub async fn open(data_dir: &Path, config: &EngineConfig) -> anyhow::Result<Self> {
        config.check()?;
        let images = open_images(data_dir, config).await?;
        match &config.database_url {
            None => Self::open_embedded(data_dir, images).await,
            Some(url) => Self::open_distributed(url, config, images).await,
        }
    }

    async fn open_embedded(data_dir: &Path, images: Arc<dyn ImageStore>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        let path = data_dir.join("catalog.db");
        owner_only(data_dir, &path)?;
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
            images,
        })
    }

    async fn open_distributed(
        url: &str,
        config: &EngineConfig,
        images: Arc<dyn ImageStore>,
    ) -> anyhow::Result<Self> {
        let database = PostgresDatabase::connect(url, config.database_pool_size)
            .await
            .context("DATABASE_URL")?;
        check_connection_budget("DATABASE_URL", &database, config.database_pool_size).await;
        migrate(&database).await?;
        let configured_bus = match &config.bus_url {
            Some(url) => Some(ConfiguredBus::connect(url).await?),
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
                let redis_config =
                    Arc::new(redis_client::RedisConfig::from_url(url).map_err(anyhow::Error::msg)?);
                let connection = redis_client::RedisConnection::connect(&redis_config)
                    .await
                    .map_err(anyhow::Error::msg)
                    .context("REDIS_URL")?;
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
            images,
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

    /// Whether this is the distributed mode (PostgreSQL), not the embedded one.
    pub fn is_distributed(&self) -> bool {
        self.postgres().is_some()
    }

    /// Where projectors park the events their views cannot apply: `parked_events` in this
    /// process's database.
    pub fn parking(&self) -> Arc<dyn projectors::parking::ParkingStore> {
        match &self.storage {
            Storage::Sqlite(database) => Arc::new(projectors::parking::SqliteParking::new(
                database.writer().clone(),
            )),
            Storage::Postgres(database) => Arc::new(projectors::parking::PostgresParking::new(
                database.pool().clone(),
            )),
        }
    }

    /// The embedded mode's database.
    pub fn sqlite(&self) -> Option<&SqliteDatabase> {
        match &self.storage {
            Storage::Sqlite(database) => Some(database),
            Storage::Postgres(_) => None,
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

/// Says at start, in one warning, when a pool of `pool_size` cannot get its connections: with
/// several processes on one server, pools that together ask for more than `max_connections`
/// fail later, under load, as acquire timeouts.
pub async fn check_connection_budget(name: &str, database: &PostgresDatabase, pool_size: u32) {
    match database.free_connections().await {
        Ok(budget) if budget.left() < i64::from(pool_size) => tracing::warn!(
            pool_size,
            max_connections = budget.max,
            reserved = budget.reserved,
            open = budget.open,
            "{name}: this process's pool may open {pool_size} connections but the server has \
             only {} left (max_connections {} less {} reserved and {} open): lower \
             CATALOG_DATABASE_POOL_SIZE or raise max_connections, or requests will wait for \
             connections under load",
            budget.left(),
            budget.max,
            budget.reserved,
            budget.open
        ),
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "cannot read the server's connection budget"),
    }
}

/// The data dir (0700) and the store (0600, created so before SQLite opens it; SQLite gives its
/// `-wal` and `-shm` files the store's mode) are the owner's only: they hold every account's
/// password hash and the signing key's neighbours.
fn owner_only(data_dir: &Path, store: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let private = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(data_dir, private)
            .with_context(|| format!("cannot make {} owner-only", data_dir.display()))?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(store)
            .with_context(|| format!("cannot create {}", store.display()))?;
        for file in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{file}", store.display()));
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot make {} owner-only", path.display()))?;
            }
        }
    }
    Ok(())
}

/// The image store `CATALOG_IMAGES` names (the bucket must exist: a missing one is a clear
/// error at start, like a missing topic), else files under `<data dir>/images`, served at
/// `/images/{name}`.
async fn open_images(
    data_dir: &Path,
    config: &EngineConfig,
) -> anyhow::Result<Arc<dyn ImageStore>> {
    match &config.images_url {
        Some(url) => {
            let parsed = images::ImagesConfig::from_url(url).map_err(anyhow::Error::msg)?;
            let bucket = parsed.bucket.clone();
            let store = images::S3ImageStore::connect(parsed).await;
            store.check().await.with_context(|| {
                format!("CATALOG_IMAGES: bucket {bucket} does not answer (create it, or check the endpoint and credentials)")
            })?;
            Ok(Arc::new(store))
        }
        None => {
            if config.database_url.is_some() {
                // Fine on one machine with one data dir; processes elsewhere would not see
                // the files (a query replica answers 404 for an image a command role stored).
                tracing::warn!(
                    directory = %data_dir.join("images").display(),
                    "uploaded images go under this process's data dir: with processes on several machines, set CATALOG_IMAGES=s3://…"
                );
            }
            Ok(Arc::new(
                images::FsImageStore::open(data_dir.join("images"), "/images")
                    .context("cannot open the image directory")?,
            ))
        }
    }
}
