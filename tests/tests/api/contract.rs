//! Details of the HTTP contract a careful client relies on: RFC 9110 `If-Match` lists and
//! weak tags, authorisation judged before the body, blank query parameters, idempotency by
//! JSON content, consistent problem titles, admins reading drafts, the stock ceiling.

use catalog_tests::{assert_problem, json_body, send, spawn_app, spawn_app_with_product, TestApp};
use reqwest::Method;
use serde_json::json;

async fn app_with_product() -> (TestApp, String) {
    spawn_app_with_product(json!({})).await
}

async fn change_price(app: &TestApp, id: &str, if_match: &str) -> reqwest::Response {
    send(
        app.price_change(id, 500, "USD")
            .header("If-Match", if_match),
    )
    .await
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
    let response = send(
        app.request(Method::PUT, &format!("/api/products/{id}/price"))
            .bearer_auth(&shopper)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_problem(response, 403).await;
    let response = send(
        app.request(Method::POST, "/api/products")
            .header("Idempotency-Key", "k".repeat(300))
            .json(&json!({})),
    )
    .await;
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn blank_query_parameters_count_as_not_given() {
    let (app, _) = app_with_product().await;
    let response = app
        .fetch(
            "/api/products?category=&brand=&min_price=&max_price=&in_stock=&sort=&limit=&cursor=",
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .fetch("/api/products/bestsellers?category=&limit=")
        .await;
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
        let response = send(
            app.admin(Method::POST, "/api/categories")
                .header("Idempotency-Key", "category-audio")
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
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
    let response = send(app.request(Method::PUT, "/api/products")).await;
    let allow = response
        .headers()
        .get("allow")
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    let problem = assert_problem(response, 405).await;
    assert_eq!(problem["title"], "Method not allowed");
    assert!(allow.is_some_and(|methods| methods.contains("POST")));
    assert!(!problem["detail"].as_str().unwrap_or("").ends_with(": "));
    let problem = assert_problem(app.fetch("/nowhere").await, 404).await;
    assert_eq!(problem["title"], "Not found");
}

#[tokio::test]
async fn an_admin_reads_a_draft_that_shoppers_cannot_see() {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let created = app.create_product(json!({"status": "draft"})).await;
    let path = format!("/api/products/{}", created.id);
    let response = app.read_after(&path, created.position).await;
    assert_problem(response, 404).await;
    let shopper = app.user_token("shopper@example.com", "shopper").await;
    let response = app.fetch_as(&shopper, &path).await;
    assert_problem(response, 404).await;
    let response = app.fetch_as(&app.admin_token, &path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap_or_default(),
        "private, no-store"
    );
    let product = json_body(response).await;
    assert_eq!(product["status"], "draft");
    let response = app.fetch_as("not-a-token", &path).await;
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn stock_cannot_be_raised_past_the_ceiling_a_new_product_has() {
    let (app, id) = app_with_product().await;
    let response = app.adjust_stock(&id, 1_000_000_000, Some("typo")).await;
    let problem = assert_problem(response, 409).await;
    assert!(problem["detail"]
        .as_str()
        .unwrap_or("")
        .contains("1,000,000,000"));
}
