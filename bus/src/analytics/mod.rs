//! The shopper analytics stream (`ProductViewed`, `SearchPerformed`) on either bus: published
//! by query processes, counted into the shared analytics view by the projectors role.
//!
//! - Kafka: topic `catalog.analytics-events` (`?analytics_topic=`), key = event id, headers
//!   `event_type` and `schema_version`; the catalog counts it in consumer group
//!   `catalog.analytics-events`.
//! - SNS/SQS: a standard (not FIFO: these events have no order to keep) SNS topic
//!   `catalog-analytics-events` (`?analytics_topic=`), message attributes `event_type` and
//!   `schema_version`, fanned out with raw delivery to the standard queue
//!   `<queue_prefix>analytics-events` that the catalog counts, and to any queue an analyst
//!   subscribes.
//!
//! Either way a batch is acknowledged (offsets stored, messages deleted) only once the caller
//! marks it applied: at least once.

pub(crate) mod batch;

use std::time::Duration;

use events::analytics::AnalyticsEnvelope;
use events::bus::BusError;

pub use self::batch::AnalyticsBatch;
use self::batch::BatchAck;
use crate::kafka::KafkaAnalyticsConsumer;
use crate::sqs::SqsAnalyticsConsumer;
use crate::ConfiguredBus;

/// Reads the analytics stream in batches for one consumer (group or queue).
pub enum AnalyticsConsumer {
    Kafka(KafkaAnalyticsConsumer),
    Sqs(SqsAnalyticsConsumer),
}

impl AnalyticsConsumer {
    /// Waits for a message, then takes whatever else arrives within `linger`, up to `max`.
    pub async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
    ) -> Result<AnalyticsBatch, BusError> {
        match self {
            AnalyticsConsumer::Kafka(consumer) => consumer.next_batch(max, linger).await,
            AnalyticsConsumer::Sqs(consumer) => consumer.next_batch(max, linger).await,
        }
    }

    /// Acknowledges `batch`: it will not be delivered to this consumer again.
    pub async fn applied(&self, batch: &AnalyticsBatch) -> Result<(), BusError> {
        match (self, &batch.ack) {
            (AnalyticsConsumer::Kafka(consumer), BatchAck::Kafka(offsets)) => {
                consumer.applied(offsets)
            }
            (AnalyticsConsumer::Sqs(consumer), BatchAck::Sqs(receipts)) => {
                consumer.applied(receipts).await
            }
            _ => Ok(()),
        }
    }
}

impl ConfiguredBus {
    /// Publishes shopper analytics envelopes; waits until the bus has every one.
    pub async fn publish_analytics(&self, batch: &[AnalyticsEnvelope]) -> Result<(), BusError> {
        match self {
            ConfiguredBus::Kafka(bus) => bus.publish_analytics(batch).await,
            ConfiguredBus::Sqs(bus) => bus.publish_analytics(batch).await,
        }
    }

    /// A consumer of the analytics stream named `subscriber` (the Kafka consumer group
    /// `catalog.<subscriber>`, the SQS queue `<queue_prefix><subscriber>`).
    pub async fn analytics_consumer(
        &self,
        subscriber: &str,
    ) -> Result<AnalyticsConsumer, BusError> {
        Ok(match self {
            ConfiguredBus::Kafka(bus) => {
                AnalyticsConsumer::Kafka(bus.analytics_consumer(subscriber)?)
            }
            ConfiguredBus::Sqs(bus) => {
                AnalyticsConsumer::Sqs(bus.analytics_consumer(subscriber).await?)
            }
        })
    }

    /// Creates the analytics stream (`catalog bus setup`), with the queue of `subscriber` on
    /// SNS/SQS. One line per thing made or found.
    pub async fn setup_analytics(&self, subscriber: &str) -> Result<Vec<String>, BusError> {
        match self {
            ConfiguredBus::Kafka(bus) => Ok(vec![bus.setup_analytics().await?]),
            ConfiguredBus::Sqs(bus) => bus.setup_analytics(subscriber).await,
        }
    }
}
