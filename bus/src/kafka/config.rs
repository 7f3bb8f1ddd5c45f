//! `CATALOG_BUS=kafka://…`: brokers, topics, partitions, and the librdkafka options every client
//! of the adapter starts from.

use events::bus::BusError;
use rdkafka::config::ClientConfig;

use crate::bus_url::BusUrl;

/// The default topic of the catalog's events.
pub const DEFAULT_TOPIC: &str = "catalog.product-events";
/// The default partition count: enough for six projector workers per group, small enough for
/// one broker. Raise it before the topic is created; Kafka cannot re-key existing events.
pub const DEFAULT_PARTITIONS: i32 = 6;
pub const DEFAULT_REPLICATION: i32 = 3;

/// Parsed `CATALOG_BUS=kafka://host:9092[,host2:9092][?topic=&partitions=&replication=&rdkafka.<option>=]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topic: String,
    pub partitions: i32,
    pub replication: i32,
    /// The shopper analytics stream (`?analytics_topic=`; default `catalog.analytics-events`).
    pub analytics_topic: String,
    /// Extra librdkafka options (`rdkafka.security.protocol=SASL_SSL`, …), given to every client.
    pub client_options: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(brokers: &str) -> Self {
        KafkaConfig {
            brokers: brokers.to_owned(),
            topic: DEFAULT_TOPIC.to_owned(),
            partitions: DEFAULT_PARTITIONS,
            replication: DEFAULT_REPLICATION,
            analytics_topic: events::analytics::ANALYTICS_TOPIC.to_owned(),
            client_options: Vec::new(),
        }
    }

    pub fn from_url(url: &str) -> Result<Self, BusError> {
        let url = BusUrl::parse(url, "kafka://", "a Kafka URL starts with kafka://")?;
        if url.hosts.is_empty()
            || url
                .hosts
                .split(',')
                .any(|host| host.is_empty() || !host.contains(':'))
        {
            return Err(url.invalid(
                "name the brokers as host:port, comma-separated (kafka://127.0.0.1:9092)",
            ));
        }
        let mut config = KafkaConfig::new(url.hosts);
        for (key, value) in url.parameters() {
            match key.as_ref() {
                "topic" if !value.is_empty() => config.topic = value.into_owned(),
                "analytics_topic" if !value.is_empty() => {
                    config.analytics_topic = value.into_owned()
                }
                "partitions" => {
                    config.partitions = url.number(
                        &value,
                        1..=i32::MAX,
                        "partitions must be a positive integer",
                    )?
                }
                "replication" => {
                    config.replication = url.number(
                        &value,
                        1..=i32::MAX,
                        "replication must be a positive integer",
                    )?
                }
                other => match other.strip_prefix("rdkafka.") {
                    Some(option) => config
                        .client_options
                        .push((option.to_owned(), value.into_owned())),
                    None => return Err(url.invalid(&format!("unknown parameter {other:?}"))),
                },
            }
        }
        Ok(config)
    }

    /// The brokers and the options given on the URL: what every client starts from.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        self.apply_client_options(&mut config);
        config
    }

    /// Sets the options given on the URL (`rdkafka.<option>=`) on `config`, over its defaults.
    pub(crate) fn apply_client_options(&self, config: &mut ClientConfig) {
        for (key, value) in &self.client_options {
            config.set(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_url_names_brokers_and_options() {
        let config = KafkaConfig::from_url(
            "kafka://a:9092,b:9093/?topic=t&partitions=12&replication=1&rdkafka.client.id=x",
        )
        .expect("valid");
        assert_eq!(config.brokers, "a:9092,b:9093");
        assert_eq!(config.topic, "t");
        assert_eq!((config.partitions, config.replication), (12, 1));
        assert_eq!(
            config.client_options,
            vec![("client.id".to_owned(), "x".to_owned())]
        );
        let defaults = KafkaConfig::from_url("kafka://127.0.0.1:9092").expect("valid");
        assert_eq!(defaults.topic, DEFAULT_TOPIC);
        assert_eq!(defaults.partitions, DEFAULT_PARTITIONS);
    }

    #[test]
    fn a_malformed_kafka_url_says_what_is_wrong() {
        for url in [
            "kafka://",
            "kafka://host",
            "http://a:1",
            "kafka://a:1?partitions=0",
            "kafka://a:1?color=red",
        ] {
            let error = KafkaConfig::from_url(url).expect_err(url);
            assert!(matches!(error, BusError::Invalid(_)), "{url}: {error}");
        }
    }
}
