//! The PostgreSQL adapters against a real server, each test in a database of its own.

use std::sync::Arc;

use event_store::postgres::PostgresDatabase;
use events::conformance::sample_stream;
use events::store::EventStore;
use testkit::TestDatabase;
use uuid::Uuid;

async fn database(test: &TestDatabase) -> PostgresDatabase {
    let database = PostgresDatabase::connect(&test.url, 20)
        .await
        .expect("connect");
    database.migrate().await.expect("migrate");
    database
}

/// A fresh PostgreSQL store in a database of its own, which lives as long as the returned
/// guard.
async fn fresh_store() -> (TestDatabase, impl EventStore) {
    let test = TestDatabase::create().await;
    let store = database(&test).await.event_store(false);
    (test, store)
}

mod event_store_suite {
    events::event_store_suite!(super::fresh_store());
}

#[tokio::test]
async fn migrations_run_twice_without_harm() {
    let test = TestDatabase::create().await;
    let first = database(&test).await;
    first.migrate().await.expect("second run");
}

#[tokio::test]
async fn every_append_writes_outbox_rows_in_the_same_transaction() {
    let test = TestDatabase::create().await;
    let database = database(&test).await;
    let store = database.event_store(true);
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 3)])
        .await
        .expect("append");
    // A conflicting append writes neither events nor outbox rows.
    let conflict = store.append(vec![sample_stream(id, 1, 1)]).await;
    assert!(conflict.is_err());
    let outbox: Vec<i64> = sqlx::query_scalar("SELECT position FROM outbox ORDER BY position")
        .fetch_all(database.pool())
        .await
        .expect("outbox");
    assert_eq!(outbox, vec![1, 2, 3]);
    assert_eq!(
        event_store::outbox::backlog(database.pool())
            .await
            .expect("backlog"),
        3
    );
}

#[tokio::test]
async fn appends_from_two_processes_worth_of_stores_share_one_dense_log() {
    // Two stores on one database stand for two command-api replicas: each has its own
    // writer task and group commits, and the head row orders them.
    let test = TestDatabase::create().await;
    let first = Arc::new(database(&test).await.event_store(true));
    let second = Arc::new(database(&test).await.event_store(true));
    let tasks: Vec<_> = (0..40)
        .map(|index| {
            let store = if index % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move {
                store
                    .append(vec![sample_stream(Uuid::now_v7(), 0, 2)])
                    .await
                    .expect("append")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let all = first.read_all(0, 1000).await.expect("read");
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=80).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_tail_reader_never_sees_a_gap_while_four_replicas_append() {
    let test = TestDatabase::create().await;
    let mut stores: Vec<Arc<dyn EventStore>> = Vec::new();
    for _ in 0..4 {
        stores.push(Arc::new(database(&test).await.event_store(true)));
    }
    events::conformance::store::a_tail_reader_never_sees_a_gap_filled_later_across(stores).await;
}
