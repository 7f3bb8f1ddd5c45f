//! Publishing on SNS: every catalog event an entry with `MessageGroupId` = its product (one
//! product's events stay in order) and `MessageDeduplicationId` = its event id (a republished
//! event within SQS's five-minute window is dropped by the queue), its metadata as message
//! attributes, sent in as few `PublishBatch` calls as SNS's limits allow.

use std::collections::HashMap;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use events::bus::BusError;
use events::Envelope;

use crate::error::{sdk_unavailable, unexpected};
use crate::headers::envelope_headers;

/// SNS takes at most 10 entries and 256 KiB per `PublishBatch`.
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 200 * 1024;

/// `(name, value)` pairs as SNS string message attributes.
pub(super) fn message_attributes(
    pairs: impl IntoIterator<Item = (&'static str, String)>,
) -> Result<HashMap<String, MessageAttributeValue>, BusError> {
    pairs
        .into_iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(unexpected)?;
            Ok((name.to_owned(), value))
        })
        .collect()
}

/// The `PublishBatch` entries of catalog events, in order, each with the trace context at its
/// index in `traceparents` when there is one.
pub(super) fn envelope_entries(
    envelopes: &[Envelope],
    traceparents: &[Option<String>],
) -> Result<Vec<PublishBatchRequestEntry>, BusError> {
    envelopes
        .iter()
        .enumerate()
        .map(|(index, envelope)| {
            let body = serde_json::to_string(envelope).map_err(unexpected)?;
            let traceparent = traceparents.get(index).and_then(Option::as_deref);
            let attributes = message_attributes(envelope_headers(envelope, traceparent))?;
            PublishBatchRequestEntry::builder()
                .id(format!("e{index}"))
                .message(body)
                .message_group_id(envelope.aggregate_id.to_string())
                .message_deduplication_id(envelope.event_id.to_string())
                .set_message_attributes(Some(attributes))
                .build()
                .map_err(unexpected)
        })
        .collect()
}

/// Publishes `entries` in order, as few `PublishBatch` calls as SNS's limits allow (10
/// entries, [`BATCH_BYTES`] of messages each).
pub(super) async fn publish_entries(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    entries: Vec<PublishBatchRequestEntry>,
) -> Result<(), BusError> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.message().len();
        if !batch.is_empty() && (batch.len() == BATCH_ENTRIES || bytes + size > BATCH_BYTES) {
            publish_batch(sns, topic_arn, std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
        bytes += size;
        batch.push(entry);
    }
    if batch.is_empty() {
        return Ok(());
    }
    publish_batch(sns, topic_arn, batch).await
}

async fn publish_batch(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    entries: Vec<PublishBatchRequestEntry>,
) -> Result<(), BusError> {
    let output = sns
        .publish_batch()
        .topic_arn(topic_arn)
        .set_publish_batch_request_entries(Some(entries))
        .send()
        .await
        .map_err(sdk_unavailable)?;
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
