//! The outbox relay on a real PostgreSQL and a real Kafka protocol peer (librdkafka's mock
//! cluster): at-least-once across a crash between publish and mark, order per product, one
//! publishing leader among several relays, and a stand-by taking over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bus::kafka::{KafkaBus, KafkaConfig};
use event_store::outbox::{backlog, OutboxRelay};
use event_store::postgres::PostgresDatabase;
use events::bus::{BusError, EventBus, EventStream};
use events::conformance::bus::{
    assert_in_order_per_product, consume_distinct, consume_until_quiet,
};
use events::conformance::sample_stream;
use events::store::EventStore;
use events::Envelope;
use rdkafka::mocking::MockCluster;
use testkit::TestDatabase;
use uuid::Uuid;

struct Kafka {
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    bus: Arc<KafkaBus>,
}

fn kafka() -> Kafka {
    let cluster = MockCluster::new(3).expect("mock cluster");
    cluster
        .create_topic("catalog.product-events", 3, 3)
        .expect("topic");
    let mut config = KafkaConfig::new(&cluster.bootstrap_servers());
    config.partitions = 3;
    let bus = Arc::new(KafkaBus::connect(config).expect("bus"));
    Kafka {
        _cluster: cluster,
        bus,
    }
}

/// Publishes through the real bus, then fails: a relay that dies after the bus took the
/// events and before it deleted the outbox rows.
struct CrashAfterPublish {
    inner: Arc<KafkaBus>,
    crashed: AtomicBool,
}

#[async_trait]
impl EventBus for CrashAfterPublish {
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        self.inner.publish(envelopes).await?;
        self.crashed.store(true, Ordering::SeqCst);
        Err(BusError::Unavailable(
            "the relay died after publishing".into(),
        ))
    }

    async fn subscribe(&self, subscriber: &str, after: u64) -> Result<EventStream, BusError> {
        self.inner.subscribe(subscriber, after).await
    }
}

async fn database(test: &TestDatabase) -> PostgresDatabase {
    let database = PostgresDatabase::connect(&test.url, 8)
        .await
        .expect("connect");
    database.migrate().await.expect("migrate");
    database
}

/// Appends `per_product` events to each of `products` new products, interleaved.
async fn append(store: &dyn EventStore, products: usize, per_product: u64) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..products).map(|_| Uuid::now_v7()).collect();
    for version in 0..per_product {
        for id in &ids {
            store
                .append(vec![sample_stream(*id, version, 1)])
                .await
                .expect("append");
        }
    }
    ids
}

/// Consumes until every one of `wanted` events arrived, then whatever else is already on the
/// topic (duplicates); returns arrivals, duplicates too.
async fn consume(bus: &KafkaBus, wanted: usize) -> Vec<Envelope> {
    let mut stream = bus
        .subscribe(&format!("check-{}", Uuid::new_v4().simple()), 0)
        .await
        .expect("subscribe");
    let mut arrived = consume_distinct(&mut stream, wanted).await;
    arrived.extend(consume_until_quiet(&mut stream, Duration::from_secs(2)).await);
    arrived
}

async fn wait_drained(pool: &sqlx::PgPool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while backlog(pool).await.expect("backlog") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_relay_that_dies_between_publish_and_mark_loses_nothing_and_the_next_one_republishes() {
    let test = TestDatabase::create().await;
    let database = database(&test).await;
    let store = database.event_store(true);
    let ids = append(&store, 4, 5).await;
    let kafka = kafka();
    let crashing = Arc::new(CrashAfterPublish {
        inner: kafka.bus.clone(),
        crashed: AtomicBool::new(false),
    });
    let first = OutboxRelay::new(database.pool().clone(), crashing.clone()).with_batch_size(7);
    let mut connection = database.pool().acquire().await.expect("connection");
    let result = first.relay_batch(&mut connection).await;
    assert!(result.is_err() && crashing.crashed.load(Ordering::SeqCst));
    assert_eq!(
        backlog(database.pool()).await.expect("backlog"),
        20,
        "nothing was marked"
    );

    let second = OutboxRelay::new(database.pool().clone(), kafka.bus.clone());
    let relayed = second.relay_batch(&mut connection).await.expect("relay");
    assert_eq!(relayed, 20);
    assert_eq!(backlog(database.pool()).await.expect("backlog"), 0);

    let arrived = consume(&kafka.bus, 20).await;
    assert_eq!(
        arrived.len(),
        27,
        "the 7 published before the crash went twice"
    );
    assert_in_order_per_product(&arrived, &ids, 5);
}

#[tokio::test]
async fn of_several_relays_one_publishes_in_order_and_a_stand_by_takes_over_when_it_dies() {
    let test = TestDatabase::create().await;
    let database = database(&test).await;
    let store = Arc::new(database.event_store(true));
    let kafka = kafka();
    let relays: Vec<_> = (0..3)
        .map(|_| tokio::spawn(OutboxRelay::new(database.pool().clone(), kafka.bus.clone()).run()))
        .collect();
    // Concurrent writers while three relays compete.
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { append(store.as_ref(), 5, 6).await })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.extend(writer.await.expect("writer"));
    }
    wait_drained(database.pool()).await;

    let leaders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND ((classid::bigint << 32) | objid::bigint) = $1",
    )
    .bind(event_store::outbox::RELAY_LOCK_KEY)
    .fetch_one(database.pool())
    .await
    .expect("locks");
    assert_eq!(leaders, 1, "exactly one relay holds the lead");

    // The leader dies (its task and connection go); a stand-by takes over.
    for relay in &relays {
        relay.abort();
    }
    let standby = tokio::spawn(OutboxRelay::new(database.pool().clone(), kafka.bus.clone()).run());
    ids.extend(append(store.as_ref(), 5, 6).await);
    wait_drained(database.pool()).await;
    standby.abort();

    let arrived = consume(&kafka.bus, ids.len() * 6).await;
    assert_in_order_per_product(&arrived, &ids, 6);
    assert_eq!(
        arrived.len(),
        ids.len() * 6,
        "one leader at a time: no duplicates"
    );
}
