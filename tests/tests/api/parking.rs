//! A poison event in the embedded store (a body no version of its type has, written behind
//! the catalog's back): the catalog still starts and serves, every view rebuilt from the log
//! parks the event and holds the product's later events behind it, other products are whole,
//! and an admin's skip over HTTP releases the product.

use std::time::{Duration, Instant};

use catalog_tests::{assert_problem, json_body, spawn_app_in, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// Rewrites the body of the event at `position` in the embedded store.
async fn poison(data_dir: &std::path::Path, position: u64) {
    let database = event_store::sqlite::SqliteDatabase::open(&data_dir.join("catalog.db"))
        .await
        .expect("open the store");
    let changed =
        sqlx::query("UPDATE events SET data = '{\"quantity\": \"many\"}' WHERE position = ?")
            .bind(i64::try_from(position).expect("position"))
            .execute(database.writer())
            .await
            .expect("rewrite the event");
    assert_eq!(changed.rows_affected(), 1);
    database.close().await;
}

async fn sold(app: &TestApp, id: &str, quantity: i64) -> u64 {
    let response = app.sell(id, quantity).await;
    assert_eq!(response.status(), 200);
    json_body(response).await["position"]
        .as_u64()
        .expect("position")
}

async fn parked(app: &TestApp, view: &str) -> Vec<Value> {
    let response = app
        .admin_send(
            Method::GET,
            &format!("/api/admin/projections/{view}/parked"),
        )
        .await;
    assert_eq!(response.status(), 200);
    json_body(response).await["items"]
        .as_array()
        .expect("items")
        .clone()
}

fn state_at(records: &[Value], position: u64) -> &str {
    records
        .iter()
        .find(|record| record["position"] == position)
        .and_then(|record| record["state"].as_str())
        .unwrap_or("none")
}

#[tokio::test]
async fn a_poison_event_is_parked_and_an_admin_skips_it_while_the_catalog_serves() {
    let dir = tempfile::tempdir().expect("dir");
    let app = spawn_app_in(dir.path()).await;
    app.create_category("electronics").await;
    let a = app
        .create_product(json!({"sku": "POISON-A", "stock": 10}))
        .await
        .id;
    let b = app
        .create_product(json!({"sku": "FINE-B", "stock": 10}))
        .await
        .id;
    let poisoned = sold(&app, &a, 1).await;
    let behind = sold(&app, &a, 2).await;
    let fine = sold(&app, &b, 3).await;
    app.stop().await;
    poison(dir.path(), poisoned).await;

    // The embedded views are rebuilt from the log at start: the catalog starts all the same.
    let app = spawn_app_in(dir.path()).await;
    assert_eq!(app.fetch("/readyz").await.status(), 200);
    let product_a = app
        .read_json_after(&format!("/api/products/{a}"), fine)
        .await;
    assert_eq!(
        (product_a["sales"].as_i64(), product_a["version"].as_u64()),
        (Some(0), Some(1))
    );
    let product_b = app.fetch_json(&format!("/api/products/{b}")).await;
    assert_eq!(product_b["sales"], 3);

    // The in-memory views are rebuilt from the log and meet the rewritten event; the search
    // index on disk had applied it before and goes on from its checkpoint.
    let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
    let parked_of = |view: &str| {
        status["items"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["name"] == view))
            .map(|item| item["parked"].clone())
    };
    assert_eq!(parked_of("search"), Some(json!(0)), "{status}");
    for view in ["read-model", "analytics"] {
        let item = status["items"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["name"] == view))
            .unwrap_or_else(|| panic!("{view} in {status}"));
        assert_eq!(item["parked"], 2, "{view}: {item}");
        let records = parked(&app, view).await;
        assert_eq!(state_at(&records, poisoned), "failed", "{records:?}");
        assert_eq!(state_at(&records, behind), "waiting", "{records:?}");
    }
    // Only the failed event is an operator's to decide; nothing is at a made-up position.
    let path = |view: &str, position: u64, action: &str| {
        format!("/api/admin/projections/{view}/parked/{position}/{action}")
    };
    assert_problem(
        app.admin_send(Method::POST, &path("read-model", behind, "skip"))
            .await,
        404,
    )
    .await;
    assert_problem(
        app.admin_send(Method::POST, &path("read-model", 999, "retry"))
            .await,
        404,
    )
    .await;

    for view in ["read-model", "analytics"] {
        let response = app
            .admin_send(Method::POST, &path(view, poisoned, "skip"))
            .await;
        assert_eq!(response.status(), 202, "{view}");
    }
    // The sale behind the skipped one applies: A's version moves past the skipped event.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let product = app.fetch_json(&format!("/api/products/{a}")).await;
        if product["version"] == 3 {
            assert_eq!(
                product["sales"], 2,
                "only the sale behind the skipped one: {product}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "A never moved on: {product}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = parked(&app, "read-model").await;
    assert_eq!(state_at(&records, poisoned), "skipped");
    let skipped = records
        .iter()
        .find(|r| r["position"] == poisoned)
        .expect("record");
    assert!(
        skipped["decided_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("admin ")),
        "{skipped}"
    );
    assert_eq!(state_at(&records, behind), "applied");
    // The analytics view decides on its own records, as each view does.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = parked(&app, "analytics").await;
        if state_at(&records, poisoned) == "skipped" && state_at(&records, behind) == "applied" {
            break;
        }
        assert!(Instant::now() < deadline, "analytics: {records:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
    assert!(
        status["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|item| item["parked"] == 0)),
        "{status}"
    );
}
