//! `KafkaBus`: the catalog's events on a Kafka topic (rdkafka, librdkafka bundled).
//!
//! - **Topic** `catalog.product-events` by default; **key** = the product (aggregate) id, so
//!   one product's events share a partition and keep their order. Default: 6 partitions,
//!   replication 3 (set with `?partitions=&replication=` on the URL; `catalog bus setup`
//!   creates the topic).
//! - **Producer**: idempotent (`enable.idempotence=true`, which implies `acks=all` and
//!   in-order retries per partition); `publish` returns only when every record was
//!   acknowledged by all in-sync replicas.
//! - **Body and headers**: the body is the envelope JSON; the headers repeat what a router
//!   needs without parsing it ([`crate::headers`]) and `content-type`; the W3C `traceparent`
//!   has the command's request id as trace id, so every event of one request shares a trace.
//! - **Consumers**: one consumer group per projector, offsets stored only once a delivery is
//!   acknowledged (`consume` says why that never skips an event).
//!
//! The files have fixed roles: `config` (the URL), `setup` (topics), `publish`, `consume`,
//! and `analytics` (the shopper analytics stream). This file holds the adapter and its public
//! methods, each handing over to the file of its role; no file here imports from this one.

mod analytics;
mod config;
mod consume;
mod publish;
mod setup;

use std::time::Duration;

use async_trait::async_trait;
use events::analytics::AnalyticsEnvelope;
use events::bus::{BusError, EventBus, EventStream};
use events::Envelope;
use rdkafka::producer::{FutureProducer, Producer};

pub use self::analytics::KafkaAnalyticsConsumer;
pub use self::config::{KafkaConfig, DEFAULT_PARTITIONS, DEFAULT_REPLICATION, DEFAULT_TOPIC};
pub use self::consume::header_map;
pub use crate::headers::traceparent;

/// The Kafka adapter of [`EventBus`]; see the module documentation.
pub struct KafkaBus {
    config: KafkaConfig,
    producer: FutureProducer,
}

impl KafkaBus {
    /// Creates the producer (it connects lazily) for `config`.
    pub fn connect(config: KafkaConfig) -> Result<Self, BusError> {
        let producer = publish::producer(&config)?;
        Ok(KafkaBus { config, producer })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Creates the topic when it is missing (`catalog bus setup`). Returns what it did.
    pub async fn setup(&self) -> Result<String, BusError> {
        setup::setup(&self.config).await
    }

    /// Fails with [`BusError::Missing`] when the topic does not exist.
    pub async fn verify(&self) -> Result<(), BusError> {
        setup::verify(&self.config).await
    }

    /// Creates the analytics topic when it is missing (`catalog bus setup`).
    pub async fn setup_analytics(&self) -> Result<String, BusError> {
        setup::setup_analytics(&self.config).await
    }

    /// Publishes shopper analytics envelopes to the analytics topic, keyed by event id (they
    /// have no order to keep), with `event_type` and `schema_version` headers. Waits for every
    /// acknowledgement; the first failure is returned after all were tried.
    pub async fn publish_analytics(&self, batch: &[AnalyticsEnvelope]) -> Result<(), BusError> {
        analytics::publish_analytics(&self.producer, &self.config.analytics_topic, batch).await
    }

    /// A consumer of the shopper analytics topic in the group `catalog.<subscriber>` (the
    /// analytics projector of the projectors role).
    pub fn analytics_consumer(&self, subscriber: &str) -> Result<KafkaAnalyticsConsumer, BusError> {
        KafkaAnalyticsConsumer::new(&self.config, subscriber)
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        self.publish_traced(envelopes, &[]).await
    }

    #[tracing::instrument(name = "kafka.produce", level = "debug", skip_all, fields(events = envelopes.len(), otel.kind = "producer"))]
    async fn publish_traced(
        &self,
        envelopes: &[Envelope],
        traceparents: &[Option<String>],
    ) -> Result<(), BusError> {
        let topic = &self.config.topic;
        publish::publish(&self.producer, topic, envelopes, traceparents).await?;
        metrics::counter!("catalog_bus_published_total", "bus" => "kafka")
            .increment(envelopes.len() as u64);
        Ok(())
    }

    async fn subscribe(&self, subscriber: &str, _after: u64) -> Result<EventStream, BusError> {
        consume::subscribe(&self.config, subscriber)
    }

    async fn ping(&self) -> Result<(), BusError> {
        setup::topic_partitions(&self.config).await.map(|_| ())
    }
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        // Hand anything still queued to the brokers before the process goes.
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}
