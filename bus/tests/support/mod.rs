//! What the Kafka and SNS/SQS tests of the shopper analytics stream share.

use std::time::Duration;

use chrono::Utc;
use events::analytics::{AnalyticsEnvelope, AnalyticsEvent, SearchPerformed};

/// `count` searches for `"<text> <n>"`, each with `n` results.
pub fn searches(text: &str, count: u64) -> Vec<AnalyticsEnvelope> {
    (0..count)
        .map(|n| {
            AnalyticsEvent::SearchPerformed(SearchPerformed {
                query: format!("{text} {n}"),
                filters: Default::default(),
                result_count: n,
            })
            .into_envelope(Utc::now())
        })
        .collect()
}

/// Sorted by event id, to compare sets of envelopes.
pub fn sorted(mut envelopes: Vec<AnalyticsEnvelope>) -> Vec<AnalyticsEnvelope> {
    envelopes.sort_by_key(|envelope| envelope.event_id);
    envelopes
}

/// Reads `count` envelopes as the consumer `subscriber`, in batches that wait `linger` for
/// more; marks each batch applied when `apply`. Sorted by event id.
pub async fn read(
    bus: &bus::ConfiguredBus,
    subscriber: &str,
    count: usize,
    apply: bool,
    linger: Duration,
) -> Vec<AnalyticsEnvelope> {
    let consumer = bus.analytics_consumer(subscriber).await.expect("consumer");
    let mut received = Vec::new();
    while received.len() < count {
        let batch = tokio::time::timeout(Duration::from_secs(30), consumer.next_batch(100, linger))
            .await
            .expect("a batch within 30 s")
            .expect("batch");
        assert_eq!(batch.undecodable, 0);
        if apply {
            consumer.applied(&batch).await.expect("applied");
        }
        received.extend(batch.envelopes);
    }
    sorted(received)
}
