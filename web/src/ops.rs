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

/// How long one dependency may take to answer `/readyz` before it counts as failing: under a
/// balancer's check timeout (HAProxy's `timeout check` in docker/haproxy is 2 s), since the
/// checks run at once.
pub const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);

#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    draining: Draining,
}

impl Readiness {
    pub fn new(checks: Vec<Arc<dyn ReadinessCheck>>, draining: Draining) -> Self {
        Readiness { checks, draining }
    }
}

/// Set when the process is shutting down: `/readyz` answers 503 `draining` from then on, so
/// a balancer stops sending new requests while the listener still serves the ones it sends
/// until it notices.
#[derive(Clone, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("catalog_draining").set(1.0);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
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

/// 200 when every dependency answers; 503 naming the ones that do not, or `draining` once the
/// process is shutting down. The checks run at once, each for at most [`CHECK_TIMEOUT`], so
/// the answer comes within about a second whatever hangs.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Object),
    (status = 503, description = "Not ready: `failing` names each dependency that did not answer and why; `status` is `draining` when the process is shutting down", body = Object)))]
pub async fn readyz(State(readiness): State<Readiness>) -> Response {
    if readiness.draining.is_draining() {
        let body = json!({
            "status": "draining",
            "failing": {"process": "shutting down: finishing the requests in flight"},
            "checks": [],
        });
        return not_ready(body);
    }
    let outcomes = futures::future::join_all(readiness.checks.iter().map(|check| async move {
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, check.check()).await;
        (check.name(), outcome)
    }))
    .await;
    let mut failing = serde_json::Map::new();
    let mut passing = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Ok(Ok(())) => passing.push(name.to_owned()),
            Ok(Err(error)) => {
                failing.insert(name.to_owned(), json!(error));
            }
            Err(_) => {
                let waited = format!("no answer within {} ms", CHECK_TIMEOUT.as_millis());
                failing.insert(name.to_owned(), json!(waited));
            }
        }
    }
    if failing.is_empty() {
        return axum::Json(json!({"status": "ready", "checks": passing})).into_response();
    }
    not_ready(json!({"status": "not ready", "failing": failing, "checks": passing}))
}

fn not_ready(body: serde_json::Value) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// A dependency that answers after `delay` (or never), with `outcome`.
    struct Slow(
        &'static str,
        Option<std::time::Duration>,
        Result<(), String>,
    );

    impl ReadinessCheck for Slow {
        fn name(&self) -> &str {
            self.0
        }

        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                match self.1 {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending::<()>().await,
                }
                self.2.clone()
            })
        }
    }

    async fn ask(readiness: Readiness) -> (StatusCode, serde_json::Value, std::time::Duration) {
        let started = std::time::Instant::now();
        let request = Request::get("/readyz")
            .body(Body::empty())
            .expect("request");
        let response = ops_router(readiness)
            .oneshot(request)
            .await
            .expect("answer");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body = serde_json::from_slice(&body).expect("json");
        (status, body, started.elapsed())
    }

    #[tokio::test]
    async fn two_hanging_dependencies_are_named_within_one_check_timeout() {
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(Slow("redis", None, Ok(()))),
            Arc::new(Slow("read-replica", None, Ok(()))),
            Arc::new(Slow("event-store", Some(std::time::Duration::ZERO), Ok(()))),
            Arc::new(Slow(
                "bus",
                Some(std::time::Duration::ZERO),
                Err("refused".into()),
            )),
        ];
        let (status, body, took) = ask(Readiness::new(checks, Draining::default())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "not ready");
        assert_eq!(body["failing"]["redis"], "no answer within 1000 ms");
        assert_eq!(body["failing"]["read-replica"], "no answer within 1000 ms");
        assert_eq!(body["failing"]["bus"], "refused");
        assert_eq!(body["checks"], json!(["event-store"]));
        // At once, not one after the other (that was 2 s each).
        assert!(
            took < std::time::Duration::from_millis(1800),
            "took {took:?}"
        );
    }

    #[tokio::test]
    async fn a_draining_process_is_not_ready_whatever_its_dependencies_say() {
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(Slow(
            "event-store",
            Some(std::time::Duration::ZERO),
            Ok(()),
        ))];
        let draining = Draining::default();
        let readiness = Readiness::new(checks, draining.clone());
        let (status, body, _) = ask(readiness.clone()).await;
        assert_eq!(
            (status, body["status"].clone()),
            (StatusCode::OK, json!("ready"))
        );
        draining.start();
        let (status, body, _) = ask(readiness).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "draining");
        assert!(body["failing"]["process"].is_string(), "{body}");
    }
}
