//! The shopper analytics stream on Kafka: its own topic, records keyed by event id (they have
//! no order to keep), read in batches whose offsets are stored once the batch is applied.

use std::collections::BTreeMap;
use std::time::Duration;

use events::analytics::AnalyticsEnvelope;
use events::bus::BusError;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

use super::config::KafkaConfig;
use super::consume::{consumer, origin};
use super::publish::{check_delivery, owned_headers};
use crate::analytics::batch::{AnalyticsBatch, BatchAck};
use crate::error::unavailable;
use crate::headers::analytics_headers;

/// Publishes `batch` to `topic` and waits for every acknowledgement; the first failure is
/// returned after all were tried.
pub(super) async fn publish_analytics(
    producer: &FutureProducer,
    topic: &str,
    batch: &[AnalyticsEnvelope],
) -> Result<(), BusError> {
    let mut deliveries = Vec::with_capacity(batch.len());
    for envelope in batch {
        let payload = serde_json::to_vec(envelope).unwrap_or_default();
        let key = envelope.event_id.to_string();
        let metadata = analytics_headers(envelope);
        let headers = owned_headers(metadata.iter().map(|(key, value)| (*key, value.as_str())));
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        // Enqueued at once (librdkafka's queue); a full queue is an error, not a wait.
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => return Err(unavailable(error)),
        }
    }
    let sends = deliveries
        .into_iter()
        .map(|delivery| async move { check_delivery(delivery.await) });
    let results = futures::future::join_all(sends).await;
    results.into_iter().collect()
}

/// Reads the shopper analytics topic; see [`crate::analytics::AnalyticsConsumer`].
pub struct KafkaAnalyticsConsumer {
    consumer: super::consume::GroupConsumer,
}

impl KafkaAnalyticsConsumer {
    /// A consumer of the analytics topic in the group `catalog.<subscriber>`.
    pub(super) fn new(config: &KafkaConfig, subscriber: &str) -> Result<Self, BusError> {
        Ok(KafkaAnalyticsConsumer {
            consumer: consumer(config, subscriber, &config.analytics_topic)?,
        })
    }

    /// Waits for a message, then takes whatever else arrives within `linger`, up to `max`.
    pub(crate) async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
    ) -> Result<AnalyticsBatch, BusError> {
        let mut batch = AnalyticsBatch::default();
        let mut offsets = BTreeMap::new();
        let mut add = |message: &BorrowedMessage<'_>| {
            batch.add(message.payload(), || origin(message));
            let highest: &mut i64 = offsets
                .entry((message.topic().to_owned(), message.partition()))
                .or_default();
            *highest = (*highest).max(message.offset());
        };
        let first = self.consumer.recv().await.map_err(unavailable)?;
        add(&first);
        let deadline = tokio::time::Instant::now() + linger;
        let mut taken = 1;
        while taken < max.max(1) {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => add(&message),
                // What was read so far is handed over; the error shows on the next call.
                Ok(Err(_)) | Err(_) => break,
            }
            taken += 1;
        }
        batch.ack = BatchAck::Kafka(offsets);
        Ok(batch)
    }

    /// Stores the offsets of `batch` for the next commit.
    pub(crate) fn applied(&self, offsets: &BTreeMap<(String, i32), i64>) -> Result<(), BusError> {
        for ((topic, partition), offset) in offsets {
            self.consumer
                .store_offset(topic, *partition, *offset)
                .map_err(unavailable)?;
        }
        Ok(())
    }
}
