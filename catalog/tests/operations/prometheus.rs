//! The monitoring test: `promtool` checks the repository's Prometheus configuration and
//! unit-tests its alert rules; then a real Prometheus with that configuration scrapes a
//! command, a projectors and a query process (reading a streaming replica) and the HAProxy in
//! front of them, evaluates every rule without error, finds every metric the rules and the
//! Grafana dashboard are built on, and answers every query of the dashboard, which is also
//! checked against the dashboard JSON schema in `docker/grafana`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::{installed, repository_file, seed_products, wait_for_position, Haproxy, Stack};

/// What the alert rules and the dashboard read, each of which a scrape of the stack below
/// must find (the replica's lag comes from the query process reading a replica; the
/// balancer's from HAProxy's own exporter).
const REQUIRED_METRICS: &[&str] = &[
    "up",
    "catalog_http_requests_total",
    "catalog_http_request_duration_seconds_bucket",
    "catalog_http_connections_open",
    "catalog_cache_requests_total",
    "catalog_projection_position",
    "catalog_projection_lag_events",
    "catalog_projection_lag_age_seconds",
    "catalog_projection_parked",
    "catalog_bus_consumer_lag",
    "catalog_outbox_backlog",
    "catalog_outbox_oldest_age_seconds",
    "catalog_circuit_open",
    "catalog_replica_lag_seconds",
    "haproxy_backend_active_servers",
];

fn promtool(arguments: &[&str]) -> String {
    let output = Command::new(installed("promtool", "prometheus"))
        .args(arguments)
        .output()
        .expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {arguments:?}:\n{text}");
    text
}

#[test]
fn the_prometheus_configuration_is_valid_and_the_alert_rules_pass_their_unit_tests() {
    let config = repository_file("docker/prometheus/prometheus.yml");
    let checked = promtool(&["check", "config", &config.to_string_lossy()]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let rules = repository_file("docker/prometheus/rules/catalog.test.yml");
    let tested = promtool(&["test", "rules", &rules.to_string_lossy()]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// A Prometheus of the test's own on the repository's configuration and rules, with the
/// test's targets; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(catalog_targets: Value, haproxy_targets: Value) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let copy = |from: &str, to: &str| {
            std::fs::copy(repository_file(from), dir.path().join(to)).expect("copy");
        };
        std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
        std::fs::create_dir_all(dir.path().join("targets")).expect("targets dir");
        copy("docker/prometheus/prometheus.yml", "prometheus.yml");
        copy("docker/prometheus/rules/catalog.yml", "rules/catalog.yml");
        let write = |name: &str, targets: &Value| {
            std::fs::write(dir.path().join("targets").join(name), targets.to_string())
                .expect("targets");
        };
        write("catalog-test.json", &catalog_targets);
        write("haproxy-test.json", &haproxy_targets);
        let port = testkit::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(installed("prometheus", "prometheus"))
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        Prometheus { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}` with `query`; the `data` of a successful answer, else `Err` with
    /// the answer.
    async fn api(
        &self,
        client: &Client,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, String> {
        let url = format!("http://127.0.0.1:{}/api/v1/{path}", self.port);
        let response = client
            .get(url)
            .query(query)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(body.to_string()),
        }
    }

    /// An instant query's result vector.
    async fn query(&self, client: &Client, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api(client, "query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until `check` holds, polling every 500 ms for up to `seconds`.
    async fn wait<F, Fut>(&self, seconds: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            match check().await {
                Ok(()) => return,
                Err(last) => assert!(
                    Instant::now() < deadline,
                    "{what} within {seconds} s; last: {last}\nprometheus log:\n{}",
                    self.log()
                ),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `expr` of the dashboard's panels, with Grafana's variables given values Prometheus
/// takes.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let expr = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$role", ".*")
                    .replace("$projector", ".*");
                let title = panel["title"].as_str().unwrap_or("?").to_owned();
                queries.push((title, expr));
            }
        }
    }
    queries
}

#[test]
fn the_grafana_dashboard_matches_its_schema() {
    let dashboard = read_json(&repository_file("docker/grafana/catalog-dashboard.json"));
    let schema = read_json(&repository_file("docker/grafana/dashboard.schema.json"));
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&dashboard)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the dashboard does not match: {errors:#?}"
    );
    // Each panel has a unique id and a query; the grid has no two panels on one cell.
    let panels = dashboard["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are not unique");
    assert!(dashboard_queries(&dashboard).len() >= panels.len() - rows(panels));
    let cells: Vec<(u64, u64, u64, u64, &str)> = panels
        .iter()
        .map(|p| {
            let at = |key: &str| p["gridPos"][key].as_u64().expect("grid position");
            let title = p["title"].as_str().unwrap_or("?");
            (at("x"), at("y"), at("w"), at("h"), title)
        })
        .collect();
    for (index, &(x, y, w, h, title)) in cells.iter().enumerate() {
        assert!(x + w <= 24, "panel {title:?} is wider than the grid");
        for &(x2, y2, w2, h2, other) in &cells[index + 1..] {
            let apart = x + w <= x2 || x2 + w2 <= x || y + h <= y2 || y2 + h2 <= y;
            assert!(apart, "panels {title:?} and {other:?} overlap");
        }
    }
}

fn rows(panels: &[Value]) -> usize {
    panels.iter().filter(|p| p["type"] == "row").count()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_role_evaluates_every_rule_and_answers_the_dashboard() {
    let _alone = crate::cluster::one_at_a_time().await;
    let stack = Stack::new().await;
    let replica = testkit::replica_url(stack.database()).await;
    let mut cluster = Cluster::new(
        stack.environment.clone(),
        &[
            ("command", "command"),
            ("projectors", "projectors"),
            ("query", "query"),
        ],
    );
    cluster.set_role_env("query", "DATABASE_READ_URL", &replica);
    cluster.start_all();
    let seeded = seed_products(&cluster, 5).await;
    let client = seeded.client;
    let url = cluster.url("query", "/api/categories");
    wait_for_position(&client, &url, seeded.position).await;
    for id in &seeded.ids {
        let page = cluster.url("query", &format!("/api/products/{id}"));
        for _ in 0..2 {
            let response = client.get(&page).send().await.expect("read");
            assert_eq!(response.status(), 200);
        }
    }
    let haproxy = Haproxy::start(&cluster, ["command", "command"], ["query", "query"]);
    let address = |name: &str| {
        let url = cluster.url(name, "");
        url.trim_start_matches("http://").to_owned()
    };
    let prometheus = Prometheus::start(
        json!([
            {"targets": [address("command")], "labels": {"role": "command"}},
            {"targets": [address("projectors")], "labels": {"role": "projectors"}},
            {"targets": [address("query")], "labels": {"role": "query"}},
        ]),
        json!([{"targets": [format!("127.0.0.1:{}", haproxy.stats)], "labels": {"role": "balancer"}}]),
    );

    prometheus
        .wait(60, "every target is scraped and up", || async {
            let data = prometheus.api(&client, "targets", &[]).await?;
            let targets = data["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let up = targets.iter().filter(|t| t["health"] == "up").count();
            match (targets.len(), up) {
                (4, 4) => Ok(()),
                _ => Err(json!(targets).to_string()),
            }
        })
        .await;
    prometheus
        .wait(
            60,
            "every metric the rules and the dashboard need is scraped",
            || async {
                let names = prometheus
                    .api(&client, "label/__name__/values", &[])
                    .await?;
                let names: BTreeSet<String> =
                    serde_json::from_value(names).map_err(|e| e.to_string())?;
                let missing: Vec<&&str> = REQUIRED_METRICS
                    .iter()
                    .filter(|name| !names.contains(**name))
                    .collect();
                match missing.is_empty() {
                    true => Ok(()),
                    false => Err(format!("missing {missing:?}")),
                }
            },
        )
        .await;
    // The role label the alerts group by comes from the targets.
    let requests = prometheus
        .query(&client, "sum by (role) (catalog_http_requests_total)")
        .await
        .expect("query");
    let roles: BTreeSet<&str> = requests
        .iter()
        .filter_map(|sample| sample["metric"]["role"].as_str())
        .collect();
    assert_eq!(roles, BTreeSet::from(["command", "projectors", "query"]));
    prometheus
        .wait(60, "every rule is evaluated without error", || async {
            let data = prometheus.api(&client, "rules", &[]).await?;
            let rules: Vec<Value> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let unhealthy: Vec<&Value> =
                rules.iter().filter(|rule| rule["health"] != "ok").collect();
            match (rules.len() >= 15, unhealthy.is_empty()) {
                (true, true) => Ok(()),
                _ => Err(format!("{} rules, not ok: {unhealthy:?}", rules.len())),
            }
        })
        .await;
    // A healthy stack raises no alert.
    let alerts = prometheus
        .api(&client, "alerts", &[])
        .await
        .expect("alerts");
    let firing: Vec<&Value> = alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|alert| alert["state"] == "firing")
        .collect();
    assert!(firing.is_empty(), "alerts on a healthy stack: {firing:?}");

    let dashboard = read_json(&repository_file("docker/grafana/catalog-dashboard.json"));
    // Rates need two scrapes inside their window.
    prometheus
        .wait(60, "two scrapes of the request counters", || async {
            let rates = prometheus
                .query(
                    &client,
                    "sum by (role) (rate(catalog_http_requests_total[1m]))",
                )
                .await?;
            match rates.len() {
                3 => Ok(()),
                _ => Err(json!(rates).to_string()),
            }
        })
        .await;
    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries(&dashboard) {
        let result = prometheus.query(&client, &expr).await;
        match result {
            Ok(samples) if samples.is_empty() => empty.push(title),
            Ok(_) => {}
            Err(error) => panic!("panel {title:?}: {expr} fails: {error}"),
        }
    }
    eprintln!("dashboard panels with no data on a fresh stack: {empty:?}");
    for core in [
        "Requests per second",
        "Projection lag (events)",
        "Outbox backlog",
    ] {
        assert!(
            !empty.contains(&core.to_owned()),
            "panel {core:?} has no data"
        );
    }
}
