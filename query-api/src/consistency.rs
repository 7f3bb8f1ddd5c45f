//! Read-your-writes: `X-Min-Position: <n>` waits until the views have applied position `n`
//! (up to [`QueryState::min_position_wait`], then 503 with `Retry-After`); every answer says
//! the position its views had reached in `X-Position`.
//!
//! The position a request needs is handed to its handler as a [`RequiredPosition`] (the
//! middleware puts it in the request's extensions), and the handler passes it to every read
//! model call: read models with caches use it to decide whether a cached answer will do.
//!
//! [`QueryState::min_position_wait`]: crate::QueryState::min_position_wait

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use async_trait::async_trait;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use projectors::read_model::{CatalogReadModel, MinPosition};
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

pub const X_POSITION: HeaderName = HeaderName::from_static("x-position");

/// The position the request being served needs its answer to reflect (`X-Min-Position`,
/// [`MinPosition::ANY`] without it), as [`read_your_writes`] checked it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequiredPosition(pub MinPosition);

impl<S: Send + Sync> FromRequestParts<S> for RequiredPosition {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequiredPosition>()
            .copied()
            .unwrap_or_default())
    }
}

pub async fn read_your_writes(
    State(state): State<Consistency>,
    mut request: Request,
    next: Next,
) -> Response {
    let position_now = || HeaderValue::from(state.views.position());
    if let Some(value) = request.headers().get(&X_MIN_POSITION) {
        let Some(wanted) = value.to_str().ok().and_then(parse_position) else {
            let mut response = Problem::bad_request(
                "X-Min-Position must be an integer from 0 to 9223372036854775807",
            )
            .into_response();
            response.headers_mut().insert(X_POSITION, position_now());
            return response;
        };
        let waited = tracing::debug_span!("read.wait_for_position", min_position = wanted);
        if !state
            .views
            .wait_for(wanted, state.wait)
            .instrument(waited)
            .await
        {
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
        // Without the header the handler's extractor defaults to ANY: nothing to insert.
        request
            .extensions_mut()
            .insert(RequiredPosition(MinPosition(wanted)));
    }
    let (mut response, stale) = crate::read_path::stale::scope(next.run(request)).await;
    if let Some(age) = stale {
        let headers = response.headers_mut();
        headers.insert(
            crate::read_path::stale::X_STALE_SECONDS,
            HeaderValue::from(age.as_secs()),
        );
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
    }
    if !response.headers().contains_key(&X_POSITION) {
        response.headers_mut().insert(X_POSITION, position_now());
    }
    response
}

/// A log position as a client writes it (`X-Min-Position`, `Last-Event-ID`, `after`): an
/// integer from 0 to `i64::MAX`, the stores' 64-bit signed positions; anything else is none.
pub fn parse_position(text: &str) -> Option<u64> {
    let position = text.trim().parse::<i64>().ok()?;
    u64::try_from(position).ok()
}
