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
//!   needs without parsing it: `event_type`, `schema_version`, `event_id`, `aggregate_id`,
//!   `aggregate_version`, `position`, `content-type`, and the W3C `traceparent` (trace id from
//!   the command's request id, so every event of one request shares a trace).
//! - **Consumers**: one consumer group per projector (`catalog.<projector>`). Offsets are
//!   stored (`enable.auto.offset.store=false` + `store_offset`) only when the projector
//!   acknowledges a delivery, i.e. after the view applied it, and committed by librdkafka's
//!   auto-commit, including on rebalance revocation and close. An offset is never stored for
//!   an event that was not applied, so a rebalance can replay events but never skip one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::bus::{BusError, Delivery, EventBus, EventStream};
use events::Envelope;
use futures::future::BoxFuture;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::Message;

use crate::analytics::{AnalyticsBatch, BatchAck};

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
        let invalid = |why: &str| BusError::Invalid(format!("CATALOG_BUS {url:?}: {why}"));
        let rest = url
            .strip_prefix("kafka://")
            .ok_or_else(|| invalid("a Kafka URL starts with kafka://"))?;
        let (hosts, query) = rest.split_once('?').unwrap_or((rest, ""));
        let hosts = hosts.trim_end_matches('/');
        if hosts.is_empty()
            || hosts
                .split(',')
                .any(|host| host.is_empty() || !host.contains(':'))
        {
            return Err(invalid(
                "name the brokers as host:port, comma-separated (kafka://127.0.0.1:9092)",
            ));
        }
        let mut config = KafkaConfig::new(hosts);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "topic" if !value.is_empty() => config.topic = value.into_owned(),
                "analytics_topic" if !value.is_empty() => {
                    config.analytics_topic = value.into_owned()
                }
                "partitions" => {
                    config.partitions = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("partitions must be a positive integer"))?
                }
                "replication" => {
                    config.replication = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid("replication must be a positive integer"))?
                }
                other => match other.strip_prefix("rdkafka.") {
                    Some(option) => config
                        .client_options
                        .push((option.to_owned(), value.into_owned())),
                    None => return Err(invalid(&format!("unknown parameter {other:?}"))),
                },
            }
        }
        Ok(config)
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.client_options {
            config.set(key, value);
        }
        config
    }
}

/// The Kafka adapter of [`EventBus`]; see the module documentation.
pub struct KafkaBus {
    config: KafkaConfig,
    producer: FutureProducer,
}

fn unavailable(error: KafkaError) -> BusError {
    BusError::Unavailable(error.to_string())
}

impl KafkaBus {
    /// Creates the producer (it connects lazily) for `config`.
    pub fn connect(config: KafkaConfig) -> Result<Self, BusError> {
        let producer: FutureProducer = config
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000")
            .create()
            .map_err(|error| {
                BusError::Invalid(format!("cannot create a Kafka producer: {error}"))
            })?;
        Ok(KafkaBus { config, producer })
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>, BusError> {
        self.config.client_config().create().map_err(|error| {
            BusError::Invalid(format!("cannot create a Kafka admin client: {error}"))
        })
    }

    /// Partitions of the topic, `None` when it does not exist.
    async fn topic_partitions(&self) -> Result<Option<usize>, BusError> {
        let admin = self.admin()?;
        let topic = self.config.topic.clone();
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
                    if RDKafkaErrorCode::from(error)
                        == RDKafkaErrorCode::UnknownTopicOrPartition =>
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
        .map_err(|error| BusError::Unexpected(error.to_string()))?
    }

    /// Creates the topic when it is missing (`catalog bus setup`). Returns what it did.
    pub async fn setup(&self) -> Result<String, BusError> {
        if let Some(partitions) = self.topic_partitions().await? {
            return Ok(format!(
                "Kafka topic {} exists with {partitions} partitions",
                self.config.topic
            ));
        }
        self.create_topic(&self.config.topic).await?;
        Ok(format!(
            "created Kafka topic {} with {} partitions, replication {}",
            self.config.topic, self.config.partitions, self.config.replication
        ))
    }

    /// Publishes shopper analytics envelopes to the analytics topic, keyed by event id (they
    /// have no order to keep), with `event_type` and `schema_version` headers. Waits for every
    /// acknowledgement; the first failure is returned after all were tried.
    pub async fn publish_analytics(
        &self,
        batch: &[events::analytics::AnalyticsEnvelope],
    ) -> Result<(), BusError> {
        let mut deliveries = Vec::with_capacity(batch.len());
        for envelope in batch {
            let payload = serde_json::to_vec(envelope).unwrap_or_default();
            let key = envelope.event_id.to_string();
            let version = envelope.schema_version.to_string();
            let headers = rdkafka::message::OwnedHeaders::new()
                .insert(rdkafka::message::Header {
                    key: "event_type",
                    value: Some(envelope.event_type.as_str()),
                })
                .insert(rdkafka::message::Header {
                    key: "schema_version",
                    value: Some(version.as_str()),
                });
            let record = FutureRecord::to(&self.config.analytics_topic)
                .key(&key)
                .payload(&payload)
                .headers(headers);
            // Enqueued at once (librdkafka's queue); a full queue is an error, not a wait.
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => return Err(unavailable(error)),
            }
        }
        let sends = deliveries.into_iter().map(|delivery| async move {
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(unavailable(error)),
                Err(_) => Err(BusError::Unavailable("the Kafka producer closed".into())),
            }
        });
        let results = futures::future::join_all(sends).await;
        results.into_iter().collect()
    }

    /// Creates the analytics topic when it is missing (`catalog bus setup`).
    pub async fn setup_analytics(&self) -> Result<String, BusError> {
        let created = self.create_topic(&self.config.analytics_topic).await?;
        Ok(if created {
            format!("created Kafka topic {}", self.config.analytics_topic)
        } else {
            format!("Kafka topic {} exists", self.config.analytics_topic)
        })
    }

    /// Creates `name` with the configured partitions and replication; `false` when it existed.
    async fn create_topic(&self, name: &str) -> Result<bool, BusError> {
        let topic = NewTopic::new(
            name,
            self.config.partitions,
            TopicReplication::Fixed(self.config.replication),
        );
        let results = self
            .admin()?
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

    /// Fails with [`BusError::Missing`] when the topic does not exist.
    pub async fn verify(&self) -> Result<(), BusError> {
        match self.topic_partitions().await? {
            Some(_) => Ok(()),
            None => Err(BusError::Missing(format!(
                "the Kafka topic {} does not exist at {}; create it with `catalog bus setup`",
                self.config.topic, self.config.brokers
            ))),
        }
    }

    /// A consumer of the shopper analytics topic in the group `catalog.<subscriber>` (the
    /// analytics projector of the projectors role).
    pub fn analytics_consumer(&self, subscriber: &str) -> Result<KafkaAnalyticsConsumer, BusError> {
        Ok(KafkaAnalyticsConsumer {
            consumer: self.consumer(subscriber, &self.config.analytics_topic)?,
        })
    }

    /// A consumer in the group of `subscriber`, subscribed to `topic`. Options given on the
    /// URL (`rdkafka.<option>=`) override these defaults.
    fn consumer(&self, subscriber: &str, topic: &str) -> Result<StreamConsumer, BusError> {
        let mut config = self.config.client_config();
        config
            .set("group.id", format!("catalog.{subscriber}"))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "100");
        for (key, value) in &self.config.client_options {
            config.set(key, value);
        }
        let consumer: StreamConsumer = config.create().map_err(|error| {
            BusError::Invalid(format!("cannot create a Kafka consumer: {error}"))
        })?;
        consumer.subscribe(&[topic]).map_err(unavailable)?;
        Ok(consumer)
    }
}

/// Reads the shopper analytics topic; see [`crate::analytics::AnalyticsConsumer`].
pub struct KafkaAnalyticsConsumer {
    consumer: StreamConsumer,
}

impl KafkaAnalyticsConsumer {
    /// Waits for a message, then takes whatever else arrives within `linger`, up to `max`.
    pub(crate) async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
    ) -> Result<AnalyticsBatch, BusError> {
        let mut batch = AnalyticsBatch::default();
        let mut offsets = BTreeMap::new();
        let mut add = |message: &rdkafka::message::BorrowedMessage<'_>| {
            batch.add(message.payload(), || {
                format!(
                    "{}/{}@{}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                )
            });
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

/// The W3C trace context of an envelope: the trace id is the command's request id when it is
/// a UUID (it is for every command of the API), so all events of one request share a trace.
pub fn traceparent(envelope: &Envelope) -> String {
    let trace = envelope
        .correlation_id
        .as_deref()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .unwrap_or(envelope.event_id);
    let span = &envelope.event_id.simple().to_string()[16..];
    format!("00-{}-{span}-01", trace.simple())
}

fn headers(envelope: &Envelope) -> OwnedHeaders {
    let schema_version = envelope.schema_version.to_string();
    let event_id = envelope.event_id.to_string();
    let aggregate_id = envelope.aggregate_id.to_string();
    let aggregate_version = envelope.aggregate_version.to_string();
    let position = envelope.position.to_string();
    let traceparent = traceparent(envelope);
    let pairs: [(&str, &str); 8] = [
        ("event_type", &envelope.event_type),
        ("schema_version", &schema_version),
        ("event_id", &event_id),
        ("aggregate_id", &aggregate_id),
        ("aggregate_version", &aggregate_version),
        ("position", &position),
        ("content-type", "application/json"),
        ("traceparent", &traceparent),
    ];
    pairs.into_iter().fold(
        OwnedHeaders::new_with_capacity(8),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        },
    )
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

#[async_trait]
impl EventBus for KafkaBus {
    #[tracing::instrument(skip_all, fields(events = envelopes.len()))]
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        let mut pending = std::collections::VecDeque::with_capacity(envelopes.len());
        for envelope in envelopes {
            let payload = serde_json::to_vec(envelope)
                .map_err(|error| BusError::Unexpected(error.to_string()))?;
            let key = envelope.aggregate_id.to_string();
            let mut record = FutureRecord::to(&self.config.topic)
                .key(&key)
                .payload(&payload)
                .headers(headers(envelope));
            // Enqueue strictly in order: when the local queue is full, wait for the oldest
            // delivery and try the same record again.
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        match pending.pop_front() {
                            Some(oldest) => check_delivery(oldest.await)?,
                            None => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                    Err((error, _)) => return Err(unavailable(error)),
                }
            }
        }
        for delivery in pending {
            check_delivery(delivery.await)?;
        }
        metrics::counter!("catalog_bus_published_total", "bus" => "kafka")
            .increment(envelopes.len() as u64);
        Ok(())
    }

    async fn subscribe(&self, subscriber: &str, _after: u64) -> Result<EventStream, BusError> {
        let consumer = Arc::new(self.consumer(subscriber, &self.config.topic)?);
        let subscriber = subscriber.to_owned();
        let stream = futures::stream::unfold(consumer, move |consumer| {
            let subscriber = subscriber.clone();
            async move {
                loop {
                    let item = match consumer.recv().await {
                        Ok(message) => {
                            let topic = message.topic().to_owned();
                            let partition = message.partition();
                            let offset = message.offset();
                            let decoded = message
                                .payload()
                                .ok_or_else(|| "empty payload".to_owned())
                                .and_then(|payload| {
                                    serde_json::from_slice::<Envelope>(payload)
                                        .map_err(|error| error.to_string())
                                });
                            match decoded {
                                Ok(envelope) => {
                                    let acker = consumer.clone();
                                    let ack: events::bus::Acknowledge = Box::new(move || {
                                        Box::pin(async move {
                                            acker
                                                .store_offset(&topic, partition, offset)
                                                .map_err(unavailable)
                                        })
                                            as BoxFuture<'static, _>
                                    });
                                    Ok(Delivery::with_ack(envelope, ack))
                                }
                                Err(error) => {
                                    // Not an envelope: no projector can apply it. Skip it
                                    // (the event store keeps the truth; a later version of
                                    // the product repairs the gap from there).
                                    tracing::error!(%subscriber, %topic, partition, offset, %error, "skipping a message that is not an envelope");
                                    metrics::counter!("catalog_bus_undecodable_total", "bus" => "kafka").increment(1);
                                    let _ = consumer.store_offset(&topic, partition, offset);
                                    continue;
                                }
                            }
                        }
                        Err(error) => Err(unavailable(error)),
                    };
                    return Some((item, consumer));
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.topic_partitions().await.map(|_| ())
    }
}

fn check_delivery(
    result: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<(), BusError> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(unavailable(error)),
        Err(_) => Err(BusError::Unavailable(
            "the Kafka producer was dropped".into(),
        )),
    }
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        // Hand anything still queued to the brokers before the process goes.
        let _ = self.producer.flush(Duration::from_secs(5));
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
