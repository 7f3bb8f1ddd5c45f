//! The distributed analytics view: two catalog processes' worth of roles on one PostgreSQL,
//! bus (Kafka on librdkafka's mock cluster, or SNS/SQS on moto_server) and Redis. Shoppers
//! served by one query side show up in the other's `/api/analytics/*`: captured onto the
//! analytics stream, counted into the Redis view by the projectors role, read by every
//! replica.

use std::time::Duration;

use catalog::config::EngineConfig;
use catalog_tests::{spawn_distributed, TestApp, USER_PASSWORD};
use serde_json::{json, Value};
use testkit::TestDatabase;

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let (status, body) = app.get_json(path, token).await;
    assert_eq!(status, 200, "{path}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_of_one_replica_show_up_in_the_analytics_of_another_on_kafka() {
    let database = TestDatabase::create().await;
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    mock.create_topic("catalog.product-events", 3, 1)
        .expect("topic");
    mock.create_topic("catalog.analytics-events", 2, 1)
        .expect("analytics topic");
    let bus = format!(
        "kafka://{}?partitions=3&replication=1",
        mock.bootstrap_servers()
    );
    within_three_minutes(two_replicas_share_one_view(&database, bus)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_of_one_replica_show_up_in_the_analytics_of_another_on_sns_sqs() {
    let database = TestDatabase::create().await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let bus = format!(
        "sns+sqs://{}?topic=events-{tag}&analytics_topic=analytics-{tag}&queue_prefix=s{tag}-&wait_seconds=1",
        testkit::moto_endpoint()
    );
    // What `catalog bus setup` makes.
    let configured = bus::ConfiguredBus::connect(&bus).await.expect("bus");
    configured
        .setup(&catalog::roles::PROJECTORS)
        .await
        .expect("setup");
    configured
        .setup_analytics(catalog::roles::ANALYTICS_EVENTS)
        .await
        .expect("analytics setup");
    within_three_minutes(two_replicas_share_one_view(&database, bus)).await;
}

/// Fails the test with a clear line instead of leaving CI to its time limit if anything
/// hangs (a request has no timeout of its own).
async fn within_three_minutes(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(180), test)
        .await
        .expect("the test did not finish within 3 minutes");
}

async fn two_replicas_share_one_view(database: &TestDatabase, bus: String) {
    let engines = EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 8,
        bus_url: Some(bus),
        redis_url: Some(testkit::redis_url()),
        ..EngineConfig::default()
    };
    let one = spawn_distributed(engines.clone()).await;
    let other = spawn_distributed(engines).await;
    let analyst = other.user_token("analyst@example.com", "analyst").await;

    one.create_category("kitchen").await;
    let kettle = one
        .create_product(json!({"name": "Electric Kettle", "category": "kitchen"}))
        .await;
    let id = kettle.id;
    let sale = one.sell(&id, 4).await;
    assert_eq!(sale.status(), 200);
    let position = kettle.position;
    // The projectors first join their consumer groups: wait until the product is served (a
    // 503 "not yet" is not a page view).
    let mut served = 0;
    for _ in 0..60 {
        let page = one
            .read_after(&format!("/api/products/{id}"), position)
            .await;
        if page.status() == 200 {
            served += 1;
            if served == 3 {
                break;
            }
        } else {
            assert_eq!(page.status(), 503);
        }
    }
    assert_eq!(served, 3, "the product was not served within the retries");
    for query in ["kettle", "chocolate teapot"] {
        let response = one
            .read_after(&format!("/api/search?q={query}"), position)
            .await;
        assert_eq!(response.status(), 200);
    }

    // Asynchronous all the way (capture queue, Kafka, the projectors role): poll, for up to a
    // minute (in the one api binary it shares two cores with the other tests; 30 s ran out
    // once there, with the view still filling).
    //
    // Views and searches arrive at least once (projectors/src/analytics/redis.rs): a batch
    // redelivered when the two replicas' projectors rebalance their consumer group counts
    // again (seen once: 5 views of 3 served). So a count is at least what was served and at
    // most twice it; sales are exact (applied once per aggregate version).
    let at_least_once = |count: &Value, served: u64| {
        count
            .as_u64()
            .is_some_and(|count| (served..=2 * served).contains(&count))
    };
    let trending = other
        .poll_json(
            &analyst,
            "/api/analytics/trending?window=1h",
            600,
            |status, trending| {
                assert_eq!(status, 200, "trending");
                trending["by_views"][0]["views"].as_u64() >= Some(3)
                    && trending["by_sales"][0]["units_sold"] == 4
            },
        )
        .await;
    for ranking in ["by_views", "by_sales"] {
        let rows = trending[ranking].as_array().expect("a ranking");
        assert_eq!(rows.len(), 1, "{trending}");
        assert_eq!(rows[0]["product_id"], json!(id), "{trending}");
        assert_eq!(rows[0]["category"], "kitchen", "{trending}");
        assert_eq!(rows[0]["units_sold"], 4, "{trending}");
        assert!(at_least_once(&rows[0]["views"], 3), "{trending}");
    }
    // The same view answers on both replicas, filtered by category too (each test process
    // signs with a key of its own: log in there).
    let analyst_on_one = one.login("analyst@example.com", USER_PASSWORD).await;
    let kitchen = get_json(
        &one,
        "/api/analytics/trending?window=24h&category=kitchen",
        &analyst_on_one,
    )
    .await;
    assert_eq!(kitchen["by_views"], trending["by_views"], "{kitchen}");
    let searches = other
        .poll_json(
            &analyst,
            "/api/analytics/searches?window=1h",
            100,
            |status, searches| {
                assert_eq!(status, 200, "searches");
                searches["top"].as_array().map(Vec::len) == Some(2)
            },
        )
        .await;
    let zero = searches["zero_results"].as_array().expect("zero_results");
    assert_eq!(zero.len(), 1, "{searches}");
    assert_eq!(zero[0]["query"], "chocolate teapot", "{searches}");
    assert!(at_least_once(&zero[0]["count"], 1), "{searches}");
    let mut top: Vec<&str> = searches["top"]
        .as_array()
        .expect("top")
        .iter()
        .map(|row| {
            assert!(at_least_once(&row["count"], 1), "{searches}");
            row["query"].as_str().expect("a query")
        })
        .collect();
    top.sort_unstable();
    assert_eq!(top, ["chocolate teapot", "kettle"], "{searches}");
    one.stop().await;
    other.stop().await;
}
