//! `catalog bus setup` and the checks of `serve` on Kafka: the topics exist, or are created
//! with the configured partitions and replication.

use std::time::Duration;

use events::bus::BusError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use super::config::KafkaConfig;
use crate::error::{unavailable, unexpected};

fn admin(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, BusError> {
    config
        .client_config()
        .create()
        .map_err(|error| BusError::Invalid(format!("cannot create a Kafka admin client: {error}")))
}

/// Partitions of the events topic, `None` when it does not exist.
pub(super) async fn topic_partitions(config: &KafkaConfig) -> Result<Option<usize>, BusError> {
    let admin = admin(config)?;
    let topic = config.topic.clone();
    tokio::task::spawn_blocking(move || {
        // All topics, not `Some(&topic)`: asking for one by name lets a broker with
        // auto-creation create it, and a missing topic must be reported, not made.
        let metadata = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(5))
            .map_err(unavailable)?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        match found.error() {
            None => Ok(Some(found.partitions().len())),
            Some(error)
                if RDKafkaErrorCode::from(error) == RDKafkaErrorCode::UnknownTopicOrPartition =>
            {
                Ok(None)
            }
            Some(error) => Err(BusError::Unavailable(format!(
                "Kafka metadata for {topic}: {:?}",
                RDKafkaErrorCode::from(error)
            ))),
        }
    })
    .await
    .map_err(unexpected)?
}

/// Creates the events topic when it is missing. Returns what it did.
pub(super) async fn setup(config: &KafkaConfig) -> Result<String, BusError> {
    if let Some(partitions) = topic_partitions(config).await? {
        return Ok(format!(
            "Kafka topic {} exists with {partitions} partitions",
            config.topic
        ));
    }
    create_topic(config, &config.topic).await?;
    Ok(format!(
        "created Kafka topic {} with {} partitions, replication {}",
        config.topic, config.partitions, config.replication
    ))
}

/// Creates the analytics topic when it is missing.
pub(super) async fn setup_analytics(config: &KafkaConfig) -> Result<String, BusError> {
    let created = create_topic(config, &config.analytics_topic).await?;
    Ok(if created {
        format!("created Kafka topic {}", config.analytics_topic)
    } else {
        format!("Kafka topic {} exists", config.analytics_topic)
    })
}

/// Creates `name` with the configured partitions and replication; `false` when it existed.
async fn create_topic(config: &KafkaConfig, name: &str) -> Result<bool, BusError> {
    let topic = NewTopic::new(
        name,
        config.partitions,
        TopicReplication::Fixed(config.replication),
    );
    let results = admin(config)?
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(unavailable)?;
    let mut created = false;
    for result in results {
        match result {
            Ok(_) => created = true,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(BusError::Unavailable(format!(
                    "cannot create Kafka topic {name}: {code}"
                )))
            }
        }
    }
    Ok(created)
}

/// Fails with [`BusError::Missing`] when the events topic does not exist.
pub(super) async fn verify(config: &KafkaConfig) -> Result<(), BusError> {
    match topic_partitions(config).await? {
        Some(_) => Ok(()),
        None => Err(BusError::Missing(format!(
            "the Kafka topic {} does not exist at {}; create it with `catalog bus setup`",
            config.topic, config.brokers
        ))),
    }
}
