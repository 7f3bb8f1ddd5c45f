//! Kill tests: the three roles as three processes on PostgreSQL and a real bus, under a
//! stream of writes, with the command process (and its outbox relay) and the projector process
//! killed with SIGKILL at random moments and restarted. At the end every write that was
//! answered 2xx is in the query view with the right final state, and no view applied any
//! event twice.
//!
//! The writer is one client that knows exactly which writes took effect: each write carries
//! `If-Match` with the version it expects; when an answer is lost to a kill, it sends the same
//! write again, and a 412 then means the lost attempt committed.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use testkit::{free_port, TestDatabase};
use uuid::Uuid;

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "kill test password";

struct Role {
    name: &'static str,
    /// The `--role` it runs.
    role: &'static str,
    port: u16,
    child: Option<Child>,
}

struct Cluster {
    data_dir: tempfile::TempDir,
    environment: Vec<(String, String)>,
    roles: Vec<Role>,
}

impl Cluster {
    /// Processes `(name, role)`, not started yet.
    fn new(environment: Vec<(String, String)>, roles: &[(&'static str, &'static str)]) -> Cluster {
        Cluster {
            data_dir: tempfile::tempdir().expect("temp dir"),
            environment,
            roles: roles
                .iter()
                .map(|&(name, role)| Role {
                    name,
                    role,
                    port: free_port(),
                    child: None,
                })
                .collect(),
        }
    }

    fn start(environment: Vec<(String, String)>) -> Cluster {
        let mut cluster = Cluster::new(
            environment,
            &[
                ("command", "command"),
                ("projectors", "projectors"),
                ("query", "query"),
            ],
        );
        // The command role creates the signing key the query role verifies with.
        cluster.spawn("command");
        cluster.wait_ready("command");
        cluster.spawn("projectors");
        cluster.spawn("query");
        cluster.wait_ready("projectors");
        cluster.wait_ready("query");
        cluster
    }

    fn role(&mut self, name: &str) -> &mut Role {
        self.roles
            .iter_mut()
            .find(|role| role.name == name)
            .expect("known role")
    }

    fn url(&self, name: &str, path: &str) -> String {
        let port = self
            .roles
            .iter()
            .find(|role| role.name == name)
            .expect("known role")
            .port;
        format!("http://127.0.0.1:{port}{path}")
    }

    fn spawn(&mut self, name: &'static str) {
        let data_dir = self.data_dir.path().to_path_buf();
        let environment = self.environment.clone();
        let role = self.role(name);
        let log = std::fs::File::create(data_dir.join(format!("{name}.log"))).expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_catalog"));
        command
            .args(["serve", "--role", role.role, "--listen"])
            .arg(format!("127.0.0.1:{}", role.port))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,sqlx=warn")
            .env("CATALOG_DATA_DIR", &data_dir)
            .env("CATALOG_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("CATALOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // One admin writes as fast as the processes answer: above the default write
            // limit (100/s per client), whose 429s are not what this test is about.
            .env("CATALOG_RATE_LIMIT_WRITES", "off")
            .envs(environment)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        role.child = Some(command.spawn().expect("spawn catalog"));
    }

    fn wait_ready(&mut self, name: &'static str) {
        let url = self.url(name, "/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(200) = blocking_status(&url) {
                return;
            }
            if let Some(child) = self.role(name).child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("{name} exited with {status}: {}", self.log(name));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{name} never became ready: {}", self.log(name));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.data_dir.path().join(format!("{name}.log")))
            .unwrap_or_default()
    }

    fn kill(&mut self, name: &'static str) {
        if let Some(mut child) = self.role(name).child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for role in &mut self.roles {
            if let Some(child) = role.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The status code of a plain blocking GET (readiness polling, outside the async runtime's
/// work).
fn blocking_status(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let without_scheme = url.trim_start_matches("http://");
    let (address, path) = without_scheme
        .split_once('/')
        .unwrap_or((without_scheme, ""));
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0))
}

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
    let client = Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let token = login(&client, &cluster.url("command", "/api/auth/login")).await;
    let created = client
        .post(cluster.url("command", "/api/categories"))
        .bearer_auth(&token)
        .json(&json!({"slug": "tools", "name": "Tools"}))
        .send()
        .await
        .expect("category");
    assert_eq!(created.status(), 201);
    let mut expected: HashMap<Uuid, Expected> = HashMap::new();
    let mut ids = Vec::new();
    for index in 0..8 {
        let response = client
            .post(cluster.url("command", "/api/products"))
            .bearer_auth(&token)
            .json(&json!({
                "sku": format!("KILL-{index}"), "name": format!("Kill test {index}"),
                "category": "tools", "price_cents": 1000, "currency": "USD",
                "stock": 1000, "status": "published"
            }))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        let id: Uuid = body["id"].as_str().expect("id").parse().expect("uuid");
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
    let head: i64 = {
        let pool = sqlx::PgPool::connect(&database_url).await.expect("connect");
        let head = sqlx::query_scalar("SELECT position FROM event_head")
            .fetch_one(&pool)
            .await
            .expect("head");
        pool.close().await;
        head
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let response = client
            .get(cluster.url("query", "/api/categories"))
            .header("X-Min-Position", head.to_string())
            .send()
            .await;
        if matches!(&response, Ok(r) if r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the query view never reached position {head}; projectors log:\n{}",
            cluster.log("projectors")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    let twice: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm_products WHERE events_applied <> version")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(twice, 0, "a product view applied an event twice");
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

fn base_environment(database: &TestDatabase, bus: String) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".to_owned(), database.url.clone()),
        ("CATALOG_BUS".to_owned(), bus),
        ("CATALOG_DATABASE_POOL_SIZE".to_owned(), "6".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_command_and_projector_processes_loses_no_acknowledged_write_on_kafka() {
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
    let database = TestDatabase::create().await;
    let tag = &Uuid::new_v4().simple().to_string()[..10];
    let bus = format!(
        "sns+sqs://{}?topic=kill-{tag}&queue_prefix=k{tag}-&wait_seconds=1&visibility_seconds=5",
        testkit::moto_endpoint()
    );
    let setup = Command::new(env!("CARGO_BIN_EXE_catalog"))
        .args(["bus", "setup"])
        .env("CATALOG_BUS", &bus)
        .output()
        .expect("bus setup");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
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
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let token = login(&client, &cluster.url("command", "/api/auth/login")).await;
    let category = client
        .post(cluster.url("command", "/api/categories"))
        .bearer_auth(&token)
        .json(&json!({"slug": "tools", "name": "Tools"}))
        .send()
        .await
        .expect("category");
    assert_eq!(category.status(), 201);
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
