//! A batch of the shopper analytics stream and what acknowledges it, shared by the Kafka and
//! SNS/SQS consumers.

use std::collections::BTreeMap;

use events::analytics::AnalyticsEnvelope;

/// One batch of the analytics stream.
#[derive(Debug, Default)]
pub struct AnalyticsBatch {
    pub envelopes: Vec<AnalyticsEnvelope>,
    /// Messages in the batch that were not analytics envelopes (skipped, counted in
    /// `catalog_bus_undecodable_total`, acknowledged with the batch).
    pub undecodable: usize,
    pub(crate) ack: BatchAck,
}

/// What acknowledges a batch.
#[derive(Debug, Default)]
pub(crate) enum BatchAck {
    #[default]
    Nothing,
    /// The highest offset read per (topic, partition).
    Kafka(BTreeMap<(String, i32), i64>),
    /// Receipt handles to delete.
    Sqs(Vec<String>),
}

impl AnalyticsBatch {
    /// Adds a message's body; `origin` names it in the log when it is not an envelope.
    pub(crate) fn add(&mut self, body: Option<&[u8]>, origin: impl FnOnce() -> String) {
        match body.and_then(|body| serde_json::from_slice::<AnalyticsEnvelope>(body).ok()) {
            Some(envelope) => self.envelopes.push(envelope),
            None => {
                tracing::error!(message = %origin(), "skipping a message that is not an analytics envelope");
                metrics::counter!("catalog_bus_undecodable_total", "stream" => "analytics")
                    .increment(1);
                self.undecodable += 1;
            }
        }
    }
}
