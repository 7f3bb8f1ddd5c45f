//! The in-process bus over the real SQLite store: catch-up, live, resume, gaps.

use std::sync::Arc;
use std::time::Duration;

use event_store::sqlite::SqliteDatabase;
use events::bus::{EventBus, EventStream, InProcessBus};
use events::conformance::sample_stream;
use events::store::EventStore;
use events::Envelope;
use futures::StreamExt;
use uuid::Uuid;

async fn store() -> (tempfile::TempDir, Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = SqliteDatabase::open(&dir.path().join("bus.db"))
        .await
        .expect("open");
    (dir, Arc::new(database.event_store()))
}

async fn append(store: &Arc<dyn EventStore>, count: u64) -> Vec<Envelope> {
    store
        .append(vec![sample_stream(Uuid::now_v7(), 0, count)])
        .await
        .expect("append")
}

async fn next_positions(stream: &mut EventStream, count: usize) -> Vec<u64> {
    let mut positions = Vec::new();
    for _ in 0..count {
        let item = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an envelope within 5 s")
            .expect("stream open")
            .expect("no bus error");
        positions.push(item.envelope.position);
    }
    positions
}

async fn assert_quiet(stream: &mut EventStream) {
    let extra = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(extra.is_err(), "unexpected extra envelope: {extra:?}");
}

#[tokio::test]
async fn a_subscriber_catches_up_from_the_store_then_follows_live_in_position_order() {
    let (_dir, store) = store().await;
    let bus = InProcessBus::with_poll_interval(store.clone(), Duration::from_millis(50));
    append(&store, 5).await;
    let mut stream = bus.subscribe("test", 0).await.expect("subscribe");
    assert_eq!(next_positions(&mut stream, 5).await, [1, 2, 3, 4, 5]);

    // Published out of order: still delivered in order, each once.
    let mut live = append(&store, 3).await;
    live.reverse();
    bus.publish(&live).await.expect("publish");
    assert_eq!(next_positions(&mut stream, 3).await, [6, 7, 8]);

    // Written by someone who never publishes here (another process): found by the poll.
    append(&store, 2).await;
    assert_eq!(next_positions(&mut stream, 2).await, [9, 10]);
    assert_quiet(&mut stream).await;
}

#[tokio::test]
async fn a_subscriber_resumes_after_the_position_it_gives() {
    let (_dir, store) = store().await;
    let bus = InProcessBus::with_poll_interval(store.clone(), Duration::from_millis(50));
    let written = append(&store, 10).await;
    bus.publish(&written).await.expect("publish");
    let mut resumed = bus.subscribe("test", 7).await.expect("subscribe");
    assert_eq!(next_positions(&mut resumed, 3).await, [8, 9, 10]);
    assert_quiet(&mut resumed).await;
}

#[tokio::test]
async fn many_subscribers_each_get_everything() {
    let (_dir, store) = store().await;
    let bus = Arc::new(InProcessBus::with_poll_interval(
        store.clone(),
        Duration::from_millis(50),
    ));
    let mut first = bus.subscribe("first", 0).await.expect("subscribe");
    let mut second = bus.subscribe("second", 0).await.expect("subscribe");
    for _ in 0..20 {
        let written = append(&store, 1).await;
        bus.publish(&written).await.expect("publish");
    }
    let expected: Vec<u64> = (1..=20).collect();
    assert_eq!(next_positions(&mut first, 20).await, expected);
    assert_eq!(next_positions(&mut second, 20).await, expected);
}
