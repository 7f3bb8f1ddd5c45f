//! Operations tests: the catalog's roles as processes of their own, behind the HAProxy
//! configuration in `docker/haproxy` and watched by a real Prometheus with the rules in
//! `docker/prometheus` (Debian's `haproxy` and `prometheus`, which scripts/test.sh installs).

#[allow(dead_code)] // shared with the kill tests, which use more of it
#[path = "../kill/cluster.rs"]
mod cluster;
#[path = "../common/mod.rs"]
mod common;

mod balancer;
mod prometheus;
mod traces;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use testkit::TestDatabase;
use uuid::Uuid;

use cluster::{Cluster, ADMIN_EMAIL, ADMIN_PASSWORD};

/// A file of the repository.
fn repository_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The path of `program`, or a panic that says how to install it.
fn installed(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{program} is not installed: install Debian's {package} \
             (apt-get install {package}; scripts/test.sh does)"
        )
    })
}

/// The roles on PostgreSQL and a Kafka bus (librdkafka's mock cluster, a real broker
/// protocol on a loopback port, which the processes reach like any broker). Reads are not
/// rate-limited: one test client stands for many shoppers.
struct Stack {
    database: TestDatabase,
    _kafka: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    environment: Vec<(String, String)>,
}

impl Stack {
    fn database(&self) -> &TestDatabase {
        &self.database
    }

    async fn new() -> Stack {
        let database = TestDatabase::create().await;
        let kafka = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        kafka
            .create_topic("catalog.product-events", 3, 1)
            .expect("topic");
        let environment = vec![
            ("DATABASE_URL".to_owned(), database.url.clone()),
            (
                "CATALOG_BUS".to_owned(),
                format!("kafka://{}?partitions=3", kafka.bootstrap_servers()),
            ),
            ("CATALOG_DATABASE_POOL_SIZE".to_owned(), "6".to_owned()),
            ("CATALOG_RATE_LIMIT_READS".to_owned(), "off".to_owned()),
            // The balancer is a trusted proxy: its X-Forwarded-For names the client.
            (
                "CATALOG_TRUSTED_PROXIES".to_owned(),
                "127.0.0.1/32".to_owned(),
            ),
        ];
        Stack {
            database,
            _kafka: kafka,
            environment,
        }
    }
}

/// What [`seed_products`] made: a client, the products' ids and the store's position after
/// the last.
struct Seeded {
    client: Client,
    ids: Vec<Uuid>,
    position: u64,
}

/// Logs in as the admin, creates category `tools` and `count` published products through
/// the command role.
async fn seed_products(cluster: &Cluster, count: usize) -> Seeded {
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let token = common::login(
        &client,
        &cluster.url("command", "/api/auth/login"),
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
    )
    .await;
    let categories = cluster.url("command", "/api/categories");
    common::create_tools_category(&client, &categories, &token).await;
    let (mut ids, mut position) = (Vec::new(), 0);
    for index in 0..count {
        let response = client
            .post(cluster.url("command", "/api/products"))
            .bearer_auth(&token)
            .json(&json!({
                "sku": format!("OPS-{index}"), "name": format!("Hammer {index}"),
                "category": "tools", "price_cents": 1000 + index as i64, "currency": "USD",
                "stock": 50, "status": "published"
            }))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        ids.push(body["id"].as_str().expect("id").parse().expect("uuid"));
        position = body["position"].as_u64().expect("position");
    }
    Seeded {
        client,
        ids,
        position,
    }
}

/// Waits until `url` answers `X-Min-Position: position` with 200 (within 60 s).
async fn wait_for_position(client: &Client, url: &str, position: u64) {
    common::wait_for_position(client, url, position, Duration::from_secs(60), String::new).await;
}

/// HAProxy running `docker/haproxy/haproxy.cfg` in the foreground, killed on drop.
struct Haproxy {
    child: Child,
    pub public: u16,
    pub stats: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// In front of the cluster's roles named in `command` and `query` (two of each in the
    /// file; a single command instance is named twice).
    fn start(cluster: &Cluster, command: [&str; 2], query: [&str; 2]) -> Haproxy {
        let address = |name: &str| {
            let url = cluster.url(name, "");
            url.trim_start_matches("http://").to_owned()
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let haproxy = installed("haproxy", "haproxy");
        let (public, stats) = (testkit::free_port(), testkit::free_port());
        let config = repository_file("docker/haproxy/haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let output = std::fs::File::create(&log).expect("haproxy log");
        let child = Command::new(haproxy)
            .args(["-db", "-f"])
            .arg(&config)
            .env("CATALOG_HAPROXY_LISTEN", format!("127.0.0.1:{public}"))
            .env("CATALOG_HAPROXY_STATS", format!("127.0.0.1:{stats}"))
            .env("CATALOG_COMMAND_1", address(command[0]))
            .env("CATALOG_COMMAND_2", address(command[1]))
            .env("CATALOG_QUERY_1", address(query[0]))
            .env("CATALOG_QUERY_2", address(query[1]))
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("log"))
            .stderr(output)
            .spawn()
            .expect("spawn haproxy");
        let haproxy = Haproxy {
            child,
            public,
            stats,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", public)).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen: {}",
                haproxy.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        haproxy
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.public)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The stats page's rows (`;csv`): one map per proxy and server, by column name.
    async fn stats(&self, client: &Client) -> Vec<std::collections::HashMap<String, String>> {
        let url = format!("http://127.0.0.1:{}/stats;csv", self.stats);
        let text = client
            .get(url)
            .send()
            .await
            .expect("stats")
            .text()
            .await
            .expect("stats text");
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .expect("stats header")
            .trim_start_matches("# ")
            .split(',')
            .map(str::to_owned)
            .collect();
        lines
            .filter(|line| !line.is_empty())
            .map(|line| {
                header
                    .iter()
                    .cloned()
                    .zip(line.split(',').map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// Column `column` of server (or `BACKEND`) `server` of proxy `proxy`.
    async fn stat(&self, client: &Client, proxy: &str, server: &str, column: &str) -> String {
        self.stats(client)
            .await
            .into_iter()
            .find(|row| {
                row.get("pxname").map(String::as_str) == Some(proxy)
                    && row.get("svname").map(String::as_str) == Some(server)
            })
            .and_then(|row| row.get(column).cloned())
            .unwrap_or_else(|| panic!("no {column} for {proxy}/{server} in the stats"))
    }

    /// Waits until server `server` of `proxy` has `status` (UP, DOWN, …); how long it took.
    async fn wait_for_status(
        &self,
        client: &Client,
        proxy: &str,
        server: &str,
        status: &str,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.stat(client, proxy, server, "status").await;
            if now.starts_with(status) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{proxy}/{server} is still {now}, not {status}, after 30 s: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
