//! The idempotency store against its real engines: the same suite on SQLite and PostgreSQL,
//! each case a test of its own on a fresh database.

use std::sync::Arc;

use command_api::idempotency::conformance::IdempotencyFixture;
use command_api::idempotency::postgres::PostgresIdempotencyStore;
use command_api::idempotency::sqlite::SqliteIdempotencyStore;
use event_store::postgres::PostgresDatabase;
use event_store::sqlite::SqliteDatabase;

async fn sqlite_idempotency() -> IdempotencyFixture {
    let directory = tempfile::tempdir().expect("dir");
    let database = SqliteDatabase::open(&directory.path().join("idempotency.db"))
        .await
        .expect("open");
    IdempotencyFixture {
        store: Arc::new(SqliteIdempotencyStore::new(database)),
        keep: Box::new(directory),
    }
}

async fn postgres_idempotency() -> IdempotencyFixture {
    let test = testkit::TestDatabase::create().await;
    let database = PostgresDatabase::connect(&test.url, 12)
        .await
        .expect("connect");
    database.migrate().await.expect("migrate");
    IdempotencyFixture {
        store: Arc::new(PostgresIdempotencyStore::new(database.pool().clone())),
        keep: Box::new((database, test)),
    }
}

command_api::idempotency_store_suite!(sqlite_keys_pass, sqlite_idempotency);
command_api::idempotency_store_suite!(postgres_keys_pass, postgres_idempotency);
