//! Read-your-writes: `X-Min-Position: <n>` waits until the views have applied position `n`
//! (up to [`QueryState::min_position_wait`], then 503 with `Retry-After`); every answer says
//! the position its views had reached in `X-Position`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use projectors::read_model::CatalogReadModel;
use web::Problem;

/// The views a group of routes reads, as far as read-your-writes is concerned.
#[async_trait]
pub trait Views: Send + Sync + 'static {
    /// The position they have all applied.
    fn position(&self) -> u64;
    /// Waits until they have applied `position`; `false` after `timeout`.
    async fn wait_for(&self, position: u64, timeout: Duration) -> bool;
}

/// The catalog read model (product pages, listings, bestsellers, categories).
pub struct ReadModelViews(pub Arc<dyn CatalogReadModel>);

#[async_trait]
impl Views for ReadModelViews {
    fn position(&self) -> u64 {
        self.0.position()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.0.wait_for(position, timeout).await
    }
}

/// The search index (`/api/search`).
pub struct SearchViews(pub Arc<dyn search::SearchIndex>);

#[async_trait]
impl Views for SearchViews {
    fn position(&self) -> u64 {
        self.0.position()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.0.wait_for(position, timeout).await
    }
}

/// What the middleware needs: the views of the routes it guards and how long to wait.
#[derive(Clone)]
pub struct Consistency {
    pub views: Arc<dyn Views>,
    pub wait: Duration,
}

pub const X_MIN_POSITION: HeaderName = HeaderName::from_static("x-min-position");

tokio::task_local! {
    /// The position the current request needs its answer to reflect (`X-Min-Position`).
    static REQUIRED_POSITION: u64;
}

/// The position the request being served needs (0 without `X-Min-Position`): read models
/// with caches use it to decide whether a cached answer will do.
pub fn required_position() -> u64 {
    REQUIRED_POSITION
        .try_with(|position| *position)
        .unwrap_or(0)
}
pub const X_POSITION: HeaderName = HeaderName::from_static("x-position");

pub async fn read_your_writes(
    State(state): State<Consistency>,
    request: Request,
    next: Next,
) -> Response {
    let position_now = || HeaderValue::from(state.views.position());
    let mut required = 0;
    if let Some(value) = request.headers().get(&X_MIN_POSITION) {
        let Some(wanted) = value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
        else {
            let mut response =
                Problem::bad_request("X-Min-Position must be a non-negative integer")
                    .into_response();
            response.headers_mut().insert(X_POSITION, position_now());
            return response;
        };
        if !state.views.wait_for(wanted, state.wait).await {
            metrics::counter!("catalog_read_your_writes_timeouts_total").increment(1);
            let mut response = Problem::unavailable(
                1,
                format!(
                    "the views have not reached position {wanted} yet (they are at {}); retry",
                    state.views.position()
                ),
            )
            .into_response();
            response.headers_mut().insert(X_POSITION, position_now());
            return response;
        }
        required = wanted;
    }
    let mut response = REQUIRED_POSITION.scope(required, next.run(request)).await;
    if !response.headers().contains_key(&X_POSITION) {
        response.headers_mut().insert(X_POSITION, position_now());
    }
    response
}
