//! Shopper analytics: the capture of `ProductViewed` and `SearchPerformed` on the request path,
//! and the analysts' `GET /api/analytics/*` routes.
//!
//! Capturing never slows a shopper: [`Capture::record`] is a `try_send` into a bounded queue;
//! when the queue is full the event is dropped and counted in
//! `catalog_analytics_events_dropped_total`. One task drains the queue in batches into an
//! [`AnalyticsSink`]: the analytics view itself in the embedded mode, the
//! `catalog.analytics-events` topic when a bus is configured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use chrono::Utc;
use events::analytics::{AnalyticsEvent, Observation};
use projectors::analytics::{AnalyticsView, Searches, Trending, TrendingQuery, Window};
use serde::Deserialize;
use tokio::sync::mpsc;
use web::extract::Query;
use web::Problem;

use crate::events_api::require_analyst;
use crate::routes::{bad, given, parse_limit, parse_slug, QueryProblem, QueryResult};

/// Where captured analytics events go.
#[async_trait]
pub trait AnalyticsSink: Send + Sync + 'static {
    async fn publish(&self, batch: &[Observation]) -> Result<(), String>;
}

/// The embedded sink: straight into the analytics view.
pub struct ViewSink(pub Arc<dyn AnalyticsView>);

#[async_trait]
impl AnalyticsSink for ViewSink {
    async fn publish(&self, batch: &[Observation]) -> Result<(), String> {
        self.0
            .record(batch)
            .await
            .map_err(|error| error.to_string())
    }
}

/// The largest batch handed to the sink at once.
const BATCH: usize = 512;

/// The request path's handle on the capture queue.
#[derive(Clone)]
pub struct Capture {
    sender: mpsc::Sender<Observation>,
    dropped: Arc<AtomicU64>,
}

impl Capture {
    /// A capture queue of `capacity` events drained into `sink` by a task spawned here.
    pub fn start(sink: Arc<dyn AnalyticsSink>, capacity: usize) -> Capture {
        let (sender, mut receiver) = mpsc::channel::<Observation>(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = dropped.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while receiver.recv_many(&mut batch, BATCH).await > 0 {
                if let Err(error) = sink.publish(&batch).await {
                    // Analytics are best effort: a sink that fails loses this batch, counted.
                    tracing::warn!(%error, events = batch.len(), "cannot publish analytics events");
                    metrics::counter!("catalog_analytics_events_dropped_total")
                        .increment(batch.len() as u64);
                    lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                } else {
                    metrics::counter!("catalog_analytics_events_published_total")
                        .increment(batch.len() as u64);
                }
                batch.clear();
            }
        });
        Capture { sender, dropped }
    }

    /// Queues `event` without waiting; drops it (counted) when the queue is full.
    pub fn record(&self, event: AnalyticsEvent) {
        if self.sender.try_send(Observation::now(event)).is_err() {
            metrics::counter!("catalog_analytics_events_dropped_total").increment(1);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped so far (queue full or sink failed).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What the analytics routes share.
#[derive(Clone)]
pub struct AnalyticsState {
    pub view: Arc<dyn AnalyticsView>,
    pub verifier: Option<Arc<auth::TokenVerifier>>,
}

/// Query string of `GET /api/analytics/trending`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendingParams {
    /// `1h`, `24h` (default) or `7d`.
    pub window: Option<String>,
    /// Only products of this category slug.
    pub category: Option<String>,
    /// 1–100, default 10.
    pub limit: Option<String>,
}

/// Query string of `GET /api/analytics/searches`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchesParams {
    /// `1h`, `24h` (default) or `7d`.
    pub window: Option<String>,
    /// 1–100, default 10.
    pub limit: Option<String>,
}

fn parse_window(value: Option<String>) -> Result<Window, QueryProblem> {
    match value {
        None => Ok(Window::Day),
        Some(text) => Window::parse(&text)
            .ok_or_else(|| bad(format!("window must be one of 1h, 24h, 7d; got {text:?}"))),
    }
}

fn unavailable(error: projectors::analytics::AnalyticsError) -> QueryProblem {
    tracing::warn!(%error, "analytics unavailable");
    QueryProblem(Problem::unavailable(
        1,
        "analytics are unavailable; retry shortly",
    ))
}

/// The most viewed and the best selling products over a sliding window.
#[utoipa::path(get, path = "/api/analytics/trending", tag = "analysts", params(TrendingParams),
    security(("bearer" = [])),
    responses((status = 200, body = Trending), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn trending(
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    Query(params): Query<TrendingParams>,
) -> QueryResult {
    require_analyst(state.verifier.as_deref(), &headers)?;
    let window = parse_window(given(params.window))?;
    let category = parse_slug("category", given(params.category))?;
    let limit = parse_limit(given(params.limit), 10)?;
    let trending = state
        .view
        .trending(TrendingQuery {
            window,
            category: category.as_deref(),
            limit,
            now: Utc::now(),
        })
        .await
        .map_err(unavailable)?;
    Ok(axum::Json(trending).into_response())
}

/// The most frequent searches and the most frequent searches that found nothing.
#[utoipa::path(get, path = "/api/analytics/searches", tag = "analysts", params(SearchesParams),
    security(("bearer" = [])),
    responses((status = 200, body = Searches), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn searches(
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    Query(params): Query<SearchesParams>,
) -> QueryResult {
    require_analyst(state.verifier.as_deref(), &headers)?;
    let window = parse_window(given(params.window))?;
    let limit = parse_limit(given(params.limit), 10)?;
    let searches = state
        .view
        .searches(window, limit, Utc::now())
        .await
        .map_err(unavailable)?;
    Ok(axum::Json(searches).into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use events::analytics::SearchPerformed;
    use tokio::sync::Notify;

    use super::*;

    /// A sink that holds its first batch until released, as a stalled broker would.
    struct Stalled {
        release: Notify,
        received: AtomicU64,
    }

    #[async_trait]
    impl AnalyticsSink for Stalled {
        async fn publish(&self, batch: &[Observation]) -> Result<(), String> {
            self.release.notified().await;
            self.received
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    }

    fn search() -> AnalyticsEvent {
        AnalyticsEvent::SearchPerformed(SearchPerformed {
            query: "kettle".into(),
            filters: Default::default(),
            result_count: 1,
        })
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let sink = Arc::new(Stalled {
            release: Notify::new(),
            received: AtomicU64::new(0),
        });
        let capture = Capture::start(sink.clone(), 8);
        // The first event is taken by the drain task, which then stalls in the sink.
        capture.record(search());
        tokio::time::sleep(Duration::from_millis(50)).await;
        // `record` is not async: it has nothing to wait on, whatever the sink does.
        for _ in 0..100 {
            capture.record(search());
        }
        assert_eq!(capture.dropped(), 100 - 8);
        // Released, the sink gets what the queue held: the first event and 8 more.
        sink.release.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        sink.release.notify_one();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sink.received.load(Ordering::Relaxed), 1 + 8);
    }
}
