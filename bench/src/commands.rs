//! `catalog-bench commands`: closed-loop clients sending price changes (no `If-Match`) to random
//! products of a running command API, one client count after another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::{json, Value};

use crate::report::{admin_session, bulk_create, histogram, percentiles, require_loopback};

#[derive(Debug, clap::Args)]
/// Commands per second through a running command API.
pub struct Args {
    /// The command API (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    #[arg(long, env = "CATALOG_ADMIN_EMAIL")]
    email: String,
    #[arg(long, env = "CATALOG_ADMIN_PASSWORD")]
    password: String,
    /// Client counts to run, one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per client count.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Products the commands spread over (created first, in one bulk request per 1,000).
    #[arg(long, default_value_t = 1000)]
    products: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;
    let token = admin_session(&client, &args.url, &args.email, &args.password).await?;
    let ids = Arc::new(create_products(&client, &args.url, &token, args.products).await?);
    println!(
        "price changes to {} products at {}, {} s per client count",
        ids.len(),
        args.url,
        args.seconds
    );
    let target = Target {
        client,
        url: args.url.clone(),
        token,
        ids,
    };
    for clients in &args.clients {
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..*clients)
            .map(|_| tokio::spawn(target.clone().price_changes_until(deadline)))
            .collect();
        let mut merged = histogram();
        let mut errors = 0;
        for task in tasks {
            let (latencies, task_errors) = task.await?;
            merged.add(&latencies)?;
            errors += task_errors;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{clients:>3} clients: {:>8.0} commands/s  {}  errors {errors}",
            merged.len() as f64 / elapsed,
            percentiles(&merged)
        );
    }
    Ok(())
}

/// `count` published products in the `bench` category, in one bulk request per 1,000; their
/// ids.
async fn create_products(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let run_tag = uuid::Uuid::new_v4().simple().to_string();
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let items: Vec<Value> = chunk
            .iter()
            .map(|index| {
                json!({"sku": format!("BENCH-{}-{index}", &run_tag[..8]), "name": format!("Bench product {index}"),
                       "category": "bench", "price_cents": 1000, "currency": "USD", "stock": 100,
                       "status": "published"})
            })
            .collect();
        ids.extend(bulk_create(client, url, token, &items).await?);
    }
    Ok(ids)
}

/// What one client needs to send price changes.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    url: String,
    token: String,
    ids: Arc<Vec<String>>,
}

impl Target {
    /// One client's closed loop: a price change to a random product, sent when the last one
    /// was answered, until `deadline`; the latencies of the successes and the count of failures.
    async fn price_changes_until(self, deadline: Instant) -> (Histogram<u64>, u64) {
        let mut latencies = histogram();
        let mut errors = 0u64;
        while Instant::now() < deadline {
            let (id, price) = {
                let mut random = rand::thread_rng();
                (
                    self.ids[random.gen_range(0..self.ids.len())].clone(),
                    random.gen_range(100..100_000),
                )
            };
            let sent = Instant::now();
            let answer = self
                .client
                .put(format!("{}/api/products/{id}/price", self.url))
                .bearer_auth(&self.token)
                .json(&json!({"price_cents": price, "currency": "USD"}))
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => {
                    let _ = latencies.record(sent.elapsed().as_micros() as u64);
                }
                _ => errors += 1,
            }
        }
        (latencies, errors)
    }
}
