//! `KafkaBus` against a real Kafka protocol peer: librdkafka's mock cluster (3 brokers, with
//! error injection) by default, or a real broker process when `CATALOG_TEST_KAFKA_BROKERS`
//! names one (the test script runs these tests a second time against `tansu`; the fault
//! injection tests, named `mock_cluster_*`, need the mock and are skipped by name there).
//! The bus suite runs first; then what only Kafka has (keys and headers, rebalances, broker
//! faults, topic setup, the analytics topic).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bus::kafka::{KafkaBus, KafkaConfig};
use chrono::Utc;
use events::bus::EventBus;
use events::conformance::bus::{
    assert_in_order_per_product, consume_distinct, history, numbered, products, BusFixture,
    Positions,
};
use events::{Envelope, NewEvent};
use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::Message;
use uuid::Uuid;

const PARTITIONS: i32 = 3;

/// A Kafka to test against, with a topic of the test's own.
struct Broker {
    mock: Option<MockCluster<'static, DefaultProducerContext>>,
    brokers: String,
    topic: String,
}

impl Broker {
    async fn start() -> Broker {
        match std::env::var("CATALOG_TEST_KAFKA_BROKERS") {
            Ok(brokers) if !brokers.is_empty() => Broker::real(&brokers).await,
            _ => Broker::mock(),
        }
    }

    fn mock() -> Broker {
        let mock = MockCluster::new(3).expect("librdkafka's mock cluster starts");
        let topic = format!("catalog.product-events.{}", Uuid::new_v4().simple());
        mock.create_topic(&topic, PARTITIONS, 3)
            .expect("create topic on the mock cluster");
        Broker {
            brokers: mock.bootstrap_servers(),
            mock: Some(mock),
            topic,
        }
    }

    async fn real(brokers: &str) -> Broker {
        let topic = format!("catalog.product-events.{}", Uuid::new_v4().simple());
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("admin client");
        let created = admin
            .create_topics(
                &[NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap_or_else(|error| {
                panic!("the Kafka broker at {brokers} (CATALOG_TEST_KAFKA_BROKERS) does not answer: {error}")
            });
        for result in created {
            result.expect("topic created");
        }
        Broker {
            mock: None,
            brokers: brokers.to_owned(),
            topic,
        }
    }

    fn config(&self) -> KafkaConfig {
        let mut config = KafkaConfig::new(&self.brokers);
        config.topic = self.topic.clone();
        config.partitions = PARTITIONS;
        config
    }

    fn bus(&self) -> KafkaBus {
        KafkaBus::connect(self.config()).expect("bus")
    }

    fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        self.mock
            .as_ref()
            .expect("this test needs the mock cluster")
    }
}

/// A fresh topic on the broker, as the bus suite's fixture.
struct Kafka {
    bus: Arc<KafkaBus>,
    positions: Positions,
    // Declared last so it is dropped last: the bus flushes its producer on drop.
    _broker: Broker,
}

impl Kafka {
    async fn start() -> Kafka {
        let broker = Broker::start().await;
        let bus = Arc::new(broker.bus());
        Kafka {
            bus,
            positions: Positions::default(),
            _broker: broker,
        }
    }
}

#[async_trait(?Send)]
impl BusFixture for Kafka {
    fn bus(&self) -> Arc<dyn EventBus> {
        self.bus.clone()
    }

    async fn new_subscriber(&self) -> String {
        format!("reader-{}", Uuid::new_v4().simple())
    }

    async fn commit(&self, events: Vec<NewEvent>) -> Vec<Envelope> {
        self.positions.commit(events)
    }

    fn quiet_period(&self) -> Duration {
        Duration::from_secs(2)
    }
}

mod event_bus_suite {
    events::event_bus_suite!(super::Kafka::start());
}

/// Subscribes a new subscriber and reads until `count` distinct events arrived (see
/// [`consume_distinct`]).
async fn read_as_a_new_subscriber(bus: &KafkaBus, count: usize) -> Vec<Envelope> {
    let mut stream = bus
        .subscribe(&format!("reader-{}", Uuid::new_v4().simple()), 0)
        .await
        .expect("subscribe");
    consume_distinct(&mut stream, count).await
}

/// `per_product` events for each of `ids`, interleaved, at positions from 1.
fn sent_history(ids: &[Uuid], per_product: u64) -> Vec<Envelope> {
    numbered(history(ids, per_product), 1)
}

#[tokio::test]
async fn messages_are_keyed_by_product_and_carry_the_metadata_in_headers() {
    let broker = Broker::start().await;
    let bus = broker.bus();
    let sent = sent_history(&products(3), 2);
    bus.publish(&sent).await.expect("publish");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("group.id", format!("raw-{}", Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&broker.topic]).expect("subscribe");
    let mut partitions_by_product: HashMap<String, i32> = HashMap::new();
    for _ in 0..sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a message within 30 s")
            .expect("message");
        let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf-8");
        let envelope: Envelope =
            serde_json::from_slice(message.payload().expect("payload")).expect("envelope");
        assert_eq!(key, envelope.aggregate_id.to_string());
        let previous = partitions_by_product.insert(key, message.partition());
        assert!(
            previous.is_none_or(|p| p == message.partition()),
            "one partition per product"
        );
        let headers = bus::kafka::header_map(&message);
        assert_eq!(headers["event_type"], "SaleRecorded");
        assert_eq!(headers["schema_version"], "1");
        assert_eq!(headers["event_id"], envelope.event_id.to_string());
        assert_eq!(headers["position"], envelope.position.to_string());
        assert_eq!(headers["content-type"], "application/json");
        let trace = envelope
            .correlation_id
            .clone()
            .expect("correlation")
            .replace('-', "");
        assert!(
            headers["traceparent"].starts_with(&format!("00-{trace}-")),
            "{}",
            headers["traceparent"]
        );
    }
}

#[tokio::test]
async fn a_rebalance_between_two_consumers_never_skips_an_event() {
    let broker = Broker::start().await;
    let bus = Arc::new(broker.bus());
    let ids = products(30);
    let first_half = sent_history(&ids, 4);
    bus.publish(&first_half).await.expect("publish");
    let total = ids.len() * 8;
    let arrived = Arc::new(parking_lot::Mutex::new(Vec::<Envelope>::new()));
    let group: &'static str =
        Box::leak(format!("shared-{}", Uuid::new_v4().simple()).into_boxed_str());
    // Each member consumes until every event has arrived somewhere, or a minute has passed: a
    // rebalance on a loaded machine can leave a member idle for seconds, so an idle timeout
    // (8 s here before) is no sign that the group is done.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let spawn_consumer = |name: &'static str| {
        let bus = bus.clone();
        let arrived = arrived.clone();
        tokio::spawn(async move {
            let mut stream = bus.subscribe(group, 0).await.expect("subscribe");
            loop {
                match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                    Ok(Some(Ok(delivery))) => {
                        arrived.lock().push(delivery.envelope.clone());
                        delivery.ack().await.expect("ack");
                    }
                    Ok(_) => return name,
                    Err(_) => {
                        let seen: std::collections::HashSet<Uuid> =
                            arrived.lock().iter().map(|e| e.event_id).collect();
                        if seen.len() >= total || tokio::time::Instant::now() >= deadline {
                            return name;
                        }
                    }
                }
            }
        })
    };
    let first = spawn_consumer("first");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A second member joins mid-stream: partitions move between them.
    let second = spawn_consumer("second");
    let second_half: Vec<Envelope> = sent_history(&ids, 8)
        .into_iter()
        .filter(|e| e.aggregate_version > 4)
        .map(|mut e| {
            e.position += first_half.len() as u64;
            e
        })
        .collect();
    bus.publish(&second_half).await.expect("publish");
    first.await.expect("first");
    second.await.expect("second");
    let arrived = arrived.lock().clone();
    let distinct: std::collections::HashSet<Uuid> = arrived.iter().map(|e| e.event_id).collect();
    assert_eq!(distinct.len(), total, "every event arrived at least once");
}

#[tokio::test]
async fn mock_cluster_injected_produce_errors_lose_nothing_and_keep_order() {
    let broker = Broker::mock();
    let bus = broker.bus();
    broker.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let ids = products(10);
    let sent = sent_history(&ids, 10);
    for chunk in sent.chunks(7) {
        bus.publish(chunk)
            .await
            .expect("retried through the injected errors");
    }
    let arrived = read_as_a_new_subscriber(&bus, sent.len()).await;
    assert_in_order_per_product(&arrived, &ids, 10);
    assert_eq!(
        arrived.len(),
        sent.len(),
        "the idempotent producer wrote no duplicates"
    );
}

#[tokio::test]
async fn mock_cluster_a_broker_going_down_and_coming_back_loses_nothing() {
    let broker = Broker::mock();
    let bus = Arc::new(broker.bus());
    let ids = products(12);
    let sent = sent_history(&ids, 6);
    bus.publish(&sent[..24])
        .await
        .expect("publish before the outage");
    for partition in 0..PARTITIONS {
        let leader = broker
            .cluster()
            .partition_leader(&broker.topic, partition, Some(1));
        leader.expect("leader");
    }
    broker.cluster().broker_down(1).expect("broker 1 down");
    let publishing = {
        let bus = bus.clone();
        let rest = sent[24..].to_vec();
        tokio::spawn(async move { bus.publish(&rest).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !publishing.is_finished(),
        "publish waits while the leader is down"
    );
    broker.cluster().broker_up(1).expect("broker 1 up");
    publishing
        .await
        .expect("task")
        .expect("publish completes once the broker is back");
    let arrived = read_as_a_new_subscriber(&bus, sent.len()).await;
    assert_in_order_per_product(&arrived, &ids, 6);
}

#[tokio::test]
async fn setup_reports_an_existing_topic_and_verify_names_a_missing_one() {
    let broker = Broker::start().await;
    let bus = broker.bus();
    let report = bus.setup().await.expect("setup");
    assert!(report.contains("exists"), "{report}");
    bus.verify().await.expect("the topic exists");
    let mut missing = broker.config();
    missing.topic = format!("missing.{}", Uuid::new_v4().simple());
    let error = KafkaBus::connect(missing)
        .expect("bus")
        .verify()
        .await
        .expect_err("missing topic");
    assert!(error.to_string().contains("catalog bus setup"), "{error}");
}

#[tokio::test]
async fn mock_cluster_analytics_events_go_to_their_own_topic_keyed_by_event_id() {
    use events::analytics::{AnalyticsEnvelope, AnalyticsEvent, ProductViewed};
    use rdkafka::message::Headers;

    let broker = Broker::mock();
    let (bus, topic) = analytics_bus(&broker);
    let sent: Vec<AnalyticsEnvelope> = (0..5)
        .map(|_| {
            AnalyticsEvent::ProductViewed(ProductViewed {
                product_id: Uuid::now_v7(),
                category: "audio".into(),
            })
            .into_envelope(Utc::now())
        })
        .collect();
    bus.publish_analytics(&sent).await.expect("published");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.brokers)
        .set("group.id", format!("analyst-{}", Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("a message within 20 s")
            .expect("message");
        let envelope: AnalyticsEnvelope =
            serde_json::from_slice(message.payload().expect("payload")).expect("envelope");
        assert_eq!(
            message.key(),
            Some(envelope.event_id.to_string().as_bytes())
        );
        let headers = message.headers().expect("headers");
        let event_type = headers
            .iter()
            .find(|header| header.key == "event_type")
            .and_then(|header| header.value)
            .expect("event_type header");
        assert_eq!(event_type, b"ProductViewed");
        received.push(envelope);
    }
    received.sort_by_key(|envelope| envelope.event_id);
    let mut expected = sent.clone();
    expected.sort_by_key(|envelope| envelope.event_id);
    assert_eq!(received, expected);
}

#[tokio::test]
async fn mock_cluster_the_analytics_consumer_redelivers_a_batch_until_it_is_marked_applied() {
    use support::{read, searches, sorted};

    let broker = Broker::mock();
    let (bus, _) = analytics_bus(&broker);
    let bus = bus::ConfiguredBus::Kafka(std::sync::Arc::new(bus));
    let group = format!("analytics-{}", Uuid::new_v4().simple());
    let linger = Duration::from_millis(50);

    let first = searches("kettle", 5);
    bus.publish_analytics(&first).await.expect("published");
    // Read but never marked applied: the next consumer of the group gets them again.
    assert_eq!(
        read(&bus, &group, 5, false, linger).await,
        sorted(first.clone())
    );
    assert_eq!(read(&bus, &group, 5, true, linger).await, sorted(first));
    // Marked applied (and committed when that consumer closed): only new events follow.
    let second = searches("lamp", 5);
    bus.publish_analytics(&second).await.expect("published");
    assert_eq!(read(&bus, &group, 5, true, linger).await, sorted(second));
}

/// A bus on `broker` whose analytics topic is a new one of two partitions; and its name.
fn analytics_bus(broker: &Broker) -> (KafkaBus, String) {
    let topic = format!("catalog.analytics-events.{}", Uuid::new_v4().simple());
    broker
        .cluster()
        .create_topic(&topic, 2, 3)
        .expect("create the analytics topic");
    let mut config = broker.config();
    config.analytics_topic = topic.clone();
    (KafkaBus::connect(config).expect("bus"), topic)
}
