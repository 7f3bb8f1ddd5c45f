//! The embedded event store: one SQLite file holds the event log, and beside it the write side's
//! users, sessions and idempotency keys (their adapters live in `command-api` and share this
//! database's pools). One writer connection serialises writes (SQLite allows one writer at a time
//! anyway, and it is what makes positions commit-ordered); a few read-only connections serve reads.

mod event_store;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use events::store::StoreError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use event_store::SqliteEventStore;

/// The connection pools of one SQLite database file.
#[derive(Clone)]
pub struct SqliteDatabase {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The queue of the event store's writer task (group commit).
    appender: crate::group::Appender,
}

impl SqliteDatabase {
    /// Opens (creating if missing) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unexpected)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a commit is in the WAL, in the operating system's hands,
            // before the client hears 2xx, so it survives the process being killed (kill -9,
            // a crash); the WAL is flushed to the disk at checkpoints, so a power loss or an
            // operating-system crash can lose the last commits. FULL would flush at every
            // commit: one disk flush per group instead of per checkpoint.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
            })?;
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .map_err(|error| StoreError::Unexpected(format!("migrations failed: {error}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("cannot open {}: {error}", path.display()))
            })?;
        let (appender, requests) = crate::group::queue();
        tokio::spawn(event_store::write_loop(writer.clone(), requests));
        Ok(SqliteDatabase {
            writer,
            reader,
            appender,
        })
    }

    pub fn event_store(&self) -> SqliteEventStore {
        SqliteEventStore::new(self.clone())
    }

    /// The one writer connection: every write of this database goes through it.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The read-only connections.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// Waits for the pools to close (on shutdown).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

pub fn unexpected(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(error.to_string())
}

/// Engine errors by kind: busy, locked or out of connections is worth a retry later.
pub fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(error.to_string())
        }
        sqlx::Error::Database(database_error)
            if matches!(
                database_error.code().as_deref(),
                Some("5") | Some("6") | Some("517")
            ) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Unexpected(error.to_string()),
    }
}

pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}
