//! Request coalescing: 1,000 concurrent requests for one product that no layer has cached make
//! exactly one query to the read replica. The app runs alone (`spawn_distributed_alone`): the
//! query counter is process-wide, and no other test's reads may land in it.

use std::time::Duration;

use catalog::config::EngineConfig;
use catalog_tests::spawn_distributed_alone_with;
use serde_json::json;
use testkit::TestDatabase;

async fn product_queries(app: &catalog_tests::TestApp) -> f64 {
    app.metric("catalog_read_model_queries_total", "query=\"product\"")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_misses_on_one_product_make_one_replica_query() {
    let database = TestDatabase::create().await;
    let replica = testkit::replica_url(&database).await;
    // The 1,000 clients stand for shoppers behind one balancer: all from 127.0.0.1, which
    // the per-address connection cap (512) and the read rate would otherwise turn away.
    let engines = EngineConfig {
        database_url: Some(database.url.clone()),
        database_read_url: Some(replica),
        database_pool_size: 8,
        ..EngineConfig::default()
    };
    let app = spawn_distributed_alone_with(engines, |config| {
        config.limits.connections.per_address = 0;
        config.limits.rates.reads = None;
    })
    .await;
    app.create_category("electronics").await;
    let product = app.create_product(json!({})).await;
    let id = product.id;
    // Wait until the replica's view has it, without reading the product itself.
    let response = app.read_after("/api/categories", product.position).await;
    assert_eq!(response.status(), 200);

    let before = product_queries(&app).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1_000)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = app.url(&format!("/api/products/{id}"));
    let requests: Vec<_> = (0..1_000)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move { client.get(&url).send().await.map(|r| r.status()) })
        })
        .collect();
    for request in requests {
        let status = request.await.expect("task").expect("request");
        assert_eq!(status, 200);
    }
    let after = product_queries(&app).await;
    assert_eq!(
        after - before,
        1.0,
        "replica queries for 1,000 concurrent misses"
    );
}
