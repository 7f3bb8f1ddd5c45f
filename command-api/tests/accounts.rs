//! The account ports against their real engines: the session store suite on SQLite,
//! PostgreSQL, Redis and Redis Cluster; the user store suite on SQLite and PostgreSQL. Each
//! case is a test of its own, on a fresh database (or key prefix).

use std::sync::Arc;

use command_api::accounts::conformance::{user, SessionFixture, UserFixture};
use command_api::accounts::postgres::{PostgresSessionStore, PostgresUserStore};
use command_api::accounts::redis::RedisSessionStore;
use command_api::accounts::sqlite::{SqliteSessionStore, SqliteUserStore};
use command_api::accounts::UserStore;
use event_store::postgres::PostgresDatabase;
use event_store::sqlite::SqliteDatabase;
use redis_client::{RedisConfig, RedisConnection};
use uuid::Uuid;

/// A fresh SQLite file and the directory that holds it (kept as long as the store).
async fn sqlite() -> (SqliteDatabase, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("dir");
    let database = SqliteDatabase::open(&directory.path().join("accounts.db"))
        .await
        .expect("open");
    (database, directory)
}

/// A fresh, migrated PostgreSQL database (dropped with the returned guard).
async fn postgres() -> (PostgresDatabase, testkit::TestDatabase) {
    let test = testkit::TestDatabase::create().await;
    let database = PostgresDatabase::connect(&test.url, 12)
        .await
        .expect("connect");
    database.migrate().await.expect("migrate");
    (database, test)
}

async fn sqlite_sessions() -> SessionFixture {
    let (database, directory) = sqlite().await;
    let user = user();
    SqliteUserStore::new(database.clone())
        .create(&user)
        .await
        .expect("user");
    SessionFixture {
        store: Arc::new(SqliteSessionStore::new(database)),
        user_id: user.id,
        keep: Box::new(directory),
    }
}

async fn postgres_sessions() -> SessionFixture {
    let (database, test) = postgres().await;
    let user = user();
    PostgresUserStore::new(database.pool().clone())
        .create(&user)
        .await
        .expect("user");
    SessionFixture {
        store: Arc::new(PostgresSessionStore::new(database.pool().clone())),
        user_id: user.id,
        keep: Box::new((database, test)),
    }
}

async fn redis_sessions_at(url: String) -> SessionFixture {
    let config = Arc::new(RedisConfig::from_url(&url).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    SessionFixture {
        store: Arc::new(RedisSessionStore::new(config, connection)),
        user_id: Uuid::now_v7(),
        keep: Box::new(()),
    }
}

async fn redis_sessions() -> SessionFixture {
    redis_sessions_at(testkit::redis_url()).await
}

async fn redis_cluster_sessions() -> SessionFixture {
    redis_sessions_at(testkit::redis_cluster_url()).await
}

async fn sqlite_users() -> UserFixture {
    let (database, directory) = sqlite().await;
    UserFixture {
        store: Arc::new(SqliteUserStore::new(database)),
        keep: Box::new(directory),
    }
}

async fn postgres_users() -> UserFixture {
    let (database, test) = postgres().await;
    UserFixture {
        store: Arc::new(PostgresUserStore::new(database.pool().clone())),
        keep: Box::new((database, test)),
    }
}

command_api::session_store_suite!(sqlite_sessions_pass, sqlite_sessions);
command_api::session_store_suite!(postgres_sessions_pass, postgres_sessions);
command_api::session_store_suite!(redis_sessions_pass, redis_sessions);

#[tokio::test]
async fn the_sql_session_stores_purge_expired_tokens() {
    for fixture in [sqlite_sessions().await, postgres_sessions().await] {
        command_api::accounts::conformance::sessions::expired_tokens_are_purged(
            &*fixture.store,
            fixture.user_id,
        )
        .await;
    }
}
command_api::session_store_suite!(redis_cluster_sessions_pass, redis_cluster_sessions);
command_api::user_store_suite!(sqlite_users_pass, sqlite_users);
command_api::user_store_suite!(postgres_users_pass, postgres_users);
