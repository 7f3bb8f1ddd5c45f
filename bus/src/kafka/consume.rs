//! Consuming on Kafka: one consumer group per projector (`catalog.<projector>`). Offsets are
//! stored (`enable.auto.offset.store=false` + `store_offset`) only when the projector
//! acknowledges a delivery, i.e. after the view applied it, and committed by librdkafka's
//! auto-commit, including on rebalance revocation and close. An offset is never stored for an
//! event that was not applied, so a rebalance can replay events but never skip one.

use std::collections::HashMap;
use std::sync::Arc;

use events::bus::{Acknowledge, BusError, Delivery, EventStream};
use futures::future::BoxFuture;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use rdkafka::Message;

use super::config::KafkaConfig;
use crate::error::unavailable;
use crate::headers::decode_envelope;

/// A group's consumer, reporting its lag.
pub(super) type GroupConsumer = StreamConsumer<LagReporting>;

/// Sets `catalog_bus_consumer_lag{subscriber,partition}` from librdkafka's statistics (every
/// 5 s): the messages of each assigned partition after the group's position, per consumer.
pub(super) struct LagReporting {
    subscriber: String,
}

impl ClientContext for LagReporting {
    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for (partition, stats) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag of -1 is unknown.
                if *partition < 0 || stats.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(
                    "catalog_bus_consumer_lag",
                    "subscriber" => self.subscriber.clone(),
                    "topic" => topic.topic.clone(),
                    "partition" => partition.to_string(),
                )
                .set(stats.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for LagReporting {}

/// A consumer in the group of `subscriber`, subscribed to `topic`. Options given on the URL
/// (`rdkafka.<option>=`) override these defaults.
pub(super) fn consumer(
    config: &KafkaConfig,
    subscriber: &str,
    topic: &str,
) -> Result<GroupConsumer, BusError> {
    let mut client = config.client_config();
    client
        .set("group.id", format!("catalog.{subscriber}"))
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "100")
        .set("statistics.interval.ms", "5000");
    config.apply_client_options(&mut client);
    let context = LagReporting {
        subscriber: subscriber.to_owned(),
    };
    let consumer: GroupConsumer = client
        .create_with_context(context)
        .map_err(|error| BusError::Invalid(format!("cannot create a Kafka consumer: {error}")))?;
    consumer.subscribe(&[topic]).map_err(unavailable)?;
    Ok(consumer)
}

/// The deliveries of the events topic to `subscriber`, each acknowledged by storing its offset.
pub(super) fn subscribe(config: &KafkaConfig, subscriber: &str) -> Result<EventStream, BusError> {
    let consumer = Arc::new(consumer(config, subscriber, &config.topic)?);
    let subscriber = subscriber.to_owned();
    let stream = futures::stream::unfold(consumer, move |consumer| {
        let subscriber = subscriber.clone();
        async move {
            let item = next_delivery(&consumer, &subscriber).await;
            Some((item, consumer))
        }
    });
    Ok(Box::pin(stream))
}

/// The next message that is an envelope, as a delivery.
async fn next_delivery(
    consumer: &Arc<GroupConsumer>,
    subscriber: &str,
) -> Result<Delivery, BusError> {
    loop {
        let message = consumer.recv().await.map_err(unavailable)?;
        let topic = message.topic().to_owned();
        let partition = message.partition();
        let offset = message.offset();
        match decode_envelope(message.payload()) {
            Ok(envelope) => {
                let acker = consumer.clone();
                let ack: Acknowledge = Box::new(move || {
                    Box::pin(async move {
                        acker
                            .store_offset(&topic, partition, offset)
                            .map_err(unavailable)
                    }) as BoxFuture<'static, _>
                });
                let traceparent = header(&message, "traceparent");
                return Ok(Delivery::with_ack(envelope, ack).traced(traceparent));
            }
            Err(error) => {
                // Not an envelope: no projector can apply it. Skip it (the event store keeps
                // the truth; a later version of the product repairs the gap from there).
                tracing::error!(%subscriber, %topic, partition, offset, %error, "skipping a message that is not an envelope");
                metrics::counter!("catalog_bus_undecodable_total", "bus" => "kafka").increment(1);
                let _ = consumer.store_offset(&topic, partition, offset);
            }
        }
    }
}

/// Header `name` of a consumed message, as text.
fn header(message: &impl Message, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| header.value)
        .and_then(|value| std::str::from_utf8(value).ok())
        .map(str::to_owned)
}

/// The headers of a consumed message, by name (for tests and tools).
pub fn header_map(message: &impl Message) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if let Some(value) = header.value {
                map.insert(
                    header.key.to_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                );
            }
        }
    }
    map
}

/// Where a consumed message stands: `topic/partition@offset` (for logs).
pub(super) fn origin(message: &BorrowedMessage<'_>) -> String {
    format!(
        "{}/{}@{}",
        message.topic(),
        message.partition(),
        message.offset()
    )
}
