//! The session stores against their real engines: the same suite for SQLite, PostgreSQL and
//! Redis.

use std::sync::Arc;

use auth::Role;
use chrono::Utc;
use command_api::accounts::redis::RedisSessionStore;
use command_api::accounts::{User, UserStore};
use event_store::postgres::PostgresDatabase;
use event_store::sqlite::SqliteDatabase;
use redis_client::{RedisConfig, RedisConnection};
use uuid::Uuid;

fn user() -> User {
    User {
        id: Uuid::now_v7(),
        email: format!("{}@example.com", Uuid::new_v4().simple()),
        password_hash: "not a real hash".into(),
        role: Role::Shopper,
        created_at: Utc::now(),
    }
}

#[tokio::test]
async fn sqlite_sessions_pass_the_suite() {
    let dir = tempfile::tempdir().expect("dir");
    let database = SqliteDatabase::open(&dir.path().join("s.db"))
        .await
        .expect("open");
    let user = user();
    command_api::accounts::sqlite::SqliteUserStore::new(database.clone())
        .create(&user)
        .await
        .expect("user");
    command_api::accounts::conformance::run(
        &command_api::accounts::sqlite::SqliteSessionStore::new(database.clone()),
        user.id,
    )
    .await;
}

#[tokio::test]
async fn postgres_sessions_pass_the_suite() {
    let test = testkit::TestDatabase::create().await;
    let database = PostgresDatabase::connect(&test.url, 12)
        .await
        .expect("connect");
    database.migrate().await.expect("migrate");
    let user = user();
    command_api::accounts::postgres::PostgresUserStore::new(database.pool().clone())
        .create(&user)
        .await
        .expect("user");
    command_api::accounts::conformance::run(
        &command_api::accounts::postgres::PostgresSessionStore::new(database.pool().clone()),
        user.id,
    )
    .await;
}

#[tokio::test]
async fn redis_sessions_pass_the_suite() {
    let config = Arc::new(RedisConfig::from_url(&testkit::redis_url()).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let store = RedisSessionStore::new(config, connection);
    command_api::accounts::conformance::run(&store, Uuid::now_v7()).await;
}

#[tokio::test]
async fn redis_cluster_sessions_pass_the_suite() {
    let config = Arc::new(RedisConfig::from_url(&testkit::redis_cluster_url()).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let store = RedisSessionStore::new(config, connection);
    command_api::accounts::conformance::run(&store, Uuid::now_v7()).await;
}
