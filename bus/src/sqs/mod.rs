//! `SqsBus`: the catalog's events on an SNS FIFO topic fanned out to one SQS FIFO queue per
//! projector (aws-sdk-sns, aws-sdk-sqs).
//!
//! - **Topic** `catalog-product-events.fifo` (FIFO, no content-based deduplication): every
//!   message has `MessageGroupId` = the product (aggregate) id, so one product's events stay in
//!   order, and `MessageDeduplicationId` = the event id, so a republished event within SQS's
//!   five-minute window is dropped by the queue.
//! - **Queues**: `catalog-<projector>.fifo`, subscribed with raw delivery (the body is the
//!   envelope JSON; the metadata is repeated as message attributes, [`crate::headers`]), each
//!   with a dead-letter queue `catalog-<projector>-dlq.fifo` by redrive policy
//!   (`maxReceiveCount` 10 by default).
//! - **Consuming**: long polling (20 s), up to 10 messages a receive, handed out one by one;
//!   a message is deleted only when the projector acknowledges it (after the view applied it).
//!   While messages are held, a heartbeat extends their visibility timeout (30 s by default)
//!   every third of it, so a slow batch is not delivered twice. A body that is not an envelope
//!   is made visible again at once, so it reaches the dead-letter queue after
//!   `maxReceiveCount` receives.
//! - `catalog bus setup` creates the topic, queues, dead-letter queues, queue policies and
//!   subscriptions; `serve` only checks that they exist and says how to create them.
//!
//! The files have fixed roles: `config` (the URL), `setup`, `publish`, `consume` and
//! `analytics` (the shopper analytics stream). This file holds the adapter and its public
//! methods, each handing over to the file of its role; no file here imports from this one.

mod analytics;
mod config;
mod consume;
mod publish;
mod setup;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use events::analytics::AnalyticsEnvelope;
use events::bus::{BusError, EventBus, EventStream};
use events::Envelope;
use tokio::sync::OnceCell;

pub use self::analytics::SqsAnalyticsConsumer;
pub use self::config::{SqsConfig, DEFAULT_ANALYTICS_TOPIC, DEFAULT_QUEUE_PREFIX, DEFAULT_TOPIC};

/// The SNS/SQS adapter of [`EventBus`]; see the module documentation.
pub struct SqsBus {
    config: SqsConfig,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    topic_arn: OnceCell<String>,
    analytics_topic_arn: OnceCell<String>,
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
            topic_arn: OnceCell::new(),
            analytics_topic_arn: OnceCell::new(),
        })
    }

    pub fn config(&self) -> &SqsConfig {
        &self.config
    }

    /// The topic's ARN, found by name; [`BusError::Missing`] when there is no such topic.
    async fn topic_arn(&self) -> Result<String, BusError> {
        self.topic_arn
            .get_or_try_init(|| setup::find_topic(&self.sns, self.config.topic_name()))
            .await
            .cloned()
    }

    /// The analytics topic's ARN, found by name.
    async fn analytics_topic_arn(&self) -> Result<String, BusError> {
        self.analytics_topic_arn
            .get_or_try_init(|| setup::find_topic(&self.sns, self.config.analytics_topic.clone()))
            .await
            .cloned()
    }

    /// Creates the topic and, for each subscriber, its queue, dead-letter queue, queue policy
    /// and raw-delivery subscription (`catalog bus setup`). Safe to run again.
    pub async fn setup(&self, subscribers: &[&str]) -> Result<Vec<String>, BusError> {
        setup::setup(&self.sns, &self.sqs, &self.config, subscribers).await
    }

    /// Fails with [`BusError::Missing`] when the topic or a subscriber's queue is missing.
    pub async fn verify(&self, subscribers: &[&str]) -> Result<(), BusError> {
        self.topic_arn().await?;
        setup::verify_queues(&self.sqs, &self.config, subscribers).await
    }

    /// Creates the analytics topic and the standard queue of `subscriber`, subscribed with raw
    /// delivery (`catalog bus setup`). Safe to run again.
    pub async fn setup_analytics(&self, subscriber: &str) -> Result<Vec<String>, BusError> {
        setup::setup_analytics(&self.sns, &self.sqs, &self.config, subscriber).await
    }

    /// Publishes shopper analytics envelopes to the analytics topic, 10 to a `PublishBatch`,
    /// with `event_type` and `schema_version` attributes.
    pub async fn publish_analytics(&self, batch: &[AnalyticsEnvelope]) -> Result<(), BusError> {
        let topic_arn = self.analytics_topic_arn().await?;
        let entries = analytics::analytics_entries(batch)?;
        publish::publish_entries(&self.sns, &topic_arn, entries).await
    }

    /// A consumer of the analytics queue of `subscriber`; [`BusError::Missing`] when the queue
    /// does not exist.
    pub async fn analytics_consumer(
        &self,
        subscriber: &str,
    ) -> Result<SqsAnalyticsConsumer, BusError> {
        let name = self.config.analytics_queue_name(subscriber);
        let queue_url = setup::existing_queue_url(&self.sqs, &name).await?;
        Ok(SqsAnalyticsConsumer::new(
            self.sqs.clone(),
            queue_url,
            self.config.wait_seconds,
        ))
    }
}

#[async_trait]
impl EventBus for SqsBus {
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        self.publish_traced(envelopes, &[]).await
    }

    #[tracing::instrument(name = "sns.publish", level = "debug", skip_all, fields(events = envelopes.len(), otel.kind = "producer"))]
    async fn publish_traced(
        &self,
        envelopes: &[Envelope],
        traceparents: &[Option<String>],
    ) -> Result<(), BusError> {
        let topic_arn = self.topic_arn().await?;
        let entries = publish::envelope_entries(envelopes, traceparents)?;
        publish::publish_entries(&self.sns, &topic_arn, entries).await?;
        metrics::counter!("catalog_bus_published_total", "bus" => "sns+sqs")
            .increment(envelopes.len() as u64);
        Ok(())
    }

    async fn subscribe(&self, subscriber: &str, _after: u64) -> Result<EventStream, BusError> {
        let name = self.config.queue_name(subscriber);
        let queue_url = setup::existing_queue_url(&self.sqs, &name).await?;
        Ok(consume::subscribe(
            self.sqs.clone(),
            queue_url,
            self.config.wait_seconds,
            self.config.visibility_seconds,
        ))
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.topic_arn().await.map(|_| ())
    }
}
