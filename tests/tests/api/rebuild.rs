//! A view rebuilt blue/green while shoppers read and an admin writes: every read answers 200,
//! no answer is older than one the reader already saw of the same resource (its `X-Position`,
//! each product's version), the generation moves on, and the rebuilt view holds every write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_tests::{assert_problem, json_body, position_header, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

const PRODUCTS: usize = 40;

fn view_status(status: &Value, view: &str) -> Value {
    status["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["name"] == view))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Reads product pages and a listing until `stop`, checking each answer against the ones
/// before; returns how many reads it made.
async fn read_continuously(
    client: reqwest::Client,
    base: String,
    ids: Vec<String>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut reads = 0u64;
    // Per resource: a listing cached at an earlier position may answer below a product page
    // read after it (each answer says the position it reflects), but no resource goes back.
    let mut seen_positions: HashMap<String, u64> = HashMap::new();
    let mut versions: HashMap<String, u64> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let id = &ids[reads as usize % ids.len()];
        let path = if reads % 5 == 4 {
            "/api/products?category=electronics&sort=price_asc&limit=10".to_owned()
        } else if reads % 7 == 3 {
            "/api/search?q=headphones&limit=10".to_owned()
        } else {
            format!("/api/products/{id}")
        };
        let response = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 200, "{path} during the rebuild");
        let position = position_header(&response);
        let seen = seen_positions.insert(path.clone(), position).unwrap_or(0);
        assert!(
            position >= seen,
            "{path} answered position {position} after {seen}"
        );
        let body = json_body(response).await;
        if let Some(version) = body["version"].as_u64() {
            let before = versions.insert(id.clone(), version).unwrap_or(0);
            assert!(
                version >= before,
                "{id} went back from version {before} to {version}"
            );
        }
        reads += 1;
    }
    reads
}

/// Creates the products, starts a reader and a writer, asks for a rebuild of `view` and waits
/// for the next generation; then checks the rebuilt view holds the last price of each product.
async fn rebuilt_while_serving(app: &TestApp, view: &str) -> Vec<String> {
    app.create_category("electronics").await;
    let mut ids = Vec::new();
    for n in 0..PRODUCTS {
        ids.push(
            app.create_product(json!({"sku": format!("RB-{n}")}))
                .await
                .id,
        );
    }
    let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
    let before = view_status(&status, view)["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("{view} has a generation: {status}"));

    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_continuously(
        app.client.clone(),
        app.url(""),
        ids.clone(),
        stop.clone(),
    ));
    let rebuilt = app
        .admin_send(
            Method::POST,
            &format!("/api/admin/projections/{view}/rebuild"),
        )
        .await;
    assert_eq!(rebuilt.status(), 202);
    // Writes go on through the rebuild and the switch.
    let written = Arc::new(AtomicU64::new(0));
    let mut last_price: HashMap<String, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let last_position = loop {
        let n = written.fetch_add(1, Ordering::SeqCst) as usize;
        let id = &ids[n % ids.len()];
        let price = 1000 + n as i64;
        let response = app.change_price(id, price, "EUR").await;
        assert_eq!(response.status(), 200);
        let position = json_body(response).await["position"]
            .as_u64()
            .expect("position");
        last_price.insert(id.clone(), price);
        let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
        let item = view_status(&status, view);
        if item["generation"].as_u64() > Some(before) && n >= 20 {
            assert!(item["rebuild"].is_null(), "{item}");
            break position;
        }
        assert!(Instant::now() < deadline, "no switch within 60 s: {item}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let reads = reader.await.expect("the reader never failed");
    assert!(reads > 0);
    for (id, price) in &last_price {
        let product = app
            .read_json_after(&format!("/api/products/{id}"), last_position)
            .await;
        assert_eq!(product["price_cents"], *price, "{id} after the switch");
    }
    let page = app
        .read_page_after(
            "/api/products?category=electronics&limit=100",
            last_position,
        )
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(PRODUCTS));
    let found = app
        .read_page_after("/api/search?q=headphones&limit=100", last_position)
        .await;
    let hits = found["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(hits.len(), PRODUCTS, "{found}");
    for hit in hits {
        let id = hit["id"].as_str().unwrap_or_default();
        if let Some(price) = last_price.get(id) {
            assert_eq!(hit["price_cents"], *price, "{id} found after the switch");
        }
    }
    let categories = app.fetch_json("/api/categories").await;
    assert!(
        categories.to_string().contains("electronics"),
        "{categories}"
    );
    ids
}

#[tokio::test]
async fn the_embedded_read_model_is_rebuilt_while_shoppers_read_and_an_admin_writes() {
    let app = catalog_tests::spawn_app_alone().await;
    rebuilt_while_serving(&app, "read-model").await;
    // A view that is not there is a 404, not a request nobody takes.
    assert_problem(
        app.admin_send(Method::POST, "/api/admin/projections/nothing/rebuild")
            .await,
        404,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_embedded_search_index_is_rebuilt_while_shoppers_search_and_an_admin_writes() {
    let app = catalog_tests::spawn_app_alone().await;
    rebuilt_while_serving(&app, "search").await;
    app.stop().await;
}

#[tokio::test]
async fn the_postgres_read_model_is_rebuilt_while_shoppers_read_and_an_admin_writes() {
    let database = testkit::TestDatabase::create().await;
    let engines = catalog::config::EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 8,
        ..catalog::config::EngineConfig::default()
    };
    let app = catalog_tests::spawn_distributed_alone(engines).await;
    rebuilt_while_serving(&app, "read-model").await;
    let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
    let generation: i64 =
        sqlx::query_scalar("SELECT generation FROM rm_generations WHERE view = 'read-model'")
            .fetch_one(&pool)
            .await
            .expect("the switch recorded the generation");
    assert_eq!(generation, 2);
    // Every product's row counts each of its events once (no event applied twice across the
    // bulk load, the tail and the live projector).
    let doubled: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm_products WHERE events_applied <> version")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(doubled, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_redis_views_are_rebuilt_while_shoppers_read_and_an_admin_writes() {
    let database = testkit::TestDatabase::create().await;
    let redis_url = testkit::redis_url();
    let engines = catalog::config::EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 8,
        redis_url: Some(redis_url.clone()),
        ..catalog::config::EngineConfig::default()
    };
    let app = catalog_tests::spawn_distributed_alone(engines).await;
    let ids = rebuilt_while_serving(&app, "redis").await;
    // Redis points at generation 2, which holds every product; generation 1's keys go once
    // the grace period is over.
    let config = redis_client::RedisConfig::from_url(&redis_url).expect("a Redis URL");
    let client = redis::Client::open(config.nodes[0].as_str()).expect("a client");
    let connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let count = |names: Vec<String>| {
        let mut connection = connection.clone();
        let keys: Vec<String> = names.iter().map(|name| config.key(name)).collect();
        async move {
            let found: u64 = redis::cmd("EXISTS")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .expect("EXISTS");
            found as usize
        }
    };
    let pointer: Option<u64> = redis::cmd("GET")
        .arg(config.key("generation"))
        .query_async(&mut connection.clone())
        .await
        .expect("GET");
    assert_eq!(pointer, Some(2));
    let keys_of = |generation: &str| -> Vec<String> {
        ids.iter()
            .map(|id| format!("{generation}p:{id}"))
            .chain([
                format!("{generation}ix:all:newest"),
                format!("{generation}counts"),
            ])
            .collect()
    };
    assert_eq!(count(keys_of("g2:")).await, PRODUCTS + 2);
    let deadline = Instant::now() + projectors::generations::GRACE + Duration::from_secs(20);
    while count(keys_of("")).await > 0 {
        assert!(
            Instant::now() < deadline,
            "generation 1 is still there after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(keys_of("g2:")).await, PRODUCTS + 2);
    app.stop().await;
}

/// Analytics rebuilt: the sales are derived again from the store, the shoppers' views (which
/// the store does not keep) are carried over to the new generation.
async fn analytics_rebuilt_keeping_the_views(app: &TestApp) {
    app.create_category("electronics").await;
    let created = app
        .create_product(json!({"sku": "AN-1", "stock": 50}))
        .await;
    let id = created.id;
    for _ in 0..3 {
        let page = app
            .read_after(&format!("/api/products/{id}"), created.position)
            .await;
        assert_eq!(page.status(), 200);
    }
    assert_eq!(app.sell(&id, 4).await.status(), 200);
    let counted = |views: u64, units: u64| {
        move |_: reqwest::StatusCode, trending: &Value| {
            trending["by_views"][0]["views"] == views
                && trending["by_sales"][0]["units_sold"] == units
        }
    };
    let token = app.admin_token.clone();
    let path = "/api/analytics/trending?window=1h";
    app.poll_json(&token, path, 50, counted(3, 4)).await;
    let generation = |status: &Value| view_status(status, "analytics")["generation"].as_u64();
    let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
    let before = generation(&status).expect("analytics has a generation");
    let rebuilt = app
        .admin_send(Method::POST, "/api/admin/projections/analytics/rebuild")
        .await;
    assert_eq!(rebuilt.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = json_body(app.admin_send(Method::GET, "/api/admin/projections").await).await;
        if generation(&status) > Some(before) {
            break;
        }
        assert!(Instant::now() < deadline, "no switch within 30 s: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let trending = app.poll_json(&token, path, 1, |_, _| true).await;
    assert_eq!(trending["by_views"][0]["views"], 3, "{trending}");
    assert_eq!(trending["by_sales"][0]["units_sold"], 4, "{trending}");
    // The new generation follows the stream: one more sale counts once.
    assert_eq!(app.sell(&id, 1).await.status(), 200);
    app.poll_json(&token, path, 50, counted(3, 5)).await;
}

#[tokio::test]
async fn the_embedded_analytics_are_rebuilt_and_keep_the_shoppers_views() {
    let app = catalog_tests::spawn_app_alone().await;
    analytics_rebuilt_keeping_the_views(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn the_redis_analytics_are_rebuilt_and_keep_the_shoppers_views() {
    let database = testkit::TestDatabase::create().await;
    let engines = catalog::config::EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 8,
        redis_url: Some(testkit::redis_url()),
        ..catalog::config::EngineConfig::default()
    };
    let app = catalog_tests::spawn_distributed_alone(engines).await;
    analytics_rebuilt_keeping_the_views(&app).await;
    app.stop().await;
}
