//! `CATALOG_BUS=sns+sqs://…`: the endpoint, the region, the names of the topics and queues, and
//! the queues' timings.

use events::bus::BusError;

use crate::bus_url::BusUrl;

pub const DEFAULT_TOPIC: &str = "catalog-product-events";
pub const DEFAULT_QUEUE_PREFIX: &str = "catalog-";
pub const DEFAULT_ANALYTICS_TOPIC: &str = "catalog-analytics-events";

/// Parsed `CATALOG_BUS=sns+sqs://[host:port][?region=&topic=&queue_prefix=&tls=&wait_seconds=&visibility_seconds=&max_receive_count=]`.
///
/// With a host, the SNS and SQS API are at `http://host:port` (LocalStack, moto); without one,
/// at AWS's own endpoints for the region. Credentials come from the usual AWS chain
/// (environment, profile, instance role); against a local endpoint without any, test
/// credentials are used.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsConfig {
    pub endpoint: Option<String>,
    pub region: String,
    /// The topic's name without `.fifo`.
    pub topic: String,
    pub queue_prefix: String,
    /// Long-polling wait of each receive, 0–20 s.
    pub wait_seconds: i32,
    /// The queues' visibility timeout (set by `bus setup`); held messages are extended every
    /// third of it.
    pub visibility_seconds: i32,
    /// Receives after which a message moves to the dead-letter queue (set by `bus setup`).
    pub max_receive_count: u32,
    /// The shopper analytics topic (standard, not FIFO); see [`crate::analytics`].
    pub analytics_topic: String,
}

impl SqsConfig {
    pub fn from_url(url: &str) -> Result<Self, BusError> {
        let url = BusUrl::parse(url, "sns+sqs://", "an SNS/SQS URL starts with sns+sqs://")?;
        let mut tls = false;
        let mut config = SqsConfig {
            endpoint: None,
            region: std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|_| "us-east-1".to_owned()),
            topic: DEFAULT_TOPIC.to_owned(),
            queue_prefix: DEFAULT_QUEUE_PREFIX.to_owned(),
            wait_seconds: 20,
            visibility_seconds: 30,
            max_receive_count: 10,
            analytics_topic: DEFAULT_ANALYTICS_TOPIC.to_owned(),
        };
        for (key, value) in url.parameters() {
            match key.as_ref() {
                "region" if !value.is_empty() => config.region = value.into_owned(),
                "topic" => config.topic = value.trim_end_matches(".fifo").to_owned(),
                "analytics_topic" => config.analytics_topic = value.into_owned(),
                "queue_prefix" => config.queue_prefix = value.into_owned(),
                "tls" => tls = value == "true",
                "wait_seconds" => {
                    config.wait_seconds =
                        url.number(&value, 0..=20, "wait_seconds must be 0 to 20")?
                }
                "visibility_seconds" => {
                    config.visibility_seconds =
                        url.number(&value, 3..=43_200, "visibility_seconds must be 3 to 43200")?
                }
                "max_receive_count" => {
                    config.max_receive_count =
                        url.number(&value, 1..=1000, "max_receive_count must be 1 to 1000")?
                }
                other => return Err(url.invalid(&format!("unknown parameter {other:?}"))),
            }
        }
        config.endpoint = endpoint(&url, tls)?;
        config.check_names(&url)?;
        Ok(config)
    }

    /// Topic and queue names hold only what SNS and SQS accept in every position.
    fn check_names(&self, url: &BusUrl<'_>) -> Result<(), BusError> {
        let valid_name = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid_name(&self.topic) || !valid_name(&self.analytics_topic) {
            return Err(
                url.invalid("topic and analytics_topic may hold only letters, digits, - and _")
            );
        }
        if !self.queue_prefix.is_empty() && !valid_name(&self.queue_prefix) {
            return Err(url.invalid("queue_prefix may hold only letters, digits, - and _"));
        }
        Ok(())
    }

    pub fn topic_name(&self) -> String {
        format!("{}.fifo", self.topic)
    }

    pub fn queue_name(&self, subscriber: &str) -> String {
        format!("{}{subscriber}.fifo", self.queue_prefix)
    }

    pub fn dead_letter_queue_name(&self, subscriber: &str) -> String {
        format!("{}{subscriber}-dlq.fifo", self.queue_prefix)
    }

    /// The standard queue of an analytics consumer.
    pub fn analytics_queue_name(&self, subscriber: &str) -> String {
        format!("{}{subscriber}", self.queue_prefix)
    }
}

/// The endpoint the URL names (`None`: AWS's own for the region).
fn endpoint(url: &BusUrl<'_>, tls: bool) -> Result<Option<String>, BusError> {
    let host = url.hosts;
    if host.is_empty() {
        return Ok(None);
    }
    if !host.contains(':') || host.contains('/') {
        return Err(url.invalid("name the endpoint as host:port (sns+sqs://127.0.0.1:4566)"));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(Some(format!("{scheme}://{host}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sns_sqs_url_names_the_endpoint_and_options() {
        let config = SqsConfig::from_url(
            "sns+sqs://127.0.0.1:4566?region=eu-west-1&topic=t&queue_prefix=p-",
        )
        .expect("valid");
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.topic_name(), "t.fifo");
        assert_eq!(config.queue_name("read-model"), "p-read-model.fifo");
        assert_eq!(
            config.dead_letter_queue_name("read-model"),
            "p-read-model-dlq.fifo"
        );
        let aws = SqsConfig::from_url("sns+sqs://?region=us-west-2").expect("valid");
        assert_eq!(aws.endpoint, None);
        assert_eq!(aws.topic_name(), "catalog-product-events.fifo");
    }

    #[test]
    fn a_malformed_sns_sqs_url_says_what_is_wrong() {
        for url in [
            "sqs://a:1",
            "sns+sqs://host-without-port",
            "sns+sqs://a:1?topic=bad/name",
            "sns+sqs://a:1?wait_seconds=30",
            "sns+sqs://a:1?colour=red",
        ] {
            let error = SqsConfig::from_url(url).expect_err(url);
            assert!(matches!(error, BusError::Invalid(_)), "{url}: {error}");
        }
    }
}
