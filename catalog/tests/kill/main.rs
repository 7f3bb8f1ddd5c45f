//! Kill tests: the three roles as three processes on PostgreSQL and a real bus, under a
//! stream of writes, with the command process (and its outbox relay) and the projector process
//! killed with SIGKILL at random moments and restarted. At the end every write that was
//! answered 2xx is in the query view with the right final state, and no view applied any
//! event twice.
//!
//! The writer is one client that knows exactly which writes took effect: each write carries
//! `If-Match` with the version it expects; when an answer is lost to a kill, it sends the same
//! write again, and a 412 then means the lost attempt committed.

mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod lossy_bus;
mod storm;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use testkit::TestDatabase;

use cluster::{Cluster, ADMIN_EMAIL, ADMIN_PASSWORD};
use uuid::Uuid;

/// What the test knows a product must look like.
#[derive(Debug, Clone, Default, PartialEq)]
struct Expected {
    version: u64,
    stock: i64,
    sales: i64,
    price_cents: i64,
}

async fn login(client: &Client, url: &str) -> String {
    common::login(client, url, ADMIN_EMAIL, ADMIN_PASSWORD).await
}

/// Sends one write with `If-Match` until it is answered; returns whether it took effect.
async fn write_until_answered(
    client: &Client,
    url: &str,
    token: &str,
    if_match: u64,
    body: &Value,
) -> bool {
    let mut answer_lost = false;
    for _ in 0..600 {
        let sent = client
            .request(
                if url.ends_with("/price") {
                    reqwest::Method::PUT
                } else {
                    reqwest::Method::POST
                },
                url,
            )
            .bearer_auth(token)
            .header("If-Match", format!("\"{if_match}\""))
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) if response.status() == StatusCode::PRECONDITION_FAILED => {
                // Only a lost answer to an earlier attempt of this very write moves the
                // version: one writer.
                assert!(answer_lost, "412 without a lost answer before it");
                return true;
            }
            Ok(response) if response.status() == StatusCode::CONFLICT => {
                assert!(!answer_lost, "409 after a lost answer: {url}");
                return false;
            }
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                answer_lost = true;
            }
            Ok(response) => panic!("unexpected {} for {url}", response.status()),
            Err(_) => answer_lost = true,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the command role never answered {url}");
}

/// Writes for `duration`, one every `pace` at most (moto, the local SNS/SQS, slows down
/// badly with a backlog of thousands; real SQS does not).
async fn run_kill_test(
    environment: Vec<(String, String)>,
    duration: Duration,
    pace: Duration,
    seed: u64,
) {
    let database_url = environment
        .iter()
        .find(|(name, _)| name == "DATABASE_URL")
        .map(|(_, url)| url.clone())
        .expect("DATABASE_URL");
    let mut cluster = Cluster::start(environment);
    let (client, token) = admin_with_tools(&cluster, 5).await;
    let mut expected: HashMap<Uuid, Expected> = HashMap::new();
    let mut ids = Vec::new();
    for index in 0..8 {
        let id = create_published(&client, &cluster, &token, &format!("KILL-{index}")).await;
        ids.push(id);
        expected.insert(
            id,
            Expected {
                version: 1,
                stock: 1000,
                sales: 0,
                price_cents: 1000,
            },
        );
    }

    let mut random = rand::rngs::StdRng::seed_from_u64(seed);
    let mut next_kill = Instant::now() + Duration::from_millis(random.gen_range(800..2000));
    let mut kills = Vec::new();
    let mut token = token;
    let started = Instant::now();
    let mut write = 0;
    while started.elapsed() < duration {
        write += 1;
        if Instant::now() >= next_kill {
            let victim = if kills.len() % 2 == 0 {
                "command"
            } else {
                "projectors"
            };
            cluster.kill(victim);
            tokio::time::sleep(Duration::from_millis(random.gen_range(100..600))).await;
            cluster.spawn(victim);
            kills.push(victim);
            next_kill = Instant::now() + Duration::from_millis(random.gen_range(1500..3500));
        }
        if write % 50 == 0 {
            token = login(&client, &cluster.url("command", "/api/auth/login")).await;
        }
        let id = ids[random.gen_range(0..ids.len())];
        let state = expected[&id].clone();
        let (path, body, next) = match random.gen_range(0..3) {
            0 => (
                "sales",
                json!({"quantity": 1}),
                Expected {
                    version: state.version + 1,
                    stock: state.stock - 1,
                    sales: state.sales + 1,
                    ..state.clone()
                },
            ),
            1 => {
                let price = random.gen_range(100..100_000);
                (
                    "price",
                    json!({"price_cents": price, "currency": "USD"}),
                    Expected {
                        version: state.version + 1,
                        price_cents: price,
                        ..state.clone()
                    },
                )
            }
            _ => {
                let delta = random.gen_range(1..5);
                (
                    "stock",
                    json!({"delta": delta, "reason": "delivery"}),
                    Expected {
                        version: state.version + 1,
                        stock: state.stock + delta,
                        ..state.clone()
                    },
                )
            }
        };
        let url = cluster.url("command", &format!("/api/products/{id}/{path}"));
        if write_until_answered(&client, &url, &token, state.version, &body).await {
            expected.insert(id, next);
        }
        tokio::time::sleep(pace).await;
    }
    assert!(
        kills.contains(&"command") && kills.contains(&"projectors"),
        "both roles were killed at least once: {kills:?}"
    );

    // Everything answered 2xx reaches the query view.
    wait_for_head(&client, &cluster, &database_url, Duration::from_secs(90)).await;
    for (id, wanted) in &expected {
        let product: Value = client
            .get(cluster.url("query", &format!("/api/products/{id}")))
            .send()
            .await
            .expect("read")
            .json()
            .await
            .expect("json");
        let seen = Expected {
            version: product["version"].as_u64().expect("version"),
            stock: product["stock"].as_i64().expect("stock"),
            sales: product["sales"].as_i64().expect("sales"),
            price_cents: product["price_cents"].as_i64().expect("price"),
        };
        assert_eq!(&seen, wanted, "product {id}");
    }
    let pool = sqlx::PgPool::connect(&database_url).await.expect("connect");
    assert_no_event_applied_twice(&pool).await;
    // The view can reach the head through the store before the relay (a restarted command
    // process waits up to a poll for the leader lock) has published the last rows: the outbox
    // must drain, shortly.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .expect("outbox");
        if outbox == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outbox still holds {outbox} rows after 30 s; command log:\n{}",
            cluster.log("command")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pool.close().await;
    eprintln!(
        "{write} writes, {} answered 2xx-effective, kills: {kills:?}",
        expected.values().map(|e| e.version - 1).sum::<u64>()
    );
}

/// A client (answers within `timeout_seconds`), the admin's token, and category `tools`.
async fn admin_with_tools(cluster: &Cluster, timeout_seconds: u64) -> (Client, String) {
    let client = Client::builder()
        .timeout(Duration::from_secs(timeout_seconds))
        .build()
        .expect("client");
    let token = login(&client, &cluster.url("command", "/api/auth/login")).await;
    let categories = cluster.url("command", "/api/categories");
    common::create_tools_category(&client, &categories, &token).await;
    (client, token)
}

/// Creates published product `sku` (price 1000 USD, stock 1000); its id.
async fn create_published(client: &Client, cluster: &Cluster, token: &str, sku: &str) -> Uuid {
    let response = client
        .post(cluster.url("command", "/api/products"))
        .bearer_auth(token)
        .json(&json!({
            "sku": sku, "name": format!("Product {sku}"),
            "category": "tools", "price_cents": 1000, "currency": "USD",
            "stock": 1000, "status": "published"
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    body["id"].as_str().expect("id").parse().expect("uuid")
}

/// No row of the PostgreSQL read model counts an event twice.
async fn assert_no_event_applied_twice(pool: &sqlx::PgPool) {
    let twice: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm_products WHERE events_applied <> version")
            .fetch_one(pool)
            .await
            .expect("count");
    assert_eq!(twice, 0, "a product view applied an event twice");
}

/// Waits until the query role reflects the store's head (`X-Min-Position`).
async fn wait_for_head(client: &Client, cluster: &Cluster, database_url: &str, within: Duration) {
    let head: i64 = {
        let pool = sqlx::PgPool::connect(database_url).await.expect("connect");
        let head = sqlx::query_scalar("SELECT position FROM event_head")
            .fetch_one(&pool)
            .await
            .expect("head");
        pool.close().await;
        head
    };
    let url = cluster.url("query", "/api/categories");
    let log = || format!("; projectors log:\n{}", cluster.log("projectors"));
    common::wait_for_position(client, &url, head as u64, within, log).await;
}

/// A topic and queues of their own on moto, set up with `catalog bus setup`: the bus URL and
/// the queues' name prefix.
fn sns_sqs_bus(name: &str) -> (String, String) {
    let tag = &Uuid::new_v4().simple().to_string()[..10];
    let prefix = format!("{}{tag}-", &name[..1]);
    let bus = format!(
        "sns+sqs://{}?region=us-east-1&topic={name}-{tag}&queue_prefix={prefix}&wait_seconds=1&visibility_seconds=5",
        testkit::moto_endpoint()
    );
    setup_bus(&bus);
    (bus, prefix)
}

/// `catalog bus setup` for `bus` (topics, queues, subscriptions).
fn setup_bus(bus: &str) {
    let setup = Command::new(env!("CARGO_BIN_EXE_catalog"))
        .args(["bus", "setup"])
        .env("CATALOG_BUS", bus)
        .output()
        .expect("bus setup");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
}

fn base_environment(database: &TestDatabase, bus: String) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".to_owned(), database.url.clone()),
        ("CATALOG_BUS".to_owned(), bus),
        ("CATALOG_DATABASE_POOL_SIZE".to_owned(), "6".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_command_and_projector_processes_loses_no_acknowledged_write_on_kafka() {
    let _alone = crate::cluster::one_at_a_time().await;
    let database = TestDatabase::create().await;
    let mock = rdkafka::mocking::MockCluster::new(3).expect("mock cluster");
    mock.create_topic("catalog.product-events", 3, 3)
        .expect("topic");
    let bus = format!(
        "kafka://{}?partitions=3&replication=3",
        mock.bootstrap_servers()
    );
    run_kill_test(
        base_environment(&database, bus),
        Duration::from_secs(30),
        Duration::ZERO,
        7,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_command_and_projector_processes_loses_no_acknowledged_write_on_sns_sqs() {
    let _alone = crate::cluster::one_at_a_time().await;
    let database = TestDatabase::create().await;
    let (bus, _) = sns_sqs_bus("kill");
    run_kill_test(
        base_environment(&database, bus),
        Duration::from_secs(20),
        Duration::from_millis(100),
        11,
    )
    .await;
}

/// Two command processes on one PostgreSQL selling one product at once: each decides on its
/// own cached state, so every race between them is settled by the store (the loser decides
/// again on the new version). Exactly the stock is sold, each sale gets its own version, and
/// every further attempt is a 409, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_command_processes_on_one_postgres_sell_exactly_the_stock() {
    let _alone = crate::cluster::one_at_a_time().await;
    let database = TestDatabase::create().await;
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    mock.create_topic("catalog.product-events", 3, 1)
        .expect("topic");
    let bus = format!("kafka://{}?partitions=3", mock.bootstrap_servers());
    let mut cluster = Cluster::new(
        base_environment(&database, bus),
        &[("command", "command"), ("command-2", "command")],
    );
    cluster.spawn("command");
    cluster.wait_ready("command");
    cluster.spawn("command-2");
    cluster.wait_ready("command-2");
    let (client, token) = admin_with_tools(&cluster, 10).await;
    let created: Value = client
        .post(cluster.url("command", "/api/products"))
        .bearer_auth(&token)
        .json(&json!({
            "sku": "RACE-1", "name": "Raced product", "category": "tools",
            "price_cents": 1000, "currency": "USD", "stock": 150, "status": "published"
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let urls: Vec<String> = ["command", "command-2"]
        .iter()
        .map(|name| cluster.url(name, &format!("/api/products/{id}/sales")))
        .collect();
    let buyers: Vec<_> = (0..32)
        .map(|buyer| {
            let (client, token, url) = (client.clone(), token.clone(), urls[buyer % 2].clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..8 {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"quantity": 1}))
                        .send()
                        .await
                        .expect("sale");
                    let status = response.status();
                    let body: Value = response.json().await.expect("json");
                    answers.push((status, body["version"].as_u64()));
                }
                answers
            })
        })
        .collect();
    let mut versions = Vec::new();
    let mut refused = 0;
    for buyer in buyers {
        for (status, version) in buyer.await.expect("buyer") {
            match status {
                StatusCode::OK => versions.push(version.expect("a version")),
                StatusCode::CONFLICT => refused += 1,
                other => panic!("a sale was answered {other}"),
            }
        }
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=151).collect::<Vec<u64>>());
    assert_eq!(refused, 32 * 8 - 150);
    let pool = database.pool(1).await;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1::uuid")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(stored, 151);
}
