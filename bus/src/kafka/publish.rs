//! Publishing on Kafka: the idempotent producer, one record per envelope keyed by its product,
//! enqueued strictly in order, and `publish` returning only once every record was acknowledged
//! by all in-sync replicas.

use std::collections::VecDeque;
use std::time::Duration;

use events::bus::BusError;
use events::Envelope;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::config::KafkaConfig;
use crate::error::{unavailable, unexpected};
use crate::headers::envelope_headers;

/// The producer of `config`: idempotent (`acks=all`, in-order retries per partition). It
/// connects lazily.
pub(super) fn producer(config: &KafkaConfig) -> Result<FutureProducer, BusError> {
    config
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()
        .map_err(|error| BusError::Invalid(format!("cannot create a Kafka producer: {error}")))
}

/// Record headers from `(name, value)` pairs.
pub(super) fn owned_headers<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> OwnedHeaders {
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

/// The headers of a catalog event's record: its metadata and the body's content type.
fn record_headers(envelope: &Envelope, traceparent: Option<&str>) -> OwnedHeaders {
    let metadata = envelope_headers(envelope, traceparent);
    let pairs = metadata
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .chain([("content-type", "application/json")]);
    owned_headers(pairs)
}

/// Publishes `envelopes` to `topic` in order and waits for every acknowledgement; each
/// record carries the trace context at its index in `traceparents` when there is one.
pub(super) async fn publish(
    producer: &FutureProducer,
    topic: &str,
    envelopes: &[Envelope],
    traceparents: &[Option<String>],
) -> Result<(), BusError> {
    let mut pending = VecDeque::with_capacity(envelopes.len());
    for (index, envelope) in envelopes.iter().enumerate() {
        let traceparent = traceparents.get(index).and_then(Option::as_deref);
        let payload = serde_json::to_vec(envelope).map_err(unexpected)?;
        let key = envelope.aggregate_id.to_string();
        let mut record = FutureRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(record_headers(envelope, traceparent));
        // Enqueue strictly in order: when the local queue is full, wait for the oldest
        // delivery and try the same record again.
        loop {
            match producer.send_result(record) {
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
    Ok(())
}

/// A record's acknowledgement as a result.
pub(super) fn check_delivery(
    result: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
) -> Result<(), BusError> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(unavailable(error)),
        Err(_) => Err(BusError::Unavailable(
            "the Kafka producer was dropped".into(),
        )),
    }
}
