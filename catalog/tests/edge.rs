//! The edge cache: a real Varnish (Debian's `varnish` with `varnish-modules` for xkey) with
//! the repository's VCL in front of the catalog, and the catalog purging it by events
//! (`--edge-purge-url`). A write purges exactly the pages it changes: the product's page, the
//! listings of its category and of every category, the bestseller lists; the other product's
//! page, the other category's listing and (for a price change) the category list stay cached.
//! `X-Min-Position` and `Authorization` pass the cache.
//!
//! Embedded (one process) and distributed (command, projectors with the Redis views, and a
//! query process purging after its own L1 dropped the same entries).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use testkit::{free_port, TestDatabase};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "edge test password";

/// A process killed when the test ends, its output in a log file.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, mut command: Command, dir: &std::path::Path) -> Process {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
    Process {
        name: name.to_owned(),
        child,
        log,
    }
}

fn catalog(dir: &std::path::Path, args: &[&str], environment: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info,sqlx=warn")
        .env("CATALOG_DATA_DIR", dir)
        .env("CATALOG_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("CATALOG_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .envs(environment.iter().map(|(name, value)| (*name, value)));
    command
}

/// varnishd in the foreground on `port`, with docker/varnish/catalog.vcl and a backend.vcl
/// naming `backend_port`. Fails, saying how to install it, when varnishd is missing.
fn varnish(dir: &std::path::Path, port: u16, backend_port: u16) -> Process {
    let found = Command::new("varnishd")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "varnishd is missing: install Debian's varnish and varnish-modules \
         (apt-get install varnish varnish-modules; scripts/test.sh does)"
    );
    let vcl_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docker/varnish");
    let backend_dir = dir.join("vcl");
    std::fs::create_dir_all(&backend_dir).expect("vcl dir");
    std::fs::write(
        backend_dir.join("backend.vcl"),
        format!("backend query {{ .host = \"127.0.0.1\"; .port = \"{backend_port}\"; }}\n"),
    )
    .expect("backend.vcl");
    let mut command = Command::new("varnishd");
    command
        .arg("-F")
        .args(["-j", "none"])
        .arg("-n")
        .arg(dir.join("varnish"))
        .args(["-a", &format!("127.0.0.1:{port}")])
        .arg("-f")
        .arg(vcl_dir.join("catalog.vcl"))
        .arg("-p")
        .arg(format!(
            "vcl_path={}:{}",
            backend_dir.display(),
            vcl_dir.display()
        ))
        .args(["-s", "malloc,32m"]);
    spawn("varnish", command, dir)
}

/// Waits until `process` accepts connections on `port`.
async fn wait_listening(port: u16, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("{} exited with {status}:\n{}", process.name, process.log());
        }
        assert!(
            Instant::now() < deadline,
            "{} never listened:\n{}",
            process.name,
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(client: &Client, url: &str, process: &mut Process) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await {
            if response.status().is_success() {
                return;
            }
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!("{} exited with {status}:\n{}", process.name, process.log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never became ready:\n{}", process.name, process.log());
}

/// GETs `url`: (X-Cache, body).
async fn get(client: &Client, url: &str) -> (String, Value) {
    let response = client.get(url).send().await.expect("GET");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let cache = response
        .headers()
        .get("x-cache")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    (cache, response.json().await.expect("json"))
}

/// GETs `url` until the edge answers it from its cache twice in a row: the purges of earlier
/// writes are asynchronous, so a page may be purged once more after its first fetch.
async fn cached(client: &Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut hits = 0;
    while hits < 2 {
        let (cache, _) = get(client, url).await;
        hits = if cache == "HIT" { hits + 1 } else { 0 };
        assert!(Instant::now() < deadline, "{url} is never cached");
        if hits == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn post(client: &Client, url: String, token: &str, body: Value) -> Value {
    send(client, reqwest::Method::POST, url, token, body).await
}

async fn send(
    client: &Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Value,
) -> Value {
    let response = client
        .request(method, &url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// Two products in two categories, read through the edge; then one price change, and exactly
/// the pages it changes are fetched again.
async fn a_write_purges_exactly_the_pages_it_changes(
    client: &Client,
    command: &str,
    query: &str,
    edge: &str,
) {
    let url = format!("{command}/api/auth/login");
    let token = common::login(client, &url, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for (slug, name) in [("kitchen", "Kitchen"), ("garden", "Garden")] {
        post(
            client,
            format!("{command}/api/categories"),
            &token,
            json!({"slug": slug, "name": name}),
        )
        .await;
    }
    let mut ids = Vec::new();
    let mut position = 0;
    for (sku, category) in [("EDGE-1", "kitchen"), ("EDGE-2", "garden")] {
        let created = post(
            client,
            format!("{command}/api/products"),
            &token,
            json!({"sku": sku, "name": format!("Edge {sku}"), "category": category,
                   "price_cents": 1000, "currency": "USD", "stock": 5, "status": "published"}),
        )
        .await;
        ids.push(created["id"].as_str().expect("id").to_owned());
        position = created["position"].as_u64().expect("position");
    }
    let reached = client
        .get(format!("{query}/api/categories"))
        .header("X-Min-Position", position.to_string())
        .send()
        .await
        .expect("wait for the views");
    assert_eq!(reached.status(), 200);
    let product = |id: &str| format!("{edge}/api/products/{id}");
    let listing = |category: &str| format!("{edge}/api/products?category={category}");
    let changed = [
        product(&ids[0]),
        listing("kitchen"),
        format!("{edge}/api/products?sort=price_asc"),
        format!("{edge}/api/products/bestsellers"),
    ];
    let unchanged = [
        product(&ids[1]),
        listing("garden"),
        format!("{edge}/api/categories"),
    ];
    for url in changed.iter().chain(&unchanged) {
        cached(client, url).await;
    }

    let written = send(
        client,
        reqwest::Method::PUT,
        format!("{command}/api/products/{}/price", ids[0]),
        &token,
        json!({"price_cents": 4321, "currency": "USD"}),
    )
    .await;
    let version = written["version"].as_u64().expect("version");
    // Visible at the edge without any TTL running out: the purge came.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = get(client, &changed[0]).await;
        if page["version"].as_u64() == Some(version) {
            assert_eq!(page["price_cents"], 4321);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge still serves version {} of the product after 10 s",
            page["version"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pages the write changed were purged together: each is fetched again, and shows it.
    for url in &changed[1..] {
        let (cache, page) = get(client, url).await;
        assert_eq!(cache, "MISS", "{url} was not purged");
        let item = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["id"] == ids[0].as_str()))
            .unwrap_or_else(|| panic!("{url} lists the product: {page}"));
        assert_eq!(item["price_cents"], 4321, "{url}");
    }
    // The others were not touched.
    for url in &unchanged {
        let (cache, _) = get(client, url).await;
        assert_eq!(
            cache, "HIT",
            "{url} was purged by a write that does not change it"
        );
    }
    // Read-your-writes and admins pass the cache.
    for _ in 0..2 {
        let response = client
            .get(&changed[0])
            .header("X-Min-Position", written["position"].to_string())
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-cache"], "MISS");
        let response = client
            .get(&unchanged[0])
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.headers()["x-cache"], "MISS");
        assert_eq!(response.headers()["cache-control"], "private, no-store");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_catalog_purges_the_edge_of_exactly_what_a_write_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, edge_port) = (free_port(), free_port());
    let edge = format!("http://127.0.0.1:{edge_port}");
    // The edge first: the catalog purges everything at start, and a purge the edge refused
    // would be retried (with backoff) after the test has cached its pages.
    let mut cache = varnish(dir.path(), edge_port, port);
    wait_listening(edge_port, &mut cache).await;
    let mut server = spawn(
        "catalog",
        catalog(
            dir.path(),
            &["serve", "--listen", &format!("127.0.0.1:{port}")],
            &[("CATALOG_EDGE_PURGE_URL", edge.clone())],
        ),
        dir.path(),
    );
    let client = Client::new();
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &format!("{url}/readyz"), &mut server).await;
    wait_ready(&client, &format!("{edge}/healthz"), &mut cache).await;
    a_write_purges_exactly_the_pages_it_changes(&client, &url, &url, &edge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_process_purges_the_edge_after_its_own_cache_dropped_the_same_pages() {
    let database = TestDatabase::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let environment = [
        ("DATABASE_URL", database.url.clone()),
        ("REDIS_URL", testkit::redis_url()),
        ("CATALOG_DATABASE_POOL_SIZE", "4".to_owned()),
    ];
    let (command_port, projectors_port, query_port, edge_port) =
        (free_port(), free_port(), free_port(), free_port());
    let edge = format!("http://127.0.0.1:{edge_port}");
    let client = Client::new();
    let listen = |port: u16| format!("127.0.0.1:{port}");
    let mut command = spawn(
        "command",
        catalog(
            dir.path(),
            &[
                "serve",
                "--role",
                "command",
                "--listen",
                &listen(command_port),
            ],
            &environment,
        ),
        dir.path(),
    );
    let command_url = format!("http://{}", listen(command_port));
    wait_ready(&client, &format!("{command_url}/readyz"), &mut command).await;
    let mut projectors = spawn(
        "projectors",
        catalog(
            dir.path(),
            &[
                "serve",
                "--role",
                "projectors",
                "--listen",
                &listen(projectors_port),
            ],
            &environment,
        ),
        dir.path(),
    );
    let mut with_edge = environment.to_vec();
    with_edge.push(("CATALOG_EDGE_PURGE_URL", edge.clone()));
    // The edge before the query process, whose first subscription purges everything.
    let mut cache = varnish(dir.path(), edge_port, query_port);
    wait_listening(edge_port, &mut cache).await;
    let mut query = spawn(
        "query",
        catalog(
            dir.path(),
            &["serve", "--role", "query", "--listen", &listen(query_port)],
            &with_edge,
        ),
        dir.path(),
    );
    let query_url = format!("http://{}", listen(query_port));
    wait_ready(
        &client,
        &format!("http://{}/readyz", listen(projectors_port)),
        &mut projectors,
    )
    .await;
    wait_ready(&client, &format!("{query_url}/readyz"), &mut query).await;
    // Its first subscription purges everything: it must come before the test caches pages.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !query.log().contains("watching cache invalidations") {
        assert!(
            Instant::now() < deadline,
            "never subscribed:\n{}",
            query.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_ready(&client, &format!("{edge}/healthz"), &mut cache).await;
    a_write_purges_exactly_the_pages_it_changes(&client, &command_url, &query_url, &edge).await;
}

#[test]
fn an_edge_purge_url_that_is_not_an_http_url_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = catalog(
        dir.path(),
        &["serve", "--listen", &format!("127.0.0.1:{}", free_port())],
        &[("CATALOG_EDGE_PURGE_URL", "varnish:6081".to_owned())],
    )
    .output()
    .expect("run catalog");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--edge-purge-url") && stderr.contains("varnish:6081"),
        "{stderr}"
    );
}
