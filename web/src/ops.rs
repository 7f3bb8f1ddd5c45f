//! `/healthz`, `/readyz` and `/metrics`: the same three on every service.

use std::sync::Arc;

use async_trait_free::BoxFuture;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

/// Boxed futures without pulling in another crate.
mod async_trait_free {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// A dependency `/readyz` asks: its name and a check that answers within its own timeout.
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Readiness {
    pub fn new(checks: Vec<Arc<dyn ReadinessCheck>>) -> Self {
        Readiness { checks }
    }
}

/// The operations routes; merge them into a service's router.
pub fn ops_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(readiness)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let mut failing = serde_json::Map::new();
    let mut passing = Vec::new();
    for check in &readiness.checks {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(2), check.check()).await;
        match outcome {
            Ok(Ok(())) => passing.push(check.name().to_owned()),
            Ok(Err(error)) => {
                failing.insert(check.name().to_owned(), json!(error));
            }
            Err(_) => {
                failing.insert(check.name().to_owned(), json!("no answer within 2 s"));
            }
        }
    }
    if failing.is_empty() {
        return axum::Json(json!({"status": "ready", "checks": passing})).into_response();
    }
    let body = json!({"status": "not ready", "failing": failing, "checks": passing});
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        axum::Json(body),
    )
        .into_response()
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
    )
}
