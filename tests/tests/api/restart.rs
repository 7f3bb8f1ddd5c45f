//! Everything written survives a restart on the same data dir.

use catalog_tests::{
    json_body, send, spawn_app_in, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD,
};
use serde_json::json;

/// The pages a shopper sees, as text: the product, a listing and the categories.
async fn pages(app: &TestApp, product_path: &str) -> [String; 3] {
    [
        app.fetch_text(product_path).await,
        app.fetch_text("/api/products?sort=price_asc").await,
        app.fetch_text("/api/categories").await,
    ]
}

#[tokio::test]
async fn products_versions_positions_users_and_idempotency_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path()).await;
    app.create_category("electronics").await;
    let id = app.create_product(json!({"sku": "KEEP-1"})).await.id;
    let product_path = format!("/api/products/{id}");
    let keyed_sale = |app: &TestApp| {
        send(
            app.sale(&id, 2)
                .header("Idempotency-Key", "sale-before-restart"),
        )
    };
    let keyed_body = json_body(keyed_sale(&app).await).await;
    app.create_user("kept@example.com", USER_PASSWORD, "shopper")
        .await;
    // The product page once the sale is applied; the rest then reflects it too.
    app.read_after(&product_path, &keyed_body["position"]).await;
    let before = pages(&app, &product_path).await;
    app.stop().await;

    let app = spawn_app_in(dir.path()).await;
    assert_eq!(pages(&app, &product_path).await, before);
    let replay = keyed_sale(&app).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(json_body(replay).await, keyed_body);
    app.login("kept@example.com", USER_PASSWORD).await;
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let next = app.create_product(json!({})).await;
    assert_eq!(
        next.position,
        keyed_body["position"].as_u64().unwrap() + 1,
        "positions go on from where they were"
    );
}
