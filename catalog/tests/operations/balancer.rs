//! The balancer failover test: HAProxy with the repository's configuration in front of a
//! command, a projectors and two query processes. Under a steady load of shopper reads
//! through the balancer, one query process is killed (SIGKILL, requests in flight) and
//! started again, then the other is stopped gracefully (SIGTERM: it reports `draining` and
//! keeps serving until the balancer took it out) and started again. No shopper sees an
//! error: what met the dying process is retried by the balancer on the other one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::{seed_products, wait_for_position, Haproxy, Stack};

const SHOPPERS: usize = 16;

/// What the shoppers saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

/// One shopper: product pages and the category's listing through the balancer until `stop`.
async fn shopper(client: Client, base: String, ids: Arc<Vec<Uuid>>, stop: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        let url = match turn % 4 {
            0 => format!("{base}/api/products?category=tools&limit=10"),
            _ => format!("{base}/api/products/{}", ids[turn % ids.len()]),
        };
        let started = Instant::now();
        match client.get(&url).send().await {
            Ok(response) if response.status() == 200 => match response.bytes().await {
                Ok(_) => seen.latencies.push(started.elapsed()),
                Err(error) => seen.errors.push(format!("{url}: body: {error}")),
            },
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                seen.errors.push(format!("{url}: {status} {body}"));
            }
            Err(error) => seen.errors.push(format!("{url}: {error}")),
        }
    }
    seen
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_process_killed_or_stopped_under_load_costs_no_shopper_an_error() {
    let _alone = crate::cluster::one_at_a_time().await;
    let stack = Stack::new().await;
    let mut cluster = Cluster::new(
        stack.environment.clone(),
        &[
            ("command", "command"),
            ("projectors", "projectors"),
            ("query1", "query"),
            ("query2", "query"),
        ],
    );
    cluster.start_all();
    let seeded = seed_products(&cluster, 20).await;
    let (client, ids) = (seeded.client, seeded.ids);
    for name in ["query1", "query2"] {
        let url = cluster.url(name, "/api/categories");
        wait_for_position(&client, &url, seeded.position).await;
    }
    let haproxy = Haproxy::start(&cluster, ["command", "command"], ["query1", "query2"]);
    for server in ["query1", "query2"] {
        haproxy
            .wait_for_status(&client, "query", server, "UP")
            .await;
    }
    // The balancer routes by method and path: a read to a query process, a login to the
    // command process (only it serves /api/auth).
    let ready = client
        .get(haproxy.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200, "the balancer's own /readyz");
    let login = crate::common::login(
        &client,
        &haproxy.url("/api/auth/login"),
        crate::ADMIN_EMAIL,
        crate::ADMIN_PASSWORD,
    )
    .await;
    assert!(!login.is_empty());
    // A write without a token: the command process answers 401 (a query process would not
    // know the route: 405). Reads, search and the analysts' log: a query process answers.
    let routes = [
        (reqwest::Method::POST, "/api/categories", 401),
        (
            reqwest::Method::PUT,
            "/api/products/00000000-0000-0000-0000-000000000000/price",
            401,
        ),
        (
            reqwest::Method::DELETE,
            "/api/products/00000000-0000-0000-0000-000000000000",
            401,
        ),
        (reqwest::Method::GET, "/api/admin/projections", 401),
        (reqwest::Method::GET, "/api/categories", 200),
        (reqwest::Method::HEAD, "/api/products?category=tools", 200),
        (reqwest::Method::GET, "/api/search?q=hammer", 200),
        (reqwest::Method::GET, "/api/events?after=0&limit=1", 401),
        (reqwest::Method::GET, "/api/openapi.json", 200),
        (reqwest::Method::GET, "/metrics", 404),
    ];
    for (method, path, status) in routes {
        let response = client
            .request(method.clone(), haproxy.url(path))
            .send()
            .await
            .expect("through the balancer");
        assert_eq!(response.status(), status, "{method} {path}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ids = Arc::new(ids);
    let shoppers: Vec<_> = (0..SHOPPERS)
        .map(|_| {
            let client = Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            tokio::spawn(shopper(client, haproxy.url(""), ids.clone(), stop.clone()))
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 1. SIGKILL, requests in flight.
    cluster.kill("query1");
    let killed_down = haproxy
        .wait_for_status(&client, "query", "query1", "DOWN")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.spawn("query1");
    cluster.wait_ready("query1");
    let back_up = haproxy
        .wait_for_status(&client, "query", "query1", "UP")
        .await;
    let served_before: u64 = haproxy
        .stat(&client, "query", "query1", "stot")
        .await
        .parse()
        .expect("stot");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let served_after: u64 = haproxy
        .stat(&client, "query", "query1", "stot")
        .await
        .parse()
        .expect("stot");
    assert!(
        served_after > served_before + 10,
        "the restarted query1 got no traffic back ({served_before} → {served_after})"
    );

    // 2. SIGTERM: the process answers /readyz 503 `draining` while it still serves; the
    // balancer takes it out before it closes its listener.
    let terminated = Instant::now();
    cluster.terminate("query2");
    let drained_down = haproxy
        .wait_for_status(&client, "query", "query2", "DOWN")
        .await;
    let mut exited_after = None;
    while exited_after.is_none() {
        if cluster.has_exited("query2") {
            exited_after = Some(terminated.elapsed());
        }
        assert!(
            terminated.elapsed() < Duration::from_secs(40),
            "query2 did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exited_after = exited_after.unwrap_or_default();
    assert!(
        drained_down < exited_after,
        "the balancer took query2 out after {drained_down:?}, but it exited after {exited_after:?}"
    );
    cluster.spawn("query2");
    cluster.wait_ready("query2");
    haproxy
        .wait_for_status(&client, "query", "query2", "UP")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut all = Seen::default();
    for shopper in shoppers {
        let seen = shopper.await.expect("shopper");
        all.latencies.extend(seen.latencies);
        all.errors.extend(seen.errors);
    }
    all.latencies.sort();
    let retries = haproxy.stat(&client, "query", "BACKEND", "wretr").await;
    let redispatches = haproxy.stat(&client, "query", "BACKEND", "wredis").await;
    eprintln!(
        "failover: {} reads in {:.1} s ({:.0}/s) by {SHOPPERS} shoppers, {} errors; p50 {:?}, \
         p99 {:?}, max {:?}; balancer retries {retries}, redispatches {redispatches}; \
         SIGKILLed query1 marked down after {killed_down:?}, up again {back_up:?} after it \
         was ready; SIGTERMed query2 marked down after {drained_down:?}, exited after \
         {exited_after:?}",
        all.latencies.len(),
        elapsed.as_secs_f64(),
        all.latencies.len() as f64 / elapsed.as_secs_f64(),
        all.errors.len(),
        percentile(&all.latencies, 0.5),
        percentile(&all.latencies, 0.99),
        all.latencies.last().copied().unwrap_or_default(),
    );
    assert!(
        all.errors.is_empty(),
        "{} shopper errors, the first: {:?}\nhaproxy:\n{}",
        all.errors.len(),
        &all.errors[..all.errors.len().min(5)],
        haproxy.log()
    );
    assert!(
        all.latencies.len() > 1000,
        "too little load to mean anything"
    );
}
