//! The server refuses exactly what the OpenAPI document refuses at the edges of its numbers:
//! positions and versions are 0 to i64::MAX (the stores' 64-bit signed integers), so a larger
//! one is a 400 at once, never a wait (schemathesis found X-Min-Position 2^63 waited 2 s for a
//! 503, and Last-Event-ID 2^63 opened a stream).

use catalog_tests::{send, spawn_app, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ABOVE_I64: &str = "9223372036854775808";

async fn parameter_schema(app: &TestApp, path: &str, method: &str, name: &str) -> Value {
    let document = app.fetch_json("/api/openapi.json").await;
    document["paths"][path][method]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|parameter| parameter["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} documents no {name}"))["schema"]
        .clone()
}

/// The integer branch of a parameter's schema: the schema itself, or the `anyOf` branch beside
/// the empty string of a parameter an empty value leaves out (`Last-Event-ID`).
fn integer_schema(schema: &Value) -> Value {
    match schema["anyOf"].as_array() {
        Some(branches) => branches
            .iter()
            .find(|branch| branch["type"] == "integer")
            .unwrap_or_else(|| panic!("no integer branch in {schema}"))
            .clone(),
        None => schema.clone(),
    }
}

#[tokio::test]
async fn a_position_above_i64_is_a_400_as_the_document_says() {
    let app = spawn_app().await;
    let schema = parameter_schema(&app, "/api/categories", "get", "X-Min-Position").await;
    assert_eq!(schema["maximum"], json!(i64::MAX), "{schema}");
    let over = send(
        app.get("/api/categories")
            .header("x-min-position", ABOVE_I64),
    )
    .await;
    assert_eq!(over.status(), StatusCode::BAD_REQUEST);
    assert!(over.headers().contains_key("x-position"));

    let analyst = app.user_token("analyst@example.com", "analyst").await;
    let schema = parameter_schema(&app, "/api/events/stream", "get", "Last-Event-ID").await;
    let schema = integer_schema(&schema);
    assert_eq!(schema["maximum"], json!(i64::MAX), "{schema}");
    let stream = send(
        app.get("/api/events/stream")
            .bearer_auth(&analyst)
            .header("last-event-id", ABOVE_I64),
    )
    .await;
    assert_eq!(stream.status(), StatusCode::BAD_REQUEST);
    let schema = parameter_schema(&app, "/api/events", "get", "after").await;
    assert_eq!(integer_schema(&schema)["type"], "integer", "{schema}");
    // The other branch: an empty value is as if not given, and the server takes it so.
    assert!(
        schema["anyOf"]
            .as_array()
            .is_some_and(|branches| branches.iter().any(|branch| branch["maxLength"] == 0)),
        "{schema}"
    );
    let empty = app.fetch_as(&analyst, "/api/events?after=&limit=").await;
    assert_eq!(empty.status(), StatusCode::OK);
    let page = app
        .fetch_as(&analyst, &format!("/api/events?after={ABOVE_I64}"))
        .await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    let last = app
        .fetch_as(&analyst, &format!("/api/events?after={}", i64::MAX))
        .await;
    assert_eq!(last.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_if_match_version_of_twenty_digits_is_a_documented_400() {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let id = app.create_product(json!({})).await.id;
    let path = format!("/api/products/{id}/publish");
    let publish = |tag: &'static str| send(app.admin(Method::POST, &path).header("if-match", tag));
    // 19 digits is a version no product has: 412; 20 digits (this one fits in a u64, so the
    // server once took it) is no version at all: 400.
    assert_eq!(
        publish("\"9999999999999999999\"").await.status(),
        StatusCode::PRECONDITION_FAILED
    );
    let malformed = publish("\"10000000000000000000\"").await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let document = app.fetch_json("/api/openapi.json").await;
    assert!(
        document["paths"]["/api/products/{id}/publish"]["post"]["responses"]["400"].is_object(),
        "the 400 of a malformed If-Match is documented"
    );
}
