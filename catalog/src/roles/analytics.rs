//! Where shoppers' analytics observations (`ProductViewed`, `SearchPerformed`) go, and the
//! projectors role's counter of the analytics stream.
//!
//! | engines | a query process captures into | counted by |
//! | --- | --- | --- |
//! | embedded, or PostgreSQL without a bus | its view (the shared Redis one with Redis) | itself |
//! | a bus and Redis | the analytics stream only | the projectors role, into Redis |
//! | a bus without Redis | its own view and the stream (for analysts) | itself |

use std::sync::Arc;
use std::time::Duration;

use bus::ConfiguredBus;
use events::analytics::Observation;
use projectors::analytics::AnalyticsView;
use query_api::analytics::{AnalyticsSink, ViewSink};

/// The sink of a query process, by the table above. `shared` says whether `view` is the
/// Redis view the projectors role keeps.
pub fn sink(
    view: Arc<dyn AnalyticsView>,
    shared: bool,
    bus: Option<&ConfiguredBus>,
) -> Arc<dyn AnalyticsSink> {
    let local: Arc<dyn AnalyticsSink> = Arc::new(ViewSink(view));
    match (bus, shared) {
        (Some(configured), true) => Arc::new(BusAnalyticsSink(configured.clone())),
        (Some(configured), false) => Arc::new(AnalyticsTee {
            local,
            bus: BusAnalyticsSink(configured.clone()),
        }),
        (None, _) => local,
    }
}

/// Shopper analytics onto the bus's analytics stream.
struct BusAnalyticsSink(ConfiguredBus);

#[async_trait::async_trait]
impl AnalyticsSink for BusAnalyticsSink {
    async fn publish(&self, batch: &[Observation]) -> Result<(), String> {
        let envelopes: Vec<_> = batch.iter().map(Observation::to_envelope).collect();
        self.0
            .publish_analytics(&envelopes)
            .await
            .map_err(|error| format!("the analytics stream: {error}"))
    }
}

/// Shopper analytics into this process's view and onto the bus's analytics stream.
struct AnalyticsTee {
    local: Arc<dyn AnalyticsSink>,
    bus: BusAnalyticsSink,
}

#[async_trait::async_trait]
impl AnalyticsSink for AnalyticsTee {
    async fn publish(&self, batch: &[Observation]) -> Result<(), String> {
        let (local, bus) = tokio::join!(self.local.publish(batch), self.bus.publish(batch));
        local.and(bus)
    }
}

/// The projectors role's counter of the analytics stream: a batch at a time into the shared
/// view, acknowledged (offsets committed, messages deleted) only once the view has it, so a
/// crash redelivers rather than loses. Event types this version does not know are skipped.
pub async fn count_analytics_events(
    consumer: bus::analytics::AnalyticsConsumer,
    view: Arc<dyn AnalyticsView>,
) {
    const MAX_BATCH: usize = 1000;
    const LINGER: Duration = Duration::from_millis(100);
    loop {
        let batch = match consumer.next_batch(MAX_BATCH, LINGER).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "cannot read the analytics stream; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let observations: Vec<Observation> = batch
            .envelopes
            .iter()
            .filter_map(|envelope| match Observation::from_envelope(envelope) {
                Ok(observation) => Some(observation),
                Err(error) => {
                    tracing::warn!(%error, event_id = %envelope.event_id, "skipping an analytics event");
                    None
                }
            })
            .collect();
        let mut delay = Duration::from_millis(100);
        while let Err(error) = view.record(&observations).await {
            tracing::warn!(%error, events = observations.len(), "cannot count analytics events; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        metrics::counter!("catalog_analytics_events_counted_total")
            .increment(observations.len() as u64);
        if let Err(error) = consumer.applied(&batch).await {
            tracing::warn!(%error, "cannot acknowledge analytics events (the batch may be counted again)");
        }
    }
}
