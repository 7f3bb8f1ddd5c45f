//! `SqsBus` against `moto_server` (real SNS and SQS APIs on loopback). Each test uses a topic
//! and queues of its own. The bus suite runs first; then what only SNS/SQS has (setup, group
//! and deduplication ids, the visibility heartbeat, the dead-letter queue, the analytics
//! topic).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use bus::sqs::{SqsBus, SqsConfig};
use events::bus::EventBus;
use events::conformance::bus::{
    assert_in_order_per_product, consume_distinct, history, next_delivery, numbered, products,
    BusFixture, Positions,
};
use events::{Envelope, NewEvent};
use futures::StreamExt;
use uuid::Uuid;

const SUBSCRIBER: &str = "read-model";

fn config() -> SqsConfig {
    let tag = &Uuid::new_v4().simple().to_string()[..10];
    SqsConfig::from_url(&format!(
        "sns+sqs://{}?region=us-east-1&topic=events-{tag}&queue_prefix=t{tag}-&wait_seconds=1&visibility_seconds=3&max_receive_count=3",
        testkit::moto_endpoint()
    ))
    .expect("config")
}

async fn ready_bus() -> SqsBus {
    let bus = SqsBus::connect(config()).await.expect("connect");
    bus.setup(&[SUBSCRIBER]).await.expect("setup");
    bus
}

/// `per_product` events for each of `ids`, interleaved, at positions from 1.
fn sent_history(ids: &[Uuid], per_product: u64) -> Vec<Envelope> {
    numbered(history(ids, per_product), 1)
}

/// A topic of its own on moto, as the bus suite's fixture; each subscriber gets its queue.
struct Sqs {
    bus: Arc<SqsBus>,
    subscribers: AtomicUsize,
    positions: Positions,
}

impl Sqs {
    async fn start() -> Sqs {
        Sqs {
            bus: Arc::new(SqsBus::connect(config()).await.expect("connect")),
            subscribers: AtomicUsize::new(0),
            positions: Positions::default(),
        }
    }
}

#[async_trait(?Send)]
impl BusFixture for Sqs {
    fn bus(&self) -> Arc<dyn EventBus> {
        self.bus.clone()
    }

    async fn new_subscriber(&self) -> String {
        let name = format!("reader-{}", self.subscribers.fetch_add(1, Ordering::SeqCst));
        self.bus.setup(&[&name]).await.expect("setup");
        name
    }

    async fn commit(&self, events: Vec<NewEvent>) -> Vec<Envelope> {
        self.positions.commit(events)
    }

    /// Past the 3 s visibility timeout: an unacknowledged message would be back by then.
    fn quiet_period(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn redelivers_in_order(&self) -> bool {
        false
    }
}

mod event_bus_suite {
    events::event_bus_suite!(super::Sqs::start());
}

fn raw_sqs() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{}", testkit::moto_endpoint()))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("queue exists")
        .queue_url()
        .expect("url")
        .to_owned()
}

#[tokio::test]
async fn setup_creates_the_topic_queues_and_dead_letter_queues_and_verify_names_what_is_missing() {
    let bus = SqsBus::connect(config()).await.expect("connect");
    let error = bus
        .verify(&[SUBSCRIBER])
        .await
        .expect_err("nothing exists yet");
    assert!(error.to_string().contains("catalog bus setup"), "{error}");
    let report = bus.setup(&[SUBSCRIBER]).await.expect("setup");
    assert_eq!(report.len(), 2, "{report:?}");
    // Setup is safe to run again.
    bus.setup(&[SUBSCRIBER]).await.expect("setup again");
    bus.verify(&[SUBSCRIBER]).await.expect("everything exists");
    let error = bus
        .verify(&["other"])
        .await
        .expect_err("no queue for other");
    assert!(error.to_string().contains("other.fifo"), "{error}");

    let sqs = raw_sqs();
    let url = queue_url(&sqs, &bus.config().queue_name(SUBSCRIBER)).await;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attributes = attributes.attributes().expect("some");
    assert_eq!(attributes[&QueueAttributeName::FifoQueue], "true");
    let redrive: serde_json::Value =
        serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).expect("json");
    assert!(redrive["deadLetterTargetArn"]
        .as_str()
        .is_some_and(|arn| arn.ends_with("read-model-dlq.fifo")));
}

#[tokio::test]
async fn messages_carry_the_product_as_group_the_event_as_deduplication_id_and_the_metadata() {
    let bus = ready_bus().await;
    let ids = products(4);
    let sent = sent_history(&ids, 6);
    bus.publish(&sent).await.expect("publish");

    // What a consumer with another SDK sees: raw bodies, the group and dedup ids, attributes.
    let sqs = raw_sqs();
    let url = queue_url(&sqs, &bus.config().queue_name(SUBSCRIBER)).await;
    let peek = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let message = &peek.messages()[0];
    let envelope: Envelope = serde_json::from_str(message.body().expect("body")).expect("raw body");
    let system = message.attributes().expect("system attributes");
    assert_eq!(
        system[&MessageSystemAttributeName::MessageGroupId],
        envelope.aggregate_id.to_string()
    );
    assert_eq!(
        system[&MessageSystemAttributeName::MessageDeduplicationId],
        envelope.event_id.to_string()
    );
    let attributes = message.message_attributes().expect("message attributes");
    assert_eq!(
        attributes["event_type"].string_value(),
        Some("SaleRecorded")
    );
    assert_eq!(
        attributes["position"].string_value(),
        Some(envelope.position.to_string().as_str())
    );
    // Hand it back at once.
    sqs.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(message.receipt_handle().expect("receipt"))
        .visibility_timeout(0)
        .send()
        .await
        .expect("release");

    // The released message keeps its place: still each once, in order per product.
    let mut stream = bus.subscribe(SUBSCRIBER, 0).await.expect("subscribe");
    let arrived = consume_distinct(&mut stream, sent.len()).await;
    assert_eq!(arrived.len(), sent.len());
    assert_in_order_per_product(&arrived, &ids, 6);
}

#[tokio::test]
async fn a_held_event_stays_invisible_past_the_visibility_timeout_while_it_is_worked_on() {
    let bus = ready_bus().await;
    let sent = sent_history(&products(1), 1);
    bus.publish(&sent).await.expect("publish");
    let mut slow = bus.subscribe(SUBSCRIBER, 0).await.expect("subscribe");
    let held = next_delivery(&mut slow).await;
    // Twice the 3 s visibility timeout: without the heartbeat, another consumer gets it.
    let mut other = bus.subscribe(SUBSCRIBER, 0).await.expect("subscribe");
    let stolen = tokio::time::timeout(Duration::from_secs(7), other.next()).await;
    assert!(
        stolen.is_err(),
        "the held message was delivered to another consumer"
    );
    held.ack().await.expect("ack");
}

#[tokio::test]
async fn a_message_that_is_not_an_envelope_ends_in_the_dead_letter_queue() {
    let bus = ready_bus().await;
    let sqs = raw_sqs();
    let url = queue_url(&sqs, &bus.config().queue_name(SUBSCRIBER)).await;
    sqs.send_message()
        .queue_url(&url)
        .message_body("not an envelope")
        .message_group_id("poison")
        .message_deduplication_id("poison-1")
        .send()
        .await
        .expect("send");
    let good = sent_history(&products(1), 1);
    bus.publish(&good).await.expect("publish");
    let mut stream = bus.subscribe(SUBSCRIBER, 0).await.expect("subscribe");
    let delivery = next_delivery(&mut stream).await;
    assert_eq!(
        delivery.envelope.event_id, good[0].event_id,
        "the good one still arrives"
    );
    delivery.ack().await.expect("ack");
    let dead_letters = queue_url(&sqs, &bus.config().dead_letter_queue_name(SUBSCRIBER)).await;
    // Keep receiving (the poison message is skipped each time) until it moved.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
        let moved = sqs
            .receive_message()
            .queue_url(&dead_letters)
            .send()
            .await
            .expect("receive");
        if let Some(message) = moved.messages().first() {
            assert_eq!(message.body(), Some("not an envelope"));
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the poison message never reached the dead-letter queue"
        );
    }
}

#[tokio::test]
async fn analytics_events_go_through_their_own_topic_and_queue_until_a_batch_is_applied() {
    use support::{read, searches, sorted};

    let tag = &Uuid::new_v4().simple().to_string()[..10];
    let config = SqsConfig::from_url(&format!(
        "sns+sqs://{}?region=us-east-1&topic=events-{tag}&analytics_topic=analytics-{tag}&queue_prefix=t{tag}-&wait_seconds=1&visibility_seconds=3",
        testkit::moto_endpoint()
    ))
    .expect("config");
    let bus = bus::ConfiguredBus::Sqs(std::sync::Arc::new(
        SqsBus::connect(config).await.expect("connect"),
    ));
    let error = bus
        .analytics_consumer("analytics-events")
        .await
        .err()
        .expect("no queue before setup");
    assert!(error.to_string().contains("catalog bus setup"), "{error}");
    let report = bus
        .setup_analytics("analytics-events")
        .await
        .expect("setup");
    assert!(
        report
            .iter()
            .any(|line| line.contains(&format!("t{tag}-analytics-events"))),
        "{report:?}"
    );
    let linger = Duration::from_millis(200);
    let subscriber = "analytics-events";

    // More than one PublishBatch (10 entries each).
    let first = searches("kettle", 12);
    bus.publish_analytics(&first).await.expect("published");
    // Read but never deleted: visible again after the visibility timeout (3 s).
    assert_eq!(
        read(&bus, subscriber, 12, false, linger).await,
        sorted(first.clone())
    );
    assert_eq!(
        read(&bus, subscriber, 12, true, linger).await,
        sorted(first)
    );
    // Deleted: past another visibility timeout only new events follow (undeleted ones would
    // be visible again by now and come first or mixed in).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = searches("lamp", 5);
    bus.publish_analytics(&second).await.expect("published");
    assert_eq!(
        read(&bus, subscriber, 5, true, linger).await,
        sorted(second)
    );
}
