//! The distributed event store: PostgreSQL holds the event log and the outbox, and beside them
//! the write side's users, sessions and idempotency keys (their adapters live in `command-api`
//! and share this pool). Every command-api replica shares them, so replicas stay stateless.

mod append;
mod event_store;

use std::str::FromStr;
use std::time::Duration;

use events::store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

pub use event_store::{decode_row, event_columns, PostgresEventStore, OUTBOX_CHANNEL};

/// A pool on the primary PostgreSQL.
#[derive(Clone)]
pub struct PostgresDatabase {
    pool: PgPool,
}

/// What [`PostgresDatabase::free_connections`] read off the server.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionBudget {
    pub max: i64,
    pub reserved: i64,
    pub open: i64,
}

impl ConnectionBudget {
    /// Connections the pool that read it may still open: it holds one of the open ones (its
    /// `min_connections`).
    pub fn left(&self) -> i64 {
        (self.max - self.reserved - self.open + 1).max(0)
    }
}

impl PostgresDatabase {
    /// Connects to `url` with at most `max_connections`; fails fast (5 s) when the server does
    /// not answer, with the reason.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| StoreError::Invalid(format!("DATABASE_URL is malformed: {error}")))?
            .application_name("catalog")
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot connect to PostgreSQL: {error}"))
            })?;
        Ok(PostgresDatabase { pool })
    }

    /// How many more connections the server would take: `max_connections` less the ones
    /// reserved for superusers and the ones open now (this pool's own included).
    pub async fn free_connections(&self) -> Result<ConnectionBudget, StoreError> {
        let (max, reserved, open): (i64, i64, i64) = sqlx::query_as(
            "SELECT current_setting('max_connections')::bigint, \
                    current_setting('superuser_reserved_connections')::bigint, \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|error| StoreError::Unavailable(format!("PostgreSQL: {error}")))?;
        Ok(ConnectionBudget {
            max,
            reserved,
            open,
        })
    }

    /// Wraps an existing pool (tests, and the read model sharing a pool).
    pub fn from_pool(pool: PgPool) -> Self {
        PostgresDatabase { pool }
    }

    /// Applies pending migrations of the write side. Other components' migrations may share
    /// the database, so versions this migrator does not know are not an error.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("./migrations-postgres");
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|error| StoreError::Unexpected(format!("migrations failed: {error}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The event store. With `outbox`, every append also writes outbox rows for the relay.
    pub fn event_store(&self, outbox: bool) -> PostgresEventStore {
        PostgresEventStore::new(self.pool.clone(), outbox)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Engine errors by kind: a lost connection, an exhausted pool, a server shutting down or too
/// busy, a serialisation failure are all worth a retry later.
pub fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(database_error) => {
            let code = database_error.code().unwrap_or_default();
            // 08: connection exception; 53: insufficient resources; 57P: operator
            // intervention (shutdown); 40001/40P01: serialisation failure, deadlock.
            if code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
            {
                StoreError::Unavailable(error.to_string())
            } else {
                StoreError::Unexpected(error.to_string())
            }
        }
        _ => StoreError::Unexpected(error.to_string()),
    }
}

pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}
