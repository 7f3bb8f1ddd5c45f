//! The in-process bus over the real SQLite store: the bus suite, and what only the embedded
//! bus promises (catch-up from the store, then live, in one global position order).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_store::sqlite::SqliteDatabase;
use events::bus::{EventBus, EventStream, InProcessBus};
use events::conformance::bus::{assert_quiet, next_delivery, BusFixture};
use events::conformance::sample_stream;
use events::store::{EventStore, StreamAppend};
use events::{Envelope, NewEvent};
use uuid::Uuid;

const POLL_INTERVAL: Duration = Duration::from_millis(50);
const QUIET: Duration = Duration::from_millis(300);

/// A fresh SQLite store in a temporary directory and an in-process bus over it.
struct InProcess {
    _dir: tempfile::TempDir,
    store: Arc<dyn EventStore>,
    bus: Arc<InProcessBus>,
}

impl InProcess {
    async fn start() -> InProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = SqliteDatabase::open(&dir.path().join("bus.db"))
            .await
            .expect("open");
        let store: Arc<dyn EventStore> = Arc::new(database.event_store());
        let bus = Arc::new(InProcessBus::with_poll_interval(
            store.clone(),
            POLL_INTERVAL,
        ));
        InProcess {
            _dir: dir,
            store,
            bus,
        }
    }

    /// Appends `count` events of a new product, without publishing them.
    async fn append(&self, count: u64) -> Vec<Envelope> {
        self.store
            .append(vec![sample_stream(Uuid::now_v7(), 0, count)])
            .await
            .expect("append")
    }
}

#[async_trait(?Send)]
impl BusFixture for InProcess {
    fn bus(&self) -> Arc<dyn EventBus> {
        self.bus.clone()
    }

    async fn new_subscriber(&self) -> String {
        format!("reader-{}", Uuid::new_v4().simple())
    }

    async fn commit(&self, events: Vec<NewEvent>) -> Vec<Envelope> {
        let mut committed = Vec::with_capacity(events.len());
        for event in events {
            let stream = StreamAppend {
                aggregate_id: event.aggregate_id,
                expected_version: event.aggregate_version - 1,
                events: vec![event],
                unique_claims: Vec::new(),
                snapshot: None,
            };
            committed.extend(self.store.append(vec![stream]).await.expect("append"));
        }
        committed
    }

    fn quiet_period(&self) -> Duration {
        QUIET
    }
}

mod event_bus_suite {
    events::event_bus_suite!(super::InProcess::start());
}

async fn next_positions(stream: &mut EventStream, count: usize) -> Vec<u64> {
    let mut positions = Vec::new();
    for _ in 0..count {
        positions.push(next_delivery(stream).await.envelope.position);
    }
    positions
}

#[tokio::test]
async fn a_subscriber_catches_up_from_the_store_then_follows_live_in_position_order() {
    let fixture = InProcess::start().await;
    fixture.append(5).await;
    let mut stream = fixture.bus.subscribe("test", 0).await.expect("subscribe");
    assert_eq!(next_positions(&mut stream, 5).await, [1, 2, 3, 4, 5]);

    // Published out of order: still delivered in order, each once.
    let mut live = fixture.append(3).await;
    live.reverse();
    fixture.bus.publish(&live).await.expect("publish");
    assert_eq!(next_positions(&mut stream, 3).await, [6, 7, 8]);

    // Written by someone who never publishes here (another process): found by the poll.
    fixture.append(2).await;
    assert_eq!(next_positions(&mut stream, 2).await, [9, 10]);
    assert_quiet(&mut stream, QUIET).await;
}

#[tokio::test]
async fn a_subscriber_resumes_after_the_position_it_gives() {
    let fixture = InProcess::start().await;
    let written = fixture.append(10).await;
    fixture.bus.publish(&written).await.expect("publish");
    let mut resumed = fixture.bus.subscribe("test", 7).await.expect("subscribe");
    assert_eq!(next_positions(&mut resumed, 3).await, [8, 9, 10]);
    assert_quiet(&mut resumed, QUIET).await;
}
