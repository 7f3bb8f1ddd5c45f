//! The distributed read path against real engines: PostgreSQL primary and its streaming
//! replica (127.0.0.1:5433, started by the test script), Redis servers the tests start and
//! stop themselves, and a TCP proxy in front of the replica to take it away mid-test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::config::EngineConfig;
use catalog_tests::{json_body, spawn_distributed, spawn_distributed_alone, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{RedisServer, TcpProxy, TestDatabase};

fn engines(database: &TestDatabase) -> EngineConfig {
    EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 8,
        ..EngineConfig::default()
    }
}

/// The replica URL of `database` through a proxy the test can cut.
async fn proxied_replica(database: &TestDatabase) -> (String, TcpProxy) {
    let url = testkit::replica_url(database).await;
    let replica_port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|host| host.rsplit(':').next())
        .and_then(|port| port.parse::<u16>().ok())
        .expect("the replica's port");
    let proxy = TcpProxy::start(([127, 0, 0, 1], replica_port).into()).await;
    (
        url.replace(&format!(":{replica_port}/"), &format!(":{}/", proxy.port)),
        proxy,
    )
}

async fn seed(app: &TestApp, products: usize) -> (Vec<String>, u64) {
    app.create_category("electronics").await;
    let mut ids = Vec::new();
    let mut last = 0;
    for index in 0..products {
        let created = app
            .create_product(json!({"name": format!("Product {index}"), "price_cents": 100 + index}))
            .await;
        ids.push(created.id);
        last = created.position;
    }
    (ids, last)
}

async fn wait_until_read(app: &TestApp, position: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.read_after("/api/categories", position).await;
        if response.status() == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the views never reached {position}"
        );
    }
}

/// Redis hits so far on the app's /metrics.
async fn redis_hits(app: &TestApp) -> f64 {
    app.metric(
        "catalog_cache_requests_total{layer=\"redis\",result=\"hit\"}",
        "",
    )
    .await
}

#[tokio::test]
async fn reads_go_through_the_replica_and_a_write_reaches_a_query_it_answers() {
    let database = TestDatabase::create().await;
    let (replica, proxy) = proxied_replica(&database).await;
    let app = spawn_distributed(EngineConfig {
        database_read_url: Some(replica),
        ..engines(&database)
    })
    .await;
    let (ids, position) = seed(&app, 2).await;
    let response = app
        .read_after(&format!("/api/products/{}", ids[1]), position)
        .await;
    assert_eq!(response.status(), 200);
    let product = json_body(response).await;
    assert_eq!(product["name"], "Product 1");

    // Without the replica (the primary is still up) reads fail: they never go to the primary.
    proxy.cut().await;
    let started = Instant::now();
    let response = app.fetch("/api/products?sort=name&limit=5").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = app.fetch("/api/products?sort=name&limit=4").await;
        if response.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "reads never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn with_the_primary_as_fallback_a_replica_outage_does_not_show() {
    let database = TestDatabase::create().await;
    let (replica, proxy) = proxied_replica(&database).await;
    let app = spawn_distributed(EngineConfig {
        database_read_url: Some(replica),
        read_fallback_to_primary: true,
        ..engines(&database)
    })
    .await;
    let (ids, position) = seed(&app, 3).await;
    wait_until_read(&app, position).await;
    proxy.cut().await;
    for (index, id) in ids.iter().enumerate() {
        let response = app.fetch(&format!("/api/products/{id}")).await;
        assert_eq!(response.status(), 200, "product {index}");
    }
    let response = app.fetch("/api/products?sort=price_desc&limit=2").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn with_redis_stopped_mid_load_answers_come_from_the_replica_and_redis_serves_again_after() {
    let database = TestDatabase::create().await;
    let replica = testkit::replica_url(&database).await;
    let mut redis = RedisServer::start();
    // Alone: the Redis hit counter it watches is process-wide.
    let app = Arc::new(
        spawn_distributed_alone(EngineConfig {
            database_read_url: Some(replica),
            redis_url: Some(redis.url()),
            ..engines(&database)
        })
        .await,
    );
    let (ids, position) = seed(&app, 30).await;
    wait_until_read(&app, position).await;
    let ids = Arc::new(ids);

    let statuses = Arc::new(parking_lot::Mutex::new(Vec::<(Duration, u16, bool)>::new()));
    let started = Instant::now();
    let load = |seconds: u64| {
        let tasks: Vec<_> = (0..8)
            .map(|worker| {
                let app = app.clone();
                let ids = ids.clone();
                let statuses = statuses.clone();
                tokio::spawn(async move {
                    let mut turn = worker;
                    let until = Instant::now() + Duration::from_secs(seconds);
                    while Instant::now() < until {
                        turn += 1;
                        let path = match turn % 3 {
                            0 => format!("/api/products/{}", ids[turn % ids.len()]),
                            1 => format!(
                                "/api/products?category=electronics&limit={}",
                                1 + turn % 20
                            ),
                            _ => "/api/categories".to_owned(),
                        };
                        let response = app.fetch(&path).await;
                        let retry_after = response.headers().contains_key("retry-after");
                        statuses.lock().push((
                            started.elapsed(),
                            response.status().as_u16(),
                            retry_after,
                        ));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect::<Vec<_>>();
        async move {
            for task in tasks {
                task.await.expect("load task");
            }
        }
    };

    let running = tokio::spawn(load(8));
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.stop();
    let stopped_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.start_again();
    let restarted_at = started.elapsed();
    let redis_hits_at_restart = redis_hits(&app).await;
    running.await.expect("load");

    let statuses = statuses.lock().clone();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, status, retry_after) in &statuses {
        *by_status.entry(*status).or_default() += 1;
        assert!(
            *status == 200 || (*status == 503 && *retry_after),
            "status {status} (Retry-After: {retry_after})"
        );
    }
    let answered_while_down = statuses
        .iter()
        .filter(|(at, status, _)| *at > stopped_at && *at < restarted_at && *status == 200)
        .count();
    assert!(
        answered_while_down > 0,
        "no answers while Redis was down: {by_status:?}"
    );

    // Redis came back empty: the projector rebuilds it, and reads are served from it again
    // (once its circuit breaker lets a probe through, 30 s after it opened).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for id in ids.iter() {
            let _ = app.get(&format!("/api/products/{id}")).send().await;
        }
        let hits = redis_hits(&app).await;
        if hits > redis_hits_at_restart {
            break;
        }
        assert!(Instant::now() < deadline, "Redis never served reads again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("statuses during the load: {by_status:?}");
}

#[tokio::test]
async fn with_redis_and_the_replica_down_pages_read_before_are_served_stale_and_say_how_stale() {
    let database = TestDatabase::create().await;
    let (replica, proxy) = proxied_replica(&database).await;
    let mut redis = RedisServer::start();
    let app = spawn_distributed(EngineConfig {
        database_read_url: Some(replica),
        redis_url: Some(redis.url()),
        ..engines(&database)
    })
    .await;
    let (ids, position) = seed(&app, 3).await;
    wait_until_read(&app, position).await;
    let pages = [
        format!("/api/products/{}", ids[0]),
        "/api/products?category=electronics&sort=name".to_owned(),
        "/api/products/bestsellers".to_owned(),
    ];
    for page in &pages {
        let response = app.fetch(page).await;
        assert_eq!(response.status(), 200, "{page}");
        assert!(
            !response.headers().contains_key("x-stale-seconds"),
            "{page}"
        );
    }

    redis.stop();
    proxy.cut().await;
    // Past the 2 s an entry stays fresh once its invalidations are no longer watched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for page in &pages {
        let started = Instant::now();
        let response = app.fetch(page).await;
        assert_eq!(
            response.status(),
            200,
            "{page} is answered from what was cached"
        );
        let age: u64 = response.headers()["x-stale-seconds"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("whole seconds");
        assert!(age < 60, "{page}: {age} s");
        assert_eq!(response.headers()["cache-control"], "no-store", "{page}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{page}: no hang"
        );
    }
    let product = json_body(app.fetch(&pages[0]).await).await;
    assert_eq!(product["name"], "Product 0");
    // What was never read has nothing to fall back on.
    let never_read = app.fetch(&format!("/api/products/{}", ids[2])).await;
    assert_eq!(never_read.status(), StatusCode::SERVICE_UNAVAILABLE);
    proxy.restore();
}

#[tokio::test]
async fn a_cached_answer_reports_at_least_the_position_it_was_asked_for() {
    let database = TestDatabase::create().await;
    let replica = testkit::replica_url(&database).await;
    let app = spawn_distributed(EngineConfig {
        database_read_url: Some(replica),
        redis_url: Some(testkit::redis_url()),
        ..engines(&database)
    })
    .await;
    let (ids, position) = seed(&app, 2).await;
    wait_until_read(&app, position).await;
    for path in ["/api/categories", "/api/products/bestsellers"] {
        assert_eq!(app.fetch(path).await.status(), 200);
    }
    // A delivery changes no count: the cached category list stays valid, and says so.
    let delivered = json_body(
        catalog_tests::send(
            app.admin(
                reqwest::Method::POST,
                &format!("/api/products/{}/stock", ids[0]),
            )
            .json(&json!({"delta": 1, "reason": "delivery"})),
        )
        .await,
    )
    .await;
    let after = delivered["position"].as_u64().expect("position");
    let response = app.read_after("/api/categories", after).await;
    assert_eq!(response.status(), 200);
    let reported: u64 = response.headers()["x-position"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a position");
    assert!(
        reported >= after,
        "X-Position {reported} below X-Min-Position {after}"
    );
}
