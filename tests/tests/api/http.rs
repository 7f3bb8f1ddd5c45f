//! HTTP basics every service shares: problem+json everywhere, request ids, health,
//! readiness, metrics, the OpenAPI document and its browsable UI.

use catalog_tests::{assert_problem, json_body, send, spawn_app, spawn_app_alone};
use reqwest::Method;

#[tokio::test]
async fn a_request_id_is_echoed_or_made_up() {
    let app = spawn_app().await;
    let echoed = send(app.get("/healthz").header("X-Request-Id", "trace-me-42")).await;
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-42");
    let generated = app
        .fetch("/api/products/0192f0c4-0000-7000-8000-000000000000")
        .await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems_too() {
    let app = spawn_app().await;
    assert_problem(app.fetch("/api/nothing-here").await, 404).await;
    let wrong_method = send(app.request(Method::PUT, "/api/categories")).await;
    assert!(wrong_method.headers().contains_key("allow"));
    assert_problem(wrong_method, 405).await;
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.fetch("/healthz").await.status(), 200);
    let ready = app.fetch("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body = json_body(ready).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"][0], "event-store");
}

#[tokio::test]
async fn metrics_count_requests_per_route_with_latency_histograms() {
    // Alone: the recorder is the test binary's, and other tests read categories too.
    let app = spawn_app_alone().await;
    let counted = |text: &str| -> f64 {
        text.lines()
            .filter(|line| {
                line.starts_with("catalog_http_requests_total{")
                    && line.contains("route=\"/api/categories\"")
                    && line.contains("status=\"200\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = counted(&app.metrics().await);
    app.fetch("/api/categories").await;
    let text = app.metrics().await;
    assert_eq!(counted(&text) - before, 1.0, "{text}");
    assert!(
        text.contains("catalog_http_request_duration_seconds_bucket{"),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_and_docs_page_are_served() {
    let app = spawn_app().await;
    let document = app.fetch_json("/api/openapi.json").await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert!(document["paths"]["/api/products"]["post"].is_object());
    assert!(document["paths"]["/api/products/{id}"]["get"].is_object());
    let docs = app.fetch("/api/docs").await;
    assert_eq!(docs.status(), 200);
    let policy = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let page = docs.text().await.unwrap();
    assert!(page.contains("<html"), "{page}");
    // Everything the page loads comes from this origin, and is there.
    let sources: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("/api/docs/") || part.starts_with("http"))
        .collect();
    assert!(sources.len() >= 3, "{sources:?}");
    for source in sources {
        assert!(source.starts_with("/api/docs/"), "the page loads {source}");
        let asset = app.fetch(source).await;
        assert_eq!(asset.status(), 200, "{source}");
        assert!(asset.bytes().await.unwrap().len() > 100, "{source}");
    }
    assert_eq!(app.fetch("/api/docs/nothing.js").await.status(), 404);
}

#[tokio::test]
async fn admins_see_each_projection_position_and_lag() {
    let app = spawn_app().await;
    let created = app.create_category("electronics").await;
    app.read_after("/api/categories", &created["position"])
        .await;
    let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
    assert_eq!(status["head"], created["position"]);
    assert_eq!(status["items"][0]["name"], "read-model");
    assert_eq!(status["items"][0]["position"], created["position"]);
    assert_eq!(status["items"][0]["lag_events"], 0);
    assert_eq!(status["items"][0]["state"], "live");
    assert_problem(app.fetch("/api/admin/projections").await, 401).await;
}
