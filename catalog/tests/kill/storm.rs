//! The storm: writers using every command at once, `kill -9` of the command, projector and
//! query processes while their requests are in flight, and outages of the engines (Redis
//! killed and started empty, the replica cut off, the bus down). At the end every
//! view equals the fold of the event store: product pages through the Redis views and through
//! the replica, each query process's search index, the analytics sales in Redis and in a query
//! process's own view; every write answered 2xx is in the store exactly once. On SNS/SQS the
//! endpoint is cut off; on Kafka the broker process (tansu, its log in S3 on moto) is killed
//! and started again.
//!
//! `CATALOG_STORM_SECONDS` sets the length (scripts/storm.sh runs it for minutes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_store::postgres::PostgresDatabase;
use projectors::read_model::{CatalogReadModel, MemoryReadModel, MinPosition};
use projectors::runner::Projector;
use rand::{Rng, SeedableRng};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use testkit::{RedisServer, Tansu, TcpProxy, TestDatabase};
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::{base_environment, setup_bus, sns_sqs_bus, wait_for_head};

const WRITERS: u64 = 3;
const VICTIMS: [&str; 4] = ["command", "projectors", "query", "query-pg"];

/// What happened, for the closing line.
#[derive(Default)]
struct Counts {
    writes: AtomicU64,
    effective: AtomicU64,
    /// Answers lost (a connection cut by a kill, a 5xx while a role or engine was down).
    lost: AtomicU64,
    /// Retries answered from the idempotency record (`Idempotent-Replayed`).
    replayed: AtomicU64,
    /// Keyed retries after a lost answer answered by running again (their first attempt
    /// never stored an answer: it died, or never arrived); the request's claim lets at most
    /// one attempt append.
    recovered: AtomicU64,
}

/// A write: the method, the path under `/api/products`, the body, and whether it is keyed.
struct Write {
    method: Method,
    path: String,
    body: Value,
}

/// Sends `write` until it is answered, and panics unless it took effect (every write of the
/// storm is valid). Every write carries `If-Match` (creates aside), POSTs an
/// `Idempotency-Key` too: after a lost answer, the key's answer or a 412 tells the write took
/// effect. Returns the id in the answer's body.
async fn send(
    client: &Client,
    base: &str,
    token: &str,
    write: &Write,
    if_match: Option<u64>,
    counts: &Counts,
) -> Option<Uuid> {
    counts.writes.fetch_add(1, Ordering::Relaxed);
    let key = Uuid::new_v4().to_string();
    let mut lost = false;
    for _ in 0..1200 {
        let mut request = client
            .request(
                write.method.clone(),
                format!("{base}/api/products{}", write.path),
            )
            .bearer_auth(token)
            .json(&write.body);
        if let Some(version) = if_match {
            request = request.header("If-Match", format!("\"{version}\""));
        }
        if write.method == Method::POST {
            request = request.header("Idempotency-Key", &key);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                if response.headers().contains_key("idempotent-replayed") {
                    assert!(lost, "a replay without a lost answer");
                    counts.replayed.fetch_add(1, Ordering::Relaxed);
                } else if lost && write.method == Method::POST {
                    counts.recovered.fetch_add(1, Ordering::Relaxed);
                }
                let id = match response.status() {
                    StatusCode::NO_CONTENT => None,
                    _ => match response.json::<Value>().await {
                        Ok(body) => body["id"].as_str().and_then(|id| id.parse().ok()),
                        // The body was lost on the way: as good as no answer.
                        Err(_) => {
                            lost = true;
                            counts.lost.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                    },
                };
                counts.effective.fetch_add(1, Ordering::Relaxed);
                return id;
            }
            Ok(response) if response.status() == StatusCode::PRECONDITION_FAILED => {
                // One writer per product: only its own lost attempt moves the version.
                assert!(lost, "412 without a lost answer before it: {}", write.path);
                counts.effective.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Ok(response)
                if response.status().is_server_error()
                    || response.status() == StatusCode::UNAUTHORIZED =>
            {
                lost = true;
                counts.lost.fetch_add(1, Ordering::Relaxed);
            }
            Ok(response) => {
                // A 409 "still being processed" would leave the client not knowing: every
                // POST here takes its request's claim, so a retry is answered instead.
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                panic!("{status} for {} {}: {body}", write.method, write.path);
            }
            Err(_) => {
                lost = true;
                counts.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} {} was never answered", write.method, write.path);
}

/// What a writer knows of one of its products.
#[derive(Clone)]
struct Known {
    version: u64,
    stock: i64,
    published: bool,
}

/// One writer: its own products (no other writer touches them), every command, until `stop`.
/// Returns product → version it must be at.
async fn writer(
    number: u64,
    base: String,
    token: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) -> HashMap<Uuid, u64> {
    let client = Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut random = rand::rngs::StdRng::seed_from_u64(number);
    let mut products: HashMap<Uuid, Known> = HashMap::new();
    let mut archived: HashMap<Uuid, u64> = HashMap::new();
    let mut created = 0;
    while !stop.load(Ordering::SeqCst) {
        let mut ids: Vec<Uuid> = products.keys().copied().collect();
        ids.sort();
        if ids.len() < 2 || random.gen_range(0..10) == 0 {
            created += 1;
            let write = Write {
                method: Method::POST,
                path: String::new(),
                body: json!({
                    "sku": format!("STORM-{number}-{created:03}"),
                    "name": format!("Storm {number}{created:03}"),
                    "category": "tools", "price_cents": 1000, "currency": "USD",
                    "stock": 5, "status": "published"
                }),
            };
            let id = send(&client, &base, &token, &write, None, &counts)
                .await
                .expect("a create is answered with its id");
            let known = Known {
                version: 1,
                stock: 5,
                published: true,
            };
            products.insert(id, known);
            continue;
        }
        let id = ids[random.gen_range(0..ids.len())];
        let known = products[&id].clone();
        let (write, next) = match random.gen_range(0..12) {
            0..=2 if known.stock > 0 => (
                Write {
                    method: Method::POST,
                    path: format!("/{id}/sales"),
                    body: json!({"quantity": 1}),
                },
                Known {
                    stock: known.stock - 1,
                    ..known.clone()
                },
            ),
            0..=4 => (
                Write {
                    method: Method::POST,
                    path: format!("/{id}/stock"),
                    body: json!({"delta": random.gen_range(1..4), "reason": "delivery"}),
                },
                known.clone(),
            ),
            5..=6 => (
                Write {
                    method: Method::PUT,
                    path: format!("/{id}/price"),
                    body: json!({"price_cents": random.gen_range(100..10_000), "currency": "USD"}),
                },
                known.clone(),
            ),
            7..=8 => (
                Write {
                    method: Method::PATCH,
                    path: format!("/{id}"),
                    body: json!({"description": format!("revision {}", known.version)}),
                },
                known.clone(),
            ),
            9..=10 => (
                Write {
                    method: Method::POST,
                    path: format!(
                        "/{id}/{}",
                        if known.published {
                            "unpublish"
                        } else {
                            "publish"
                        }
                    ),
                    body: json!({}),
                },
                Known {
                    published: !known.published,
                    ..known.clone()
                },
            ),
            _ => (
                Write {
                    method: Method::DELETE,
                    path: format!("/{id}"),
                    body: json!({}),
                },
                known.clone(),
            ),
        };
        let delta = write.body["delta"].as_i64().unwrap_or(0);
        send(&client, &base, &token, &write, Some(known.version), &counts).await;
        let next = Known {
            version: known.version + 1,
            stock: next.stock + delta,
            ..next
        };
        if write.method == Method::DELETE {
            products.remove(&id);
            archived.insert(id, next.version);
        } else {
            products.insert(id, next);
        }
    }
    archived.extend(products.into_iter().map(|(id, known)| (id, known.version)));
    archived
}

/// Kills a role (round robin) 0.5–2 s after the last one is ready again, until `stop`; the
/// kills, counted in `done` as they happen.
fn killer(
    mut cluster: Cluster,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    seed: u64,
) -> (Cluster, Vec<&'static str>) {
    let mut random = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(random.gen_range(500..2000)));
        let victim = VICTIMS[kills.len() % VICTIMS.len()];
        cluster.kill(victim);
        kills.push(victim);
        done.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(random.gen_range(100..600)));
        cluster.start_until_ready(victim);
    }
    (cluster, kills)
}

/// The engines the storm takes down: Redis (killed, started again empty), the replica (every
/// connection cut, new ones refused, then let through again) and the bus.
struct Engines {
    redis: RedisServer,
    replica: TcpProxy,
    bus: BusDown,
}

/// How the bus goes down: the SNS/SQS endpoint cut off like the replica, or the Kafka broker
/// process (tansu, its log in S3) killed and started again.
enum BusDown {
    Cut(TcpProxy),
    Killed(Tansu),
}

/// Which bus a storm runs on.
#[derive(Clone, Copy, PartialEq)]
enum StormBus {
    SnsSqs,
    Kafka,
}

/// Takes one engine down (round robin) every 3–6 s for 0.5–2 s, until `stop`; the outages.
async fn outages(
    mut engines: Engines,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> (Engines, Vec<&'static str>) {
    let mut random = rand::rngs::StdRng::seed_from_u64(seed);
    let mut outages = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(random.gen_range(3000..6000))).await;
        let down = Duration::from_millis(random.gen_range(500..2000));
        let engine = ["redis", "replica", "bus"][outages.len() % 3];
        match engine {
            "redis" => {
                engines.redis.stop();
                tokio::time::sleep(down).await;
                engines.redis.start_again();
            }
            "replica" => {
                engines.replica.cut().await;
                tokio::time::sleep(down).await;
                engines.replica.restore();
            }
            _ => match &mut engines.bus {
                BusDown::Cut(proxy) => {
                    proxy.cut().await;
                    tokio::time::sleep(down).await;
                    proxy.restore();
                }
                BusDown::Killed(broker) => {
                    broker.stop();
                    tokio::time::sleep(down).await;
                    broker.start_again();
                }
            },
        }
        outages.push(engine);
    }
    (engines, outages)
}

fn count(events: &[&str], name: &str) -> usize {
    events.iter().filter(|event| **event == name).count()
}

/// `url` with `X-Min-Position: head` and the admin's token, until it answers 200.
async fn read_at(client: &Client, url: &str, token: &str, head: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = client
            .get(url)
            .bearer_auth(token)
            .header("X-Min-Position", head.to_string())
            .send()
            .await;
        match response {
            Ok(response) if response.status() == 200 => {
                return response.json().await.expect("json");
            }
            Ok(response)
                if response.status() == 404
                    && Instant::now() + Duration::from_secs(55) > deadline =>
            {
                return Value::Null;
            }
            other => assert!(
                Instant::now() < deadline,
                "{url} never answered at position {head}: {:?}",
                other.map(|response| response.status())
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_on_sns_sqs_leaves_every_view_equal_to_the_fold_of_the_store() {
    let _alone = crate::cluster::one_at_a_time().await;
    storm(StormBus::SnsSqs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_on_kafka_leaves_every_view_equal_to_the_fold_of_the_store() {
    let _alone = crate::cluster::one_at_a_time().await;
    storm(StormBus::Kafka).await;
}

/// The storm on `on`; see the module documentation.
async fn storm(on: StormBus) {
    let seconds: u64 = std::env::var("CATALOG_STORM_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(25);
    let database = TestDatabase::create().await;
    let replica_url = testkit::replica_url(&database).await;
    let replica_address = replica_url
        .trim_start_matches("postgres://")
        .split(['@'])
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("the replica's host:port")
        .to_owned();
    let replica = TcpProxy::start(replica_address.parse().expect("address")).await;
    let redis = RedisServer::start();
    let (bus, bus_down) = match on {
        StormBus::SnsSqs => {
            let moto = TcpProxy::start(testkit::moto_endpoint().parse().expect("address")).await;
            let (bus, _) = sns_sqs_bus("storm");
            let through_proxy = bus.replace(
                &testkit::moto_endpoint(),
                &format!("127.0.0.1:{}", moto.port),
            );
            (through_proxy, BusDown::Cut(moto))
        }
        StormBus::Kafka => {
            let broker = Tansu::start();
            let bus = format!("kafka://{}?partitions=3", broker.bootstrap());
            setup_bus(&bus);
            (bus, BusDown::Killed(broker))
        }
    };
    let mut environment = base_environment(&database, bus);
    environment.push(("REDIS_URL".to_owned(), redis.url()));
    environment.push((
        "DATABASE_READ_URL".to_owned(),
        replica_url.replace(&replica_address, &format!("127.0.0.1:{}", replica.port)),
    ));
    environment.push(("CATALOG_READ_FALLBACK".to_owned(), "primary".to_owned()));
    let mut cluster = Cluster::new(
        environment,
        &[
            ("command", "command"),
            ("projectors", "projectors"),
            ("query", "query"),
            ("query-pg", "query"),
        ],
    );
    // A query process without Redis: product pages from the replica, its own analytics view.
    cluster.set_role_env("query-pg", "REDIS_URL", "");
    for role in ["command", "projectors", "query", "query-pg"] {
        cluster.start_until_ready(role);
    }
    let (client, token) = crate::admin_with_tools(&cluster, 10).await;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let pool = database.pool(1).await;
    let base = cluster.url("command", "");
    let writers: Vec<_> = (1..=WRITERS)
        .map(|number| {
            tokio::spawn(writer(
                number,
                base.clone(),
                token.clone(),
                stop.clone(),
                counts.clone(),
            ))
        })
        .collect();
    let kills_done = Arc::new(AtomicU64::new(0));
    let killing = {
        let (stop, done) = (stop.clone(), kills_done.clone());
        std::thread::spawn(move || killer(cluster, stop, done, 23))
    };
    let engines = Engines {
        redis,
        replica,
        bus: bus_down,
    };
    let outage_task = tokio::spawn(outages(engines, stop.clone(), 29));
    // At least `seconds`, and until every role was killed once.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds)
        || kills_done.load(Ordering::SeqCst) < VICTIMS.len() as u64
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut versions: HashMap<Uuid, u64> = HashMap::new();
    for writer in writers {
        versions.extend(writer.await.expect("writer"));
    }
    let (cluster, kills) = killing.join().expect("killer");
    let (_engines, outages) = outage_task.await.expect("outages");
    for victim in VICTIMS {
        assert!(
            count(&kills, victim) > 0,
            "{victim} was never killed: {kills:?}"
        );
    }

    // The fold of the store: the in-memory read model, caught up from the event store.
    wait_for_head(&client, &cluster, &database.url, Duration::from_secs(120)).await;
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_head")
        .fetch_one(&pool)
        .await
        .expect("head");
    let store = PostgresDatabase::connect(&database.url, 2)
        .await
        .expect("store");
    let fold = Arc::new(MemoryReadModel::new());
    Projector::new(fold.clone(), Arc::new(store.event_store(false)))
        .catch_up()
        .await
        .expect("fold the store");
    let mut sales: HashMap<Uuid, i64> = HashMap::new();
    for (id, version) in &versions {
        let (view, _) = fold
            .product_any_status(*id, MinPosition::ANY)
            .await
            .expect("fold");
        let view = view.unwrap_or_else(|| {
            panic!("product {id} (version {version}) is not in the fold of the store")
        });
        // Every write answered 2xx, once: the version counts them.
        assert_eq!(view.version, *version, "product {id} in the store");
        if view.sales > 0 {
            sales.insert(*id, view.sales);
        }
        let folded = serde_json::to_value(&view).expect("json");
        for query in ["query", "query-pg"] {
            let url = cluster.url(query, &format!("/api/products/{id}"));
            let page = read_at(&client, &url, &token, head).await;
            if page.is_null() {
                let row: Option<(i64, String)> =
                    sqlx::query_as("SELECT version, status FROM rm_products WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await
                        .expect("row");
                panic!(
                    "product {id} is 404 through {query}; the fold has {folded}; rm_products has {row:?}; {}",
                    cluster.log(if query == "query" { "projectors" } else { "query-pg" })
                        .lines()
                        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
                        .take(40)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            assert_eq!(page, folded, "product {id} through {query}");
            let search = cluster.url(
                query,
                &format!(
                    "/api/search?q={}&limit=100",
                    view.name.trim_start_matches("Storm ")
                ),
            );
            let found: Value = read_at(&client, &search, &token, head).await;
            let hit = found["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|item| item["id"] == json!(id))
                .cloned();
            let shown = view.status == events::ProductStatus::Published;
            assert_eq!(
                hit.is_some(),
                shown,
                "product {id} in {query}'s search: {found}"
            );
            if let Some(hit) = hit {
                assert_eq!(
                    hit["price_cents"],
                    json!(view.price_cents),
                    "{id} in {query}'s search"
                );
            }
        }
    }
    for query in ["query", "query-pg"] {
        let url = cluster.url(query, "/api/analytics/trending?window=1h&limit=100");
        let trending = read_at(&client, &url, &token, head).await;
        let listed: HashMap<Uuid, i64> = trending["by_sales"]
            .as_array()
            .expect("by_sales")
            .iter()
            .filter_map(|item| {
                Some((
                    item["product_id"].as_str()?.parse().ok()?,
                    item["units_sold"].as_i64()?,
                ))
            })
            .collect();
        if sales.len() <= 100 {
            assert_eq!(listed, sales, "the analytics sales of {query}");
        } else {
            assert!(listed
                .iter()
                .all(|(id, units)| sales.get(id) == Some(units)));
        }
    }
    crate::assert_no_event_applied_twice(&pool).await;
    eprintln!(
        "storm on {}: {} s, {WRITERS} writers, {} products; {} writes, {} took effect, {} answers lost \
         and retried ({} answered from the idempotency record, {} keyed ones answered by running \
         again under the request's claim); kills: command {}, projectors {}, query {}, \
         query-pg {}; outages: redis {}, replica {}, bus {}; head {head}; every view equals the \
         fold of the store",
        if on == StormBus::Kafka { "Kafka (tansu)" } else { "SNS/SQS (moto)" },
        started.elapsed().as_secs(),
        versions.len(),
        counts.writes.load(Ordering::Relaxed),
        counts.effective.load(Ordering::Relaxed),
        counts.lost.load(Ordering::Relaxed),
        counts.replayed.load(Ordering::Relaxed),
        counts.recovered.load(Ordering::Relaxed),
        count(&kills, "command"),
        count(&kills, "projectors"),
        count(&kills, "query"),
        count(&kills, "query-pg"),
        count(&outages, "redis"),
        count(&outages, "replica"),
        count(&outages, "bus"),
    );
}
