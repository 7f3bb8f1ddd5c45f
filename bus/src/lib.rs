//! The bus adapters of the distributed mode, picked by `CATALOG_BUS`:
//!
//! - [`kafka::KafkaBus`], for URLs `kafka://host:9092,…?topic=&partitions=&replication=`.
//! - [`sqs::SqsBus`], for URLs `sns+sqs://host:port?region=&topic=&queue_prefix=` (an SNS FIFO
//!   topic fanned out to one SQS FIFO queue per projector).
//! - [`analytics`]: the shopper analytics stream on either of them.
//! - [`headers`]: the metadata both carry beside each message body, under the same names.
//!
//! Each adapter is a folder with the same files: `config.rs` (its URL), `setup.rs` (what
//! `catalog bus setup` creates and `serve` checks), `publish.rs`, `consume.rs` and
//! `analytics.rs`, and a `mod.rs` holding the adapter, whose methods hand over to them.
//!
//! The port ([`events::bus::EventBus`]) and the embedded in-process adapter live in `events`;
//! these adapters are a crate of their own so that the event types (which analysts' tools
//! depend on) do not pull in librdkafka and the AWS SDK.

pub mod analytics;
mod bus_url;
mod error;
pub mod headers;
pub mod kafka;
pub mod sqs;

use std::sync::Arc;

use events::bus::{BusError, EventBus};

/// A bus chosen by URL, with the setup and checks its kind needs.
#[derive(Clone)]
pub enum ConfiguredBus {
    Kafka(Arc<kafka::KafkaBus>),
    Sqs(Arc<sqs::SqsBus>),
}

impl ConfiguredBus {
    /// Parses `url` and builds the client; does not talk to the bus yet.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        if url.starts_with("kafka://") {
            let config = kafka::KafkaConfig::from_url(url)?;
            return Ok(ConfiguredBus::Kafka(Arc::new(kafka::KafkaBus::connect(
                config,
            )?)));
        }
        if url.starts_with("sns+sqs://") {
            let config = sqs::SqsConfig::from_url(url)?;
            return Ok(ConfiguredBus::Sqs(Arc::new(
                sqs::SqsBus::connect(config).await?,
            )));
        }
        Err(BusError::Invalid(format!(
            "CATALOG_BUS {url:?} is not a bus URL: use kafka://host:9092 or sns+sqs://[host:port]"
        )))
    }

    pub fn bus(&self) -> Arc<dyn EventBus> {
        match self {
            ConfiguredBus::Kafka(bus) => bus.clone(),
            ConfiguredBus::Sqs(bus) => bus.clone(),
        }
    }

    /// Creates what the bus needs for these subscribers (`catalog bus setup`); one line per
    /// thing made or found.
    pub async fn setup(&self, subscribers: &[&str]) -> Result<Vec<String>, BusError> {
        match self {
            ConfiguredBus::Kafka(bus) => Ok(vec![bus.setup().await?]),
            ConfiguredBus::Sqs(bus) => bus.setup(subscribers).await,
        }
    }

    /// Checks that what the bus needs for these subscribers exists.
    pub async fn verify(&self, subscribers: &[&str]) -> Result<(), BusError> {
        match self {
            ConfiguredBus::Kafka(bus) => bus.verify().await,
            ConfiguredBus::Sqs(bus) => bus.verify(subscribers).await,
        }
    }
}
