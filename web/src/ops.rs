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

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Object)))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// 200 when every dependency answers; 503 naming the ones that do not.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Object),
    (status = 503, description = "Not ready: `failing` names each dependency that did not answer", body = Object)))]
pub async fn readyz(State(readiness): State<Readiness>) -> Response {
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

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
    )
}
