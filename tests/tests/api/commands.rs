//! Every command endpoint of API.md and its status codes, over real HTTP.

use catalog_tests::{
    assert_problem, json_body, position_header, product_body, send, spawn_app, TestApp,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn app_with_category() -> TestApp {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    app
}

#[tokio::test]
async fn creating_a_product_answers_201_with_location_and_the_product_reads_back() {
    let app = app_with_category().await;
    let body = product_body(json!({"sku": "ELEC-000123"}));
    let response = app.admin_json(Method::POST, "/api/products", &body).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created = json_body(response).await;
    assert_eq!(
        location,
        format!("/api/products/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(created["version"], 1);
    assert!(created["position"].as_u64().unwrap() >= 2);

    let read = app.read_after(&location, &created["position"]).await;
    assert_eq!(read.status(), 200);
    let product = json_body(read).await;
    // Every field written (sku, name, description, category, brand, price_cents, currency,
    // stock, status, attributes, images) reads back as written.
    let written = body.as_object().expect("a product body is an object");
    assert_eq!(written.len(), 11);
    for (field, value) in written {
        assert_eq!(&product[field], value, "field {field}");
    }
    assert_eq!(product["id"], created["id"]);
    assert_eq!(product["version"], 1);
    assert_eq!(product["sales"], 0);
    assert!(product["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(product["created_at"], product["updated_at"]);
}

#[tokio::test]
async fn writes_need_an_admin_token() {
    let app = app_with_category().await;
    let anonymous = send(
        app.request(Method::POST, "/api/products")
            .json(&product_body(json!({}))),
    )
    .await;
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_problem(anonymous, 401).await;
    let forged = send(
        app.request(Method::POST, "/api/products")
            .bearer_auth("not.a.token")
            .json(&product_body(json!({}))),
    )
    .await;
    assert_problem(forged, 401).await;
    let shopper = app.user_token("shopper@example.com", "shopper").await;
    let forbidden = send(
        app.request(Method::POST, "/api/products")
            .bearer_auth(&shopper)
            .json(&product_body(json!({}))),
    )
    .await;
    assert_problem(forbidden, 403).await;
    let analyst = app.user_token("analyst@example.com", "analyst").await;
    let forbidden = send(
        app.request(Method::POST, "/api/categories")
            .bearer_auth(&analyst)
            .json(&json!({"slug": "x", "name": "X"})),
    )
    .await;
    assert_problem(forbidden, 403).await;
}

#[tokio::test]
async fn malformed_json_is_400_a_wrong_content_type_415_and_invalid_fields_422() {
    let app = app_with_category().await;
    let malformed = app
        .admin_raw(
            Method::POST,
            "/api/products",
            "application/json",
            "{\"sku\": ",
        )
        .await;
    assert_problem(malformed, 400).await;
    let text = app
        .admin_raw(Method::POST, "/api/products", "text/plain", "{}")
        .await;
    assert_problem(text, 415).await;
    let invalid_body = product_body(
        json!({"sku": "bad sku", "price_cents": -5, "currency": "usd",
        "attributes": {"color": ["nested"]}, "id": "0192f0c4-0000-7000-8000-000000000000"}),
    );
    let invalid = app
        .admin_json(Method::POST, "/api/products", &invalid_body)
        .await;
    let problem = assert_problem(invalid, 422).await;
    let errors = problem["errors"].as_object().unwrap();
    let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        ["attributes.color", "currency", "id", "price_cents", "sku"]
    );
    let unknown_category = app
        .admin_json(
            Method::POST,
            "/api/products",
            &product_body(json!({"category": "nowhere"})),
        )
        .await;
    let problem = assert_problem(unknown_category, 422).await;
    assert!(problem["errors"]["category"].is_array());
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let app = app_with_category().await;
    let huge = product_body(json!({"description": "x".repeat(1024 * 1024 + 10)}));
    let response = app.admin_json(Method::POST, "/api/products", &huge).await;
    assert_problem(response, 413).await;
}

#[tokio::test]
async fn a_duplicate_sku_is_409() {
    let app = app_with_category().await;
    app.create_product(json!({"sku": "DUP-1"})).await;
    let again = app
        .admin_json(
            Method::POST,
            "/api/products",
            &product_body(json!({"sku": "DUP-1"})),
        )
        .await;
    let problem = assert_problem(again, 409).await;
    assert_eq!(problem["type"], "urn:catalog:problem:duplicate-sku");
}

#[tokio::test]
async fn each_product_command_raises_the_version_by_one_and_shows_in_reads() {
    let app = app_with_category().await;
    app.create_category("audio").await;
    let created = app.create_product(json!({"stock": 10})).await;
    let id = &created.id;
    let steps: Vec<(Method, String, Value)> = vec![
        (
            Method::PATCH,
            format!("/api/products/{id}"),
            json!({"name": "Renamed", "category": "audio", "brand": null, "attributes": {"color": "red"}}),
        ),
        (
            Method::PUT,
            format!("/api/products/{id}/price"),
            json!({"price_cents": 9999, "currency": "EUR"}),
        ),
        (
            Method::POST,
            format!("/api/products/{id}/stock"),
            json!({"delta": -3, "reason": "recount"}),
        ),
        (
            Method::POST,
            format!("/api/products/{id}/sales"),
            json!({"quantity": 2}),
        ),
    ];
    let mut last = created.body.clone();
    for (index, (method, path, body)) in steps.into_iter().enumerate() {
        let response = app.admin_json(method, &path, &body).await;
        assert_eq!(response.status(), 200, "{path}");
        let position = position_header(&response).to_string();
        last = json_body(response).await;
        assert_eq!(last["id"], created.body["id"]);
        assert_eq!(last["version"], index as u64 + 2);
        assert_eq!(last["position"].to_string(), position);
    }
    let product = app
        .read_json_after(&format!("/api/products/{id}"), &last["position"])
        .await;
    assert_eq!(
        (
            &product["name"],
            &product["category"],
            &product["brand"],
            &product["attributes"],
            &product["price_cents"],
            &product["currency"],
            &product["stock"],
            &product["sales"],
            &product["version"]
        ),
        (
            &json!("Renamed"),
            &json!("audio"),
            &Value::Null,
            &json!({"color": "red"}),
            &json!(9999),
            &json!("EUR"),
            &json!(5),
            &json!(2),
            &json!(5)
        )
    );
    assert_ne!(product["created_at"], product["updated_at"]);
}

#[tokio::test]
async fn stock_and_sales_never_go_below_zero() {
    let app = app_with_category().await;
    let id = app.create_product(json!({"stock": 2})).await.id;
    assert_problem(app.adjust_stock(&id, -3, None).await, 409).await;
    assert_problem(app.sell(&id, 3).await, 409).await;
    let zero = app.sell(&id, 0).await;
    let problem = assert_problem(zero, 422).await;
    assert!(problem["errors"]["quantity"].is_array());
}

#[tokio::test]
async fn publish_unpublish_and_archive_follow_the_lifecycle() {
    let app = app_with_category().await;
    let created = app.create_product(json!({"status": "draft"})).await;
    let path = format!("/api/products/{}", created.id);
    let hidden = app.read_after(&path, created.position).await;
    assert_problem(hidden, 404).await;
    let (publish, unpublish) = (format!("{path}/publish"), format!("{path}/unpublish"));
    let unpublish_draft = app.admin_send(Method::POST, &unpublish).await;
    assert_problem(unpublish_draft, 409).await;
    let published = app.admin_send(Method::POST, &publish).await;
    assert_eq!(published.status(), 200);
    let published = json_body(published).await;
    assert_eq!(
        app.read_after(&path, &published["position"]).await.status(),
        200
    );
    let again = app.admin_send(Method::POST, &publish).await;
    assert_problem(again, 409).await;
    let unpublished = json_body(app.admin_send(Method::POST, &unpublish).await).await;
    assert_problem(app.read_after(&path, &unpublished["position"]).await, 404).await;

    let archived = app.admin_send(Method::DELETE, &path).await;
    assert_eq!(archived.status(), 204);
    let position = position_header(&archived);
    assert_eq!(position, unpublished["position"].as_u64().unwrap() + 1);
    assert_problem(app.read_after(&path, position).await, 404).await;
    let after_archive = app.change_price(&created.id, 1, "USD").await;
    assert_problem(after_archive, 409).await;
}

#[tokio::test]
async fn unknown_products_are_404_and_stale_if_match_is_412() {
    let app = app_with_category().await;
    for path in [
        "/api/products/0192f0c4-0000-7000-8000-000000000000/publish",
        "/api/products/not-a-uuid/publish",
    ] {
        assert_problem(app.admin_send(Method::POST, path).await, 404).await;
    }
    let id = app.create_product(json!({})).await.id;
    let price_change = |if_match: &'static str| {
        send(
            app.price_change(&id, 100, "USD")
                .header("If-Match", if_match),
        )
    };
    let problem = assert_problem(price_change("\"7\"").await, 412).await;
    assert!(problem["detail"].as_str().unwrap().contains("version 1"));
    assert_problem(price_change("seven").await, 400).await;
    assert_eq!(price_change("\"1\"").await.status(), 200);
    let empty_patch = app
        .admin_json(Method::PATCH, &format!("/api/products/{id}"), &json!({}))
        .await;
    assert_problem(empty_patch, 422).await;
}

#[tokio::test]
async fn bulk_creates_answer_207_with_a_result_per_item_in_order() {
    let app = app_with_category().await;
    app.create_product(json!({"sku": "TAKEN"})).await;
    let items = json!([
        product_body(json!({"sku": "BULK-1"})),
        product_body(json!({"sku": "bad sku"})),
        product_body(json!({"sku": "TAKEN"})),
        product_body(json!({"sku": "BULK-2", "category": "missing"})),
        product_body(json!({"sku": "BULK-3"})),
    ]);
    let response = app
        .admin_json(Method::POST, "/api/products/bulk", &items)
        .await;
    assert_eq!(response.status(), 207);
    let body = json_body(response).await;
    let statuses: Vec<(u64, u64)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(statuses, [(0, 201), (1, 422), (2, 409), (3, 422), (4, 201)]);
    assert!(body["results"][0]["id"].is_string());
    assert_eq!(body["results"][1]["problem"]["status"], 422);
    assert!(body["results"][1]["problem"]["errors"]["sku"].is_array());

    let ndjson = format!(
        "{}\n{}\nnot json\n",
        product_body(json!({"sku": "ND-1"})),
        product_body(json!({"sku": "ND-2"}))
    );
    let response = app
        .admin_raw(
            Method::POST,
            "/api/products/bulk",
            "application/x-ndjson",
            ndjson,
        )
        .await;
    assert_eq!(response.status(), 207);
    let body = json_body(response).await;
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 201, 400]);

    let too_many = Value::Array((0..1001).map(|_| json!({})).collect());
    for refused in [too_many, json!([]), json!({"sku": "x"})] {
        let response = app
            .admin_json(Method::POST, "/api/products/bulk", &refused)
            .await;
        assert_problem(response, 422).await;
    }
    let csv = app
        .admin_raw(Method::POST, "/api/products/bulk", "text/csv", "a,b")
        .await;
    assert_problem(csv, 415).await;
}

#[tokio::test]
async fn categories_are_created_once_and_need_an_existing_parent() {
    let app = spawn_app().await;
    let created = app.create_category("electronics").await;
    assert_eq!(created["version"], 1);
    let create = |body: Value| send(app.admin(Method::POST, "/api/categories").json(&body));
    let duplicate = create(json!({"slug": "electronics", "name": "Again"})).await;
    assert_problem(duplicate, 409).await;
    let orphan = create(json!({"slug": "audio", "name": "Audio", "parent": "nowhere"})).await;
    let problem = assert_problem(orphan, 422).await;
    assert!(problem["errors"]["parent"].is_array());
    let child = create(json!({"slug": "audio", "name": "Audio", "parent": "electronics"})).await;
    assert_eq!(child.status(), 201);
    let invalid = create(json!({"slug": "Not Valid", "name": ""})).await;
    let problem = assert_problem(invalid, 422).await;
    assert_eq!(problem["errors"].as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_appends_nothing() {
    let app = app_with_category().await;
    let body = product_body(json!({"sku": "IDEM-1"}));
    let keyed = |key: String, body: &Value| {
        send(
            app.admin(Method::POST, "/api/products")
                .header("Idempotency-Key", key)
                .json(body),
        )
    };
    let first = keyed("key-1".into(), &body).await;
    assert_eq!(first.status(), 201);
    let first_location = first.headers()["location"].clone();
    let first_body = json_body(first).await;
    let retry = keyed("key-1".into(), &body).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["location"], first_location);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(json_body(retry).await, first_body);

    // Nothing new was appended: the next write gets the very next position.
    let next = app.create_product(json!({})).await;
    assert_eq!(next.position, first_body["position"].as_u64().unwrap() + 1);

    let other_body = keyed("key-1".into(), &product_body(json!({"sku": "IDEM-2"}))).await;
    assert_problem(other_body, 409).await;
    assert_problem(keyed("k".repeat(256), &body).await, 400).await;

    // Keys are scoped to the caller: another admin's key-1 is its own.
    let other_admin = app.user_token("second@example.com", "admin").await;
    let theirs = send(
        app.request(Method::POST, "/api/products")
            .bearer_auth(&other_admin)
            .header("Idempotency-Key", "key-1")
            .json(&product_body(json!({"sku": "IDEM-3"}))),
    )
    .await;
    assert_eq!(theirs.status(), 201);
}

#[tokio::test]
async fn a_refused_command_is_replayed_too() {
    let app = app_with_category().await;
    let id = app.create_product(json!({"stock": 1})).await.id;
    let keyed_sale = || send(app.sale(&id, 5).header("Idempotency-Key", "sale-1"));
    assert_problem(keyed_sale().await, 409).await;
    let retry = keyed_sale().await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_problem(retry, 409).await;
}

/// As if the process had died between its append and storing its answer: every key of the
/// data dir's store reserved again, unanswered.
async fn forget_the_answers(data_dir: &std::path::Path) {
    let url = format!("sqlite://{}", data_dir.join("catalog.db").display());
    let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE idempotency_keys SET completed = 0, status = NULL, headers = NULL, body = NULL",
    )
    .execute(&mut connection)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_key_whose_attempt_appended_but_never_answered_is_answered_from_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let app = catalog_tests::spawn_app_in(dir.path()).await;
    app.create_category("electronics").await;
    let id = app.create_product(json!({"stock": 10})).await.id;
    let sale = |key: &'static str| send(app.sale(&id, 1).header("Idempotency-Key", key));
    let create = || {
        send(
            app.admin(Method::POST, "/api/products")
                .header("Idempotency-Key", "lost-create")
                .json(&product_body(json!({"sku": "LOST-1"}))),
        )
    };
    let sold = json_body(sale("lost-sale").await).await;
    let created = create().await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].clone();
    let created = json_body(created).await;
    forget_the_answers(dir.path()).await;

    // Before, these were 409 "still being processed" for a day; now each retry is answered
    // with what its first attempt appended, and appends nothing.
    let retried = sale("lost-sale").await;
    assert_eq!(retried.status(), 200);
    assert_eq!(json_body(retried).await, sold);
    let retried = create().await;
    assert_eq!(retried.status(), 201);
    assert_eq!(retried.headers()["location"], location);
    assert_eq!(json_body(retried).await, created);
    let next = json_body(sale("a-new-sale").await).await;
    assert_eq!(next["position"], created["position"].as_u64().unwrap() + 1);
    assert_eq!(next["version"], sold["version"].as_u64().unwrap() + 1);
}
