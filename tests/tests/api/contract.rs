//! Details of the HTTP contract a careful client relies on: RFC 9110 `If-Match` lists and
//! weak tags, authorisation judged before the body, blank query parameters, idempotency by
//! JSON content, consistent problem titles, admins reading drafts, the stock ceiling.

use catalog_tests::{assert_problem, spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn app_with_product() -> (TestApp, String) {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let created = app.create_product(json!({})).await;
    let id = created["id"].as_str().expect("id").to_owned();
    (app, id)
}

async fn change_price(app: &TestApp, id: &str, if_match: &str) -> reqwest::Response {
    app.admin(Method::PUT, &format!("/api/products/{id}/price"))
        .header("If-Match", if_match)
        .json(&json!({"price_cents": 500, "currency": "USD"}))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn if_match_takes_a_list_of_strong_tags_and_weak_tags_never_match() {
    let (app, id) = app_with_product().await;
    // The product is at version 1.
    assert_problem(change_price(&app, &id, "W/\"1\"").await, 412).await;
    assert_eq!(change_price(&app, &id, "\"7\", \"1\"").await.status(), 200);
    assert_eq!(change_price(&app, &id, "*").await.status(), 200);
    assert_problem(change_price(&app, &id, "\"1\", \"2\"").await, 412).await;
    assert_problem(change_price(&app, &id, "\"3\", banana").await, 400).await;
}

#[tokio::test]
async fn a_caller_without_the_right_is_told_so_before_the_body_is_judged() {
    let (app, id) = app_with_product().await;
    let shopper = app.user_token("shopper@example.com", "shopper").await;
    let response = app
        .request(Method::PUT, &format!("/api/products/{id}/price"))
        .bearer_auth(&shopper)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_problem(response, 403).await;
    let response = app
        .request(Method::POST, "/api/products")
        .header("Idempotency-Key", "k".repeat(300))
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn blank_query_parameters_count_as_not_given() {
    let (app, _) = app_with_product().await;
    let response = app
        .get("/api/products?category=&brand=&min_price=&max_price=&in_stock=&sort=&limit=&cursor=")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let response = app
        .get("/api/products/bestsellers?category=&limit=")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_same_json_with_keys_in_another_order_is_the_same_idempotent_request() {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let first = r#"{"slug": "audio", "name": "Audio", "parent": "electronics"}"#;
    let reordered = r#"{"parent":"electronics","name":"Audio","slug":"audio"}"#;
    let mut answers = Vec::new();
    for body in [first, reordered] {
        let response = app
            .admin(Method::POST, "/api/categories")
            .header("Idempotency-Key", "category-audio")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 201);
        answers.push(
            response
                .headers()
                .get("idempotent-replayed")
                .map(|value| value.to_str().unwrap_or_default().to_owned()),
        );
    }
    assert_eq!(answers, vec![None, Some("true".to_owned())]);
}

#[tokio::test]
async fn problems_from_the_router_use_the_same_titles_as_the_handlers() {
    let app = spawn_app().await;
    let response = app
        .request(Method::PUT, "/api/products")
        .send()
        .await
        .expect("send");
    let allow = response
        .headers()
        .get("allow")
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    let problem = assert_problem(response, 405).await;
    assert_eq!(problem["title"], "Method not allowed");
    assert!(allow.is_some_and(|methods| methods.contains("POST")));
    assert!(!problem["detail"].as_str().unwrap_or("").ends_with(": "));
    let problem = assert_problem(app.get("/nowhere").send().await.expect("send"), 404).await;
    assert_eq!(problem["title"], "Not found");
}

#[tokio::test]
async fn an_admin_reads_a_draft_that_shoppers_cannot_see() {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let created = app.create_product(json!({"status": "draft"})).await;
    let id = created["id"].as_str().expect("id");
    let path = format!("/api/products/{id}");
    let response = app.read_after(&path, &created["position"]).await;
    assert_problem(response, 404).await;
    let shopper = app.user_token("shopper@example.com", "shopper").await;
    let response = app
        .get(&path)
        .bearer_auth(&shopper)
        .send()
        .await
        .expect("send");
    assert_problem(response, 404).await;
    let response = app
        .get(&path)
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap_or_default(),
        "private, no-store"
    );
    let product: Value = response.json().await.expect("json");
    assert_eq!(product["status"], "draft");
    let response = app
        .get(&path)
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("send");
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn stock_cannot_be_raised_past_the_ceiling_a_new_product_has() {
    let (app, id) = app_with_product().await;
    let response = app
        .admin(Method::POST, &format!("/api/products/{id}/stock"))
        .json(&json!({"delta": 1_000_000_000, "reason": "typo"}))
        .send()
        .await
        .expect("send");
    let problem = assert_problem(response, 409).await;
    assert!(problem["detail"]
        .as_str()
        .unwrap_or("")
        .contains("1,000,000,000"));
}
