//! `SqsBus`: the catalog's events on an SNS FIFO topic fanned out to one SQS FIFO queue per
//! projector (aws-sdk-sns, aws-sdk-sqs).
//!
//! - **Topic** `catalog-product-events.fifo` (FIFO, no content-based deduplication): every
//!   message has `MessageGroupId` = the product (aggregate) id, so one product's events stay in
//!   order, and `MessageDeduplicationId` = the event id, so a republished event within SQS's
//!   five-minute window is dropped by the queue.
//! - **Queues**: `catalog-<projector>.fifo`, subscribed with raw delivery (the body is the
//!   envelope JSON; the metadata is repeated as message attributes: `event_type`,
//!   `schema_version`, `event_id`, `aggregate_id`, `aggregate_version`, `position`,
//!   `traceparent`), each with a dead-letter queue `catalog-<projector>-dlq.fifo` by redrive
//!   policy (`maxReceiveCount` 10 by default).
//! - **Consuming**: long polling (20 s), up to 10 messages a receive, handed out one by one;
//!   a message is deleted only when the projector acknowledges it (after the view applied it).
//!   While messages are held, a heartbeat extends their visibility timeout (30 s by default)
//!   every third of it, so a slow batch is not delivered twice. A body that is not an envelope is made visible again
//!   at once, so it reaches the dead-letter queue after `maxReceiveCount` receives.
//! - `catalog bus setup` creates the topic, queues, dead-letter queues, queue policies and
//!   subscriptions; `serve` only checks that they exist and says how to create them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use events::analytics::AnalyticsEnvelope;
use events::bus::{Acknowledge, BusError, Delivery, EventBus, EventStream};
use events::Envelope;
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::analytics::{AnalyticsBatch, BatchAck};
use crate::kafka::traceparent;

pub const DEFAULT_TOPIC: &str = "catalog-product-events";
pub const DEFAULT_QUEUE_PREFIX: &str = "catalog-";
pub const DEFAULT_ANALYTICS_TOPIC: &str = "catalog-analytics-events";
/// SNS takes at most 10 entries and 256 KiB per `PublishBatch`.
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 200 * 1024;

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
        let invalid = |why: &str| BusError::Invalid(format!("CATALOG_BUS {url:?}: {why}"));
        let rest = url
            .strip_prefix("sns+sqs://")
            .ok_or_else(|| invalid("an SNS/SQS URL starts with sns+sqs://"))?;
        let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
        let host = host.trim_end_matches('/');
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
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "region" if !value.is_empty() => config.region = value.into_owned(),
                "topic" => config.topic = value.trim_end_matches(".fifo").to_owned(),
                "analytics_topic" => config.analytics_topic = value.into_owned(),
                "queue_prefix" => config.queue_prefix = value.into_owned(),
                "tls" => tls = value == "true",
                "wait_seconds" => {
                    config.wait_seconds = value
                        .parse()
                        .ok()
                        .filter(|seconds| (0..=20).contains(seconds))
                        .ok_or_else(|| invalid("wait_seconds must be 0 to 20"))?
                }
                "visibility_seconds" => {
                    config.visibility_seconds = value
                        .parse()
                        .ok()
                        .filter(|seconds| (3..=43_200).contains(seconds))
                        .ok_or_else(|| invalid("visibility_seconds must be 3 to 43200"))?
                }
                "max_receive_count" => {
                    config.max_receive_count = value
                        .parse()
                        .ok()
                        .filter(|count| (1..=1000).contains(count))
                        .ok_or_else(|| invalid("max_receive_count must be 1 to 1000"))?
                }
                other => return Err(invalid(&format!("unknown parameter {other:?}"))),
            }
        }
        if !host.is_empty() {
            if !host.contains(':') || host.contains('/') {
                return Err(invalid(
                    "name the endpoint as host:port (sns+sqs://127.0.0.1:4566)",
                ));
            }
            let scheme = if tls { "https" } else { "http" };
            config.endpoint = Some(format!("{scheme}://{host}"));
        }
        let valid_name = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid_name(&config.topic) || !valid_name(&config.analytics_topic) {
            return Err(invalid(
                "topic and analytics_topic may hold only letters, digits, - and _",
            ));
        }
        if !config.queue_prefix.is_empty() && !valid_name(&config.queue_prefix) {
            return Err(invalid(
                "queue_prefix may hold only letters, digits, - and _",
            ));
        }
        Ok(config)
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

/// The SNS/SQS adapter of [`EventBus`]; see the module documentation.
pub struct SqsBus {
    config: SqsConfig,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    topic_arn: tokio::sync::OnceCell<String>,
    analytics_topic_arn: tokio::sync::OnceCell<String>,
}

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

/// The full message of an SDK error, with the service's code.
fn describe<E: std::error::Error>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl SqsBus {
    pub async fn connect(config: SqsConfig) -> Result<Self, BusError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                && std::env::var_os("AWS_PROFILE").is_none()
            {
                loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "catalog-local",
                ));
            }
        }
        let shared = loader.load().await;
        Ok(SqsBus {
            sns: aws_sdk_sns::Client::new(&shared),
            sqs: aws_sdk_sqs::Client::new(&shared),
            config,
            topic_arn: tokio::sync::OnceCell::new(),
            analytics_topic_arn: tokio::sync::OnceCell::new(),
        })
    }

    pub fn config(&self) -> &SqsConfig {
        &self.config
    }

    /// The topic's ARN, found by name; [`BusError::Missing`] when there is no such topic.
    async fn topic_arn(&self) -> Result<String, BusError> {
        self.topic_arn
            .get_or_try_init(|| self.find_topic(self.config.topic_name()))
            .await
            .cloned()
    }

    /// The analytics topic's ARN, found by name.
    async fn analytics_topic_arn(&self) -> Result<String, BusError> {
        self.analytics_topic_arn
            .get_or_try_init(|| self.find_topic(self.config.analytics_topic.clone()))
            .await
            .cloned()
    }

    async fn find_topic(&self, name: String) -> Result<String, BusError> {
        let suffix = format!(":{name}");
        let mut token = None;
        loop {
            let page = self
                .sns
                .list_topics()
                .set_next_token(token)
                .send()
                .await
                .map_err(|error| unavailable(describe(&error)))?;
            if let Some(arn) = page
                .topics()
                .iter()
                .filter_map(|topic| topic.topic_arn())
                .find(|arn| arn.ends_with(&suffix))
            {
                return Ok(arn.to_owned());
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Err(BusError::Missing(format!(
                    "the SNS topic {name} does not exist; create it with `catalog bus setup`"
                )));
            }
        }
    }

    async fn queue_url(&self, name: &str) -> Result<Option<String>, BusError> {
        match self.sqs.get_queue_url().queue_name(name).send().await {
            Ok(output) => Ok(output.queue_url().map(str::to_owned)),
            Err(error) => {
                let missing = error
                    .as_service_error()
                    .is_some_and(|service| service.is_queue_does_not_exist());
                let text = describe(&error);
                if missing
                    || text.contains("NonExistentQueue")
                    || text.contains("QueueDoesNotExist")
                {
                    Ok(None)
                } else {
                    Err(unavailable(text))
                }
            }
        }
    }

    async fn queue_arn(&self, url: &str) -> Result<String, BusError> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|error| unavailable(describe(&error)))?;
        attributes
            .attributes()
            .and_then(|map| map.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| BusError::Unexpected(format!("queue {url} has no ARN")))
    }

    /// Creates a FIFO (or standard) queue, or updates its attributes when it exists; returns
    /// its URL.
    async fn ensure_queue(
        &self,
        name: &str,
        attributes: HashMap<QueueAttributeName, String>,
        fifo: bool,
    ) -> Result<String, BusError> {
        let mut all = attributes;
        if fifo {
            all.insert(QueueAttributeName::FifoQueue, "true".into());
            all.insert(
                QueueAttributeName::ContentBasedDeduplication,
                "false".into(),
            );
        }
        if let Some(url) = self.queue_url(name).await? {
            all.remove(&QueueAttributeName::FifoQueue);
            self.sqs
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(all))
                .send()
                .await
                .map_err(|error| unavailable(describe(&error)))?;
            return Ok(url);
        }
        let created = self
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(all))
            .send()
            .await
            .map_err(|error| unavailable(describe(&error)))?;
        created
            .queue_url()
            .map(str::to_owned)
            .ok_or_else(|| BusError::Unexpected(format!("created queue {name} has no URL")))
    }

    /// Creates the topic and, for each subscriber, its queue, dead-letter queue, queue policy
    /// and raw-delivery subscription (`catalog bus setup`). Safe to run again.
    pub async fn setup(&self, subscribers: &[&str]) -> Result<Vec<String>, BusError> {
        let mut report = Vec::new();
        let topic = self
            .sns
            .create_topic()
            .name(self.config.topic_name())
            .attributes("FifoTopic", "true")
            .attributes("ContentBasedDeduplication", "false")
            .send()
            .await
            .map_err(|error| unavailable(describe(&error)))?;
        let topic_arn = topic
            .topic_arn()
            .map(str::to_owned)
            .ok_or_else(|| BusError::Unexpected("created topic has no ARN".into()))?;
        report.push(format!("SNS FIFO topic {topic_arn}"));
        for subscriber in subscribers {
            let dead_letter_url = self
                .ensure_queue(
                    &self.config.dead_letter_queue_name(subscriber),
                    HashMap::new(),
                    true,
                )
                .await?;
            let dead_letter_arn = self.queue_arn(&dead_letter_url).await?;
            let queue_name = self.config.queue_name(subscriber);
            let queue_url = self
                .ensure_queue(
                    &queue_name,
                    HashMap::from([
                        (
                            QueueAttributeName::VisibilityTimeout,
                            self.config.visibility_seconds.to_string(),
                        ),
                        (
                            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                            "20".into(),
                        ),
                        (
                            QueueAttributeName::RedrivePolicy,
                            serde_json::json!({
                                "deadLetterTargetArn": dead_letter_arn,
                                "maxReceiveCount": self.config.max_receive_count.to_string(),
                            })
                            .to_string(),
                        ),
                    ]),
                    true,
                )
                .await?;
            let queue_arn = self.queue_arn(&queue_url).await?;
            self.allow_and_subscribe(&topic_arn, &queue_url, &queue_arn)
                .await?;
            report.push(format!(
                "SQS FIFO queue {queue_name} (dead letters: {}) subscribed with raw delivery",
                self.config.dead_letter_queue_name(subscriber)
            ));
        }
        Ok(report)
    }

    /// Lets `topic_arn` send to the queue and subscribes the queue with raw delivery.
    async fn allow_and_subscribe(
        &self,
        topic_arn: &str,
        queue_url: &str,
        queue_arn: &str,
    ) -> Result<(), BusError> {
        {
            let policy = serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }],
            });
            self.sqs
                .set_queue_attributes()
                .queue_url(queue_url)
                .attributes(QueueAttributeName::Policy, policy.to_string())
                .send()
                .await
                .map_err(|error| unavailable(describe(&error)))?;
            self.sns
                .subscribe()
                .topic_arn(topic_arn)
                .protocol("sqs")
                .endpoint(queue_arn)
                .attributes("RawMessageDelivery", "true")
                .return_subscription_arn(true)
                .send()
                .await
                .map_err(|error| unavailable(describe(&error)))?;
        }
        Ok(())
    }

    /// Creates the analytics topic and the standard queue of `subscriber`, subscribed with raw
    /// delivery (`catalog bus setup`). Safe to run again.
    pub async fn setup_analytics(&self, subscriber: &str) -> Result<Vec<String>, BusError> {
        let topic = self
            .sns
            .create_topic()
            .name(&self.config.analytics_topic)
            .send()
            .await
            .map_err(|error| unavailable(describe(&error)))?;
        let topic_arn = topic
            .topic_arn()
            .map(str::to_owned)
            .ok_or_else(|| BusError::Unexpected("created topic has no ARN".into()))?;
        let queue_name = self.config.analytics_queue_name(subscriber);
        let queue_url = self
            .ensure_queue(
                &queue_name,
                HashMap::from([
                    (
                        QueueAttributeName::VisibilityTimeout,
                        self.config.visibility_seconds.to_string(),
                    ),
                    (
                        QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                        "20".into(),
                    ),
                ]),
                false,
            )
            .await?;
        let queue_arn = self.queue_arn(&queue_url).await?;
        self.allow_and_subscribe(&topic_arn, &queue_url, &queue_arn)
            .await?;
        Ok(vec![
            format!("SNS topic {topic_arn}"),
            format!("SQS queue {queue_name} subscribed with raw delivery"),
        ])
    }

    /// Publishes shopper analytics envelopes to the analytics topic, 10 to a `PublishBatch`,
    /// with `event_type` and `schema_version` attributes.
    pub async fn publish_analytics(&self, batch: &[AnalyticsEnvelope]) -> Result<(), BusError> {
        let topic_arn = self.analytics_topic_arn().await?;
        let mut entries = Vec::with_capacity(batch.len());
        for (index, envelope) in batch.iter().enumerate() {
            let body = serde_json::to_string(envelope)
                .map_err(|error| BusError::Unexpected(error.to_string()))?;
            let attributes = [
                ("event_type", envelope.event_type.clone()),
                ("schema_version", envelope.schema_version.to_string()),
            ]
            .into_iter()
            .map(|(name, value)| string_attribute(value).map(|value| (name.to_owned(), value)))
            .collect::<Result<HashMap<_, _>, _>>()?;
            entries.push(
                PublishBatchRequestEntry::builder()
                    .id(format!("a{index}"))
                    .message(body)
                    .set_message_attributes(Some(attributes))
                    .build()
                    .map_err(|error| BusError::Unexpected(error.to_string()))?,
            );
        }
        self.publish_entries(&topic_arn, entries).await
    }

    /// A consumer of the analytics queue of `subscriber`; [`BusError::Missing`] when the queue
    /// does not exist.
    pub async fn analytics_consumer(
        &self,
        subscriber: &str,
    ) -> Result<SqsAnalyticsConsumer, BusError> {
        let name = self.config.analytics_queue_name(subscriber);
        let queue_url = self.queue_url(&name).await?.ok_or_else(|| {
            BusError::Missing(format!(
                "the SQS queue {name} does not exist; create it with `catalog bus setup`"
            ))
        })?;
        Ok(SqsAnalyticsConsumer {
            sqs: self.sqs.clone(),
            queue_url,
            wait_seconds: self.config.wait_seconds,
        })
    }

    /// Fails with [`BusError::Missing`] when the topic or a subscriber's queue is missing.
    pub async fn verify(&self, subscribers: &[&str]) -> Result<(), BusError> {
        self.topic_arn().await?;
        for subscriber in subscribers {
            let name = self.config.queue_name(subscriber);
            if self.queue_url(&name).await?.is_none() {
                return Err(BusError::Missing(format!(
                    "the SQS queue {name} does not exist; create it with `catalog bus setup`"
                )));
            }
        }
        Ok(())
    }

    fn attributes(envelope: &Envelope) -> Result<HashMap<String, MessageAttributeValue>, BusError> {
        let pairs = [
            ("event_type", envelope.event_type.clone()),
            ("schema_version", envelope.schema_version.to_string()),
            ("event_id", envelope.event_id.to_string()),
            ("aggregate_id", envelope.aggregate_id.to_string()),
            ("aggregate_version", envelope.aggregate_version.to_string()),
            ("position", envelope.position.to_string()),
            ("traceparent", traceparent(envelope)),
        ];
        pairs
            .into_iter()
            .map(|(name, value)| string_attribute(value).map(|value| (name.to_owned(), value)))
            .collect()
    }

    /// Publishes `entries` in order, as few `PublishBatch` calls as SNS's limits allow (10
    /// entries, [`BATCH_BYTES`] of messages each).
    async fn publish_entries(
        &self,
        topic_arn: &str,
        entries: Vec<PublishBatchRequestEntry>,
    ) -> Result<(), BusError> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for entry in entries {
            let size = entry.message().len();
            if !batch.is_empty() && (batch.len() == BATCH_ENTRIES || bytes + size > BATCH_BYTES) {
                self.publish_batch(topic_arn, std::mem::take(&mut batch))
                    .await?;
                bytes = 0;
            }
            bytes += size;
            batch.push(entry);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.publish_batch(topic_arn, batch).await
    }

    async fn publish_batch(
        &self,
        topic_arn: &str,
        entries: Vec<PublishBatchRequestEntry>,
    ) -> Result<(), BusError> {
        let output = self
            .sns
            .publish_batch()
            .topic_arn(topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|error| unavailable(describe(&error)))?;
        if let Some(failed) = output.failed().first() {
            return Err(BusError::Unavailable(format!(
                "SNS refused entry {}: {} {}",
                failed.id(),
                failed.code(),
                failed.message().unwrap_or_default()
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl EventBus for SqsBus {
    #[tracing::instrument(skip_all, fields(events = envelopes.len()))]
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        let topic_arn = self.topic_arn().await?;
        let mut entries = Vec::with_capacity(envelopes.len());
        for (index, envelope) in envelopes.iter().enumerate() {
            let body = serde_json::to_string(envelope)
                .map_err(|error| BusError::Unexpected(error.to_string()))?;
            let entry = PublishBatchRequestEntry::builder()
                .id(format!("e{index}"))
                .message(body)
                .message_group_id(envelope.aggregate_id.to_string())
                .message_deduplication_id(envelope.event_id.to_string())
                .set_message_attributes(Some(Self::attributes(envelope)?))
                .build()
                .map_err(|error| BusError::Unexpected(error.to_string()))?;
            entries.push(entry);
        }
        self.publish_entries(&topic_arn, entries).await?;
        metrics::counter!("catalog_bus_published_total", "bus" => "sns+sqs")
            .increment(envelopes.len() as u64);
        Ok(())
    }

    async fn subscribe(&self, subscriber: &str, _after: u64) -> Result<EventStream, BusError> {
        let name = self.config.queue_name(subscriber);
        let queue_url = self.queue_url(&name).await?.ok_or_else(|| {
            BusError::Missing(format!(
                "the SQS queue {name} does not exist; create it with `catalog bus setup`"
            ))
        })?;
        let held: Arc<Mutex<HashSet<String>>> = Arc::default();
        let heartbeat = tokio::spawn(extend_visibility(
            self.sqs.clone(),
            queue_url.clone(),
            held.clone(),
            self.config.visibility_seconds,
        ));
        let state = Receiver {
            sqs: self.sqs.clone(),
            queue_url,
            wait_seconds: self.config.wait_seconds,
            buffer: VecDeque::new(),
            held,
            _heartbeat: AbortOnDrop(heartbeat),
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await;
            Some((item, state))
        });
        Ok(Box::pin(stream))
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.topic_arn().await.map(|_| ())
    }
}

fn string_attribute(value: String) -> Result<MessageAttributeValue, BusError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|error| BusError::Unexpected(error.to_string()))
}

/// Reads an analytics queue; see [`crate::analytics::AnalyticsConsumer`].
pub struct SqsAnalyticsConsumer {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    wait_seconds: i32,
}

impl SqsAnalyticsConsumer {
    /// Long-polls until a message comes, then receives (without waiting) what else is there
    /// within `linger`, up to `max`.
    pub(crate) async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
    ) -> Result<AnalyticsBatch, BusError> {
        let mut batch = AnalyticsBatch::default();
        let mut receipts = Vec::new();
        let mut deadline = None;
        while receipts.len() < max.max(1) {
            let wait = if deadline.is_none() {
                self.wait_seconds
            } else {
                0
            };
            let wanted = (max.max(1) - receipts.len()).min(10) as i32;
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(wanted)
                .wait_time_seconds(wait)
                .send()
                .await;
            let messages = match output {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(error) if receipts.is_empty() => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err(unavailable(describe(&error)));
                }
                // What was read so far is handed over; the error shows on the next call.
                Err(_) => break,
            };
            for message in &messages {
                let Some(receipt) = message.receipt_handle() else {
                    continue;
                };
                batch.add(message.body().map(str::as_bytes), || {
                    message.message_id().unwrap_or("?").to_owned()
                });
                receipts.push(receipt.to_owned());
            }
            match deadline {
                None if !receipts.is_empty() => {
                    deadline = Some(tokio::time::Instant::now() + linger)
                }
                Some(at) if messages.is_empty() || tokio::time::Instant::now() >= at => break,
                _ => {}
            }
        }
        batch.ack = BatchAck::Sqs(receipts);
        Ok(batch)
    }

    /// Deletes the messages of a batch, 10 to a call.
    pub(crate) async fn applied(&self, receipts: &[String]) -> Result<(), BusError> {
        for chunk in receipts.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(index, receipt)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(format!("d{index}"))
                        .receipt_handle(receipt)
                        .build()
                        .map_err(|error| BusError::Unexpected(error.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| unavailable(describe(&error)))?;
            if let Some(failed) = output.failed().first() {
                return Err(BusError::Unavailable(format!(
                    "SQS did not delete {}: {} {}",
                    failed.id(),
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Receiver {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    wait_seconds: i32,
    buffer: VecDeque<aws_sdk_sqs::types::Message>,
    /// Receipt handles received and not yet acknowledged.
    held: Arc<Mutex<HashSet<String>>>,
    _heartbeat: AbortOnDrop,
}

impl Receiver {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if let Some(message) = self.buffer.pop_front() {
                let Some(receipt) = message.receipt_handle().map(str::to_owned) else {
                    continue;
                };
                let decoded = message
                    .body()
                    .ok_or_else(|| "empty body".to_owned())
                    .and_then(|body| {
                        serde_json::from_str::<Envelope>(body).map_err(|error| error.to_string())
                    });
                match decoded {
                    Ok(envelope) => {
                        let sqs = self.sqs.clone();
                        let queue_url = self.queue_url.clone();
                        let held = self.held.clone();
                        let ack: Acknowledge = Box::new(move || {
                            Box::pin(async move {
                                held.lock().remove(&receipt);
                                sqs.delete_message()
                                    .queue_url(queue_url)
                                    .receipt_handle(receipt)
                                    .send()
                                    .await
                                    .map(|_| ())
                                    .map_err(|error| unavailable(describe(&error)))
                            }) as BoxFuture<'static, _>
                        });
                        return Ok(Delivery::with_ack(envelope, ack));
                    }
                    Err(error) => {
                        tracing::error!(queue = %self.queue_url, %error, "a message is not an envelope; it goes to the dead-letter queue after repeated receives");
                        metrics::counter!("catalog_bus_undecodable_total", "bus" => "sns+sqs")
                            .increment(1);
                        self.held.lock().remove(&receipt);
                        let _ = self
                            .sqs
                            .change_message_visibility()
                            .queue_url(&self.queue_url)
                            .receipt_handle(receipt)
                            .visibility_timeout(0)
                            .send()
                            .await;
                        continue;
                    }
                }
            }
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(self.wait_seconds)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await;
            match received {
                Ok(output) => {
                    let messages = output.messages.unwrap_or_default();
                    let mut held = self.held.lock();
                    for message in &messages {
                        if let Some(receipt) = message.receipt_handle() {
                            held.insert(receipt.to_owned());
                        }
                    }
                    drop(held);
                    self.buffer.extend(messages);
                }
                Err(error) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    return Err(unavailable(describe(&error)));
                }
            }
        }
    }
}

/// Keeps received, unacknowledged messages invisible while the projector works on them.
async fn extend_visibility(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    held: Arc<Mutex<HashSet<String>>>,
    visibility_seconds: i32,
) {
    let heartbeat = Duration::from_millis(visibility_seconds as u64 * 1000 / 3);
    let mut tick = tokio::time::interval(heartbeat);
    tick.tick().await;
    loop {
        tick.tick().await;
        let receipts: Vec<String> = held.lock().iter().cloned().collect();
        for receipt in receipts {
            let extended = sqs
                .change_message_visibility()
                .queue_url(&queue_url)
                .receipt_handle(&receipt)
                .visibility_timeout(visibility_seconds)
                .send()
                .await;
            match extended {
                Ok(_) => metrics::counter!("catalog_bus_visibility_extended_total").increment(1),
                Err(error) => {
                    tracing::debug!(error = %describe(&error), "cannot extend a message's visibility");
                    // A receipt that is no longer valid will never be: forget it.
                    held.lock().remove(&receipt);
                }
            }
        }
    }
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
