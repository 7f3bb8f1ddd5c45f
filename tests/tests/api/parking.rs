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

/// Appends a sale of `id` at `version` behind the command API's back, with its outbox row (so
/// the relay publishes it on the bus like any other); `data` is its body.
async fn append_sale(url: &str, id: uuid::Uuid, version: u64, data: Value) -> u64 {
    use events::store::{EventStore, StreamAppend};
    let database = event_store::postgres::PostgresDatabase::connect(url, 2)
        .await
        .expect("connect");
    let mut event = events::NewEvent::from_event(
        id,
        version,
        &events::CatalogEvent::SaleRecorded(events::SaleRecorded { quantity: 1 }),
        chrono::Utc::now(),
        events::EventMetadata::default(),
    );
    event.data = data;
    let appended = database
        .event_store(true)
        .append(vec![StreamAppend {
            aggregate_id: id,
            expected_version: version - 1,
            events: vec![event],
            unique_claims: Vec::new(),
            snapshot: None,
        }])
        .await
        .expect("append");
    appended[0].position
}

/// `path` read with `X-Min-Position: position`, retried while the views are not there yet
/// (503: a view spends 1.5 s on the poison before it parks it), for at most 30 s.
async fn read_when_there(app: &TestApp, path: &str, position: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.read_after(path, position).await;
        if response.status() == 200 {
            return json_body(response).await;
        }
        assert_eq!(response.status(), 503, "{path}");
        assert!(Instant::now() < deadline, "{path} never reached {position}");
    }
}

/// Waits (at most 30 s) until `check` holds of `GET /api/admin/projections`.
async fn until_status(app: &TestApp, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
        if check(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn parked_count(status: &Value, view: &str) -> Option<u64> {
    status["items"]
        .as_array()?
        .iter()
        .find(|item| item["name"] == view)?["parked"]
        .as_u64()
}

/// On a real bus: the poison event arrives by the bus, each view parks it and the sale behind
/// it, the deliveries are acknowledged (what follows on the same partition or group arrives),
/// and a skip releases the product in PostgreSQL and Redis alike.
async fn parked_on_the_bus(database: &testkit::TestDatabase, bus: String) {
    let engines = catalog::config::EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 8,
        bus_url: Some(bus),
        redis_url: Some(testkit::redis_url()),
        ..catalog::config::EngineConfig::default()
    };
    let app = catalog_tests::spawn_distributed(engines).await;
    app.create_category("electronics").await;
    let a = app.create_product(json!({"stock": 10})).await;
    let b = app.create_product(json!({"stock": 10})).await;
    let id_a: uuid::Uuid = a.id.parse().expect("uuid");
    let poisoned = append_sale(&database.url, id_a, 2, json!({"quantity": "many"})).await;
    let behind = append_sale(&database.url, id_a, 3, json!({"quantity": 2})).await;
    let fine = sold(&app, &b.id, 3).await;
    // B is whole in every view the product page reads, A is as it was before the poison.
    let product_b = read_when_there(&app, &format!("/api/products/{}", b.id), fine).await;
    assert_eq!(product_b["sales"], 3);
    let views = ["read-model", "redis"];
    until_status(
        &app,
        "both views park the sale and the one behind it",
        |status| {
            views
                .iter()
                .all(|view| parked_count(status, view) == Some(2))
        },
    )
    .await;
    let product_a = app.fetch_json(&format!("/api/products/{}", a.id)).await;
    assert_eq!(
        (product_a["sales"].as_i64(), product_a["version"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(app.fetch("/readyz").await.status(), 200);

    for view in views {
        let path = format!("/api/admin/projections/{view}/parked/{poisoned}/skip");
        assert_eq!(
            app.admin_send(Method::POST, &path).await.status(),
            202,
            "{view}"
        );
    }
    until_status(&app, "both views release A", |status| {
        views
            .iter()
            .all(|view| parked_count(status, view) == Some(0))
    })
    .await;
    let product_a = read_when_there(&app, &format!("/api/products/{}", a.id), behind).await;
    assert_eq!(
        (product_a["sales"].as_i64(), product_a["version"].as_u64()),
        (Some(2), Some(3))
    );
    for view in views {
        let records = parked(&app, view).await;
        assert_eq!(state_at(&records, poisoned), "skipped", "{view}");
        assert_eq!(state_at(&records, behind), "applied", "{view}");
    }
    // Stopped while the bus is still there (a Kafka consumer closing against a mock cluster
    // already dropped can wait a long time).
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_on_kafka_is_parked_and_the_stream_goes_on() {
    let database = testkit::TestDatabase::create().await;
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    mock.create_topic("catalog.product-events", 3, 1)
        .expect("topic");
    mock.create_topic("catalog.analytics-events", 2, 1)
        .expect("analytics topic");
    let bus = format!(
        "kafka://{}?partitions=3&replication=1",
        mock.bootstrap_servers()
    );
    tokio::time::timeout(Duration::from_secs(180), parked_on_the_bus(&database, bus))
        .await
        .expect("the test did not finish within 3 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_on_sns_sqs_is_parked_and_the_stream_goes_on() {
    let database = testkit::TestDatabase::create().await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let bus = format!(
        "sns+sqs://{}?topic=events-{tag}&analytics_topic=analytics-{tag}&queue_prefix=p{tag}-&wait_seconds=1",
        testkit::moto_endpoint()
    );
    let configured = bus::ConfiguredBus::connect(&bus).await.expect("bus");
    configured
        .setup(&catalog::roles::PROJECTORS)
        .await
        .expect("setup");
    configured
        .setup_analytics(catalog::roles::ANALYTICS_EVENTS)
        .await
        .expect("analytics setup");
    tokio::time::timeout(Duration::from_secs(180), parked_on_the_bus(&database, bus))
        .await
        .expect("the test did not finish within 3 minutes");
}
