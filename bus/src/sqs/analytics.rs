//! The shopper analytics stream on SNS/SQS: a standard topic (these events have no order to
//! keep) fanned out to standard queues, read in batches that are deleted once applied.

use std::time::Duration;

use aws_sdk_sns::types::PublishBatchRequestEntry;
use events::analytics::AnalyticsEnvelope;
use events::bus::BusError;

use super::publish::message_attributes;
use crate::analytics::batch::{AnalyticsBatch, BatchAck};
use crate::error::{sdk_unavailable, unexpected};
use crate::headers::analytics_headers;

/// The `PublishBatch` entries of shopper analytics events, with `event_type` and
/// `schema_version` attributes.
pub(super) fn analytics_entries(
    batch: &[AnalyticsEnvelope],
) -> Result<Vec<PublishBatchRequestEntry>, BusError> {
    batch
        .iter()
        .enumerate()
        .map(|(index, envelope)| {
            let body = serde_json::to_string(envelope).map_err(unexpected)?;
            PublishBatchRequestEntry::builder()
                .id(format!("a{index}"))
                .message(body)
                .set_message_attributes(Some(message_attributes(analytics_headers(envelope))?))
                .build()
                .map_err(unexpected)
        })
        .collect()
}

/// Reads an analytics queue; see [`crate::analytics::AnalyticsConsumer`].
pub struct SqsAnalyticsConsumer {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    wait_seconds: i32,
}

impl SqsAnalyticsConsumer {
    pub(super) fn new(sqs: aws_sdk_sqs::Client, queue_url: String, wait_seconds: i32) -> Self {
        SqsAnalyticsConsumer {
            sqs,
            queue_url,
            wait_seconds,
        }
    }

    /// Long-polls until a message comes, then receives (without waiting) what else is there
    /// within `linger`, up to `max`.
    pub(crate) async fn next_batch(
        &self,
        max: usize,
        linger: Duration,
    ) -> Result<AnalyticsBatch, BusError> {
        let limit = max.max(1);
        let mut batch = AnalyticsBatch::default();
        let mut receipts = Vec::new();
        let mut deadline = None;
        while receipts.len() < limit {
            let wait = if deadline.is_none() {
                self.wait_seconds
            } else {
                0
            };
            let wanted = (limit - receipts.len()).min(10) as i32;
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
                    return Err(sdk_unavailable(error));
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
                        .map_err(unexpected)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sdk_unavailable)?;
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
