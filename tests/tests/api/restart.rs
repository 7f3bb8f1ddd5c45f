//! Everything written survives a restart on the same data dir.

use catalog_tests::{spawn_app_in, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn products_versions_positions_users_and_idempotency_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path()).await;
    app.create_category("electronics").await;
    let created = app.create_product(json!({"sku": "KEEP-1"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let keyed = app
        .admin(Method::POST, &format!("/api/products/{id}/sales"))
        .header("Idempotency-Key", "sale-before-restart")
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .unwrap();
    let keyed_body: Value = keyed.json().await.unwrap();
    app.admin(Method::POST, "/api/auth/users")
        .json(
            &json!({"email": "kept@example.com", "password": "a long password", "role": "shopper"}),
        )
        .send()
        .await
        .unwrap();
    let before_product = app
        .read_after(&format!("/api/products/{id}"), &keyed_body["position"])
        .await
        .text()
        .await
        .unwrap();
    let before_list = app
        .get("/api/products?sort=price_asc")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let before_categories = app
        .get("/api/categories")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    app.stop().await;

    let app = spawn_app_in(dir.path()).await;
    assert_eq!(
        app.get(&format!("/api/products/{id}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        before_product
    );
    assert_eq!(
        app.get("/api/products?sort=price_asc")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        before_list
    );
    assert_eq!(
        app.get("/api/categories")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        before_categories
    );
    let replay = app
        .admin(Method::POST, &format!("/api/products/{id}/sales"))
        .header("Idempotency-Key", "sale-before-restart")
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), keyed_body);
    app.login("kept@example.com", "a long password").await;
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let next = app.create_product(json!({})).await;
    assert_eq!(
        next["position"].as_u64().unwrap(),
        keyed_body["position"].as_u64().unwrap() + 1,
        "positions go on from where they were"
    );
}
