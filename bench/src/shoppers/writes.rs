//! The write stream beside a shoppers run (`--writes-per-second`): price changes, deliveries
//! and sales to products of the sample through the command API at a steady rate, and how long
//! each write takes to be visible where shoppers read: at the edge (`--edge-url`, default
//! `--url`) and at a query process (`--direct-url`, default `--url`: its L1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;

use super::Args;
use crate::report::{histogram, percentiles};

/// What the write stream measured.
pub struct WriteReport {
    sent: u64,
    errors: u64,
    refused: u64,
    seconds: f64,
    answered: hdrhistogram::Histogram<u64>,
    edge: hdrhistogram::Histogram<u64>,
    direct: hdrhistogram::Histogram<u64>,
    invisible: u64,
}

impl std::fmt::Display for WriteReport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "writes: {} in {:.0} s ({:.0}/s), {} refused (409, a sale beyond the stock), errors {}; answered {}; visible at the edge {}; in L1 {}; never visible within 10 s: {}",
            self.sent,
            self.seconds,
            self.sent as f64 / self.seconds.max(0.001),
            self.refused,
            self.errors,
            percentiles(&self.answered),
            percentiles(&self.edge),
            percentiles(&self.direct),
            self.invisible,
        )
    }
}

struct Shared {
    client: reqwest::Client,
    args: Args,
    token: String,
    edge: parking_lot::Mutex<hdrhistogram::Histogram<u64>>,
    direct: parking_lot::Mutex<hdrhistogram::Histogram<u64>>,
    invisible: std::sync::atomic::AtomicU64,
}

/// Runs the write stream for `duration`; `None` without `--writes-per-second`.
pub async fn run(args: &Args, duration: Duration) -> anyhow::Result<Option<WriteReport>> {
    if args.writes_per_second == 0 {
        return Ok(None);
    }
    let command = args
        .command_url
        .clone()
        .context("--writes-per-second needs --command-url")?;
    crate::report::require_loopback(&command)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let token = crate::report::login(&client, &command, &args.admin_email, &args.admin_password)
        .await
        .context("log in with --admin-email / --admin-password")?;
    let shared = Arc::new(Shared {
        client,
        args: args.clone(),
        token,
        edge: parking_lot::Mutex::new(histogram()),
        direct: parking_lot::Mutex::new(histogram()),
        invisible: Default::default(),
    });
    let mut answered = histogram();
    let (mut sent, mut errors, mut refused) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.writes_per_second as f64);
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probes = Vec::new();
    let mut random = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    while started.elapsed() < duration {
        ticks.tick().await;
        let id = args
            .products
            .get(random.gen_range(0..args.products.len().max(1)))
            .cloned()
            .unwrap_or_default();
        let (method, path, body) = match random.gen_range(0..10) {
            0..=3 => (
                reqwest::Method::POST,
                "sales",
                serde_json::json!({"quantity": 1}),
            ),
            4..=6 => (
                reqwest::Method::POST,
                "stock",
                serde_json::json!({"delta": random.gen_range(1..20), "reason": "delivery"}),
            ),
            _ => (
                reqwest::Method::PUT,
                "price",
                serde_json::json!({"price_cents": random.gen_range(500..50_000), "currency": "USD"}),
            ),
        };
        let at = Instant::now();
        let answer = shared
            .client
            .request(method, format!("{command}/api/products/{id}/{path}"))
            .bearer_auth(&shared.token)
            .json(&body)
            .send()
            .await;
        sent += 1;
        let answer = match answer {
            Ok(response) if response.status() == reqwest::StatusCode::CONFLICT => {
                refused += 1;
                continue;
            }
            Ok(response) if response.status().is_success() => response,
            _ => {
                errors += 1;
                continue;
            }
        };
        let _ = answered.record(at.elapsed().as_micros().max(1) as u64);
        let Ok(written) = answer.json::<serde_json::Value>().await else {
            errors += 1;
            continue;
        };
        let Some(version) = written["version"].as_u64() else {
            errors += 1;
            continue;
        };
        probes.push(tokio::spawn(probe(shared.clone(), id, version, at)));
    }
    let seconds = started.elapsed().as_secs_f64();
    for probe in probes {
        let _ = probe.await;
    }
    let edge = shared.edge.lock().clone();
    let direct = shared.direct.lock().clone();
    Ok(Some(WriteReport {
        sent,
        errors,
        refused,
        seconds,
        answered,
        edge,
        direct,
        invisible: shared.invisible.load(std::sync::atomic::Ordering::SeqCst),
    }))
}

/// Polls the product at `--url` and `--direct-url` until each shows `version`.
async fn probe(shared: Arc<Shared>, id: String, version: u64, written: Instant) {
    let args = &shared.args;
    let edge = args.edge_url.clone().unwrap_or_else(|| args.url.clone());
    let direct = args.direct_url.clone().unwrap_or_else(|| args.url.clone());
    let targets = [(edge, &shared.edge), (direct, &shared.direct)];
    for (base, lags) in targets {
        let url = format!("{base}/api/products/{id}");
        loop {
            let seen = match shared.client.get(&url).send().await {
                Ok(response) => response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|product| product["version"].as_u64())
                    .unwrap_or(0),
                Err(_) => 0,
            };
            if seen >= version {
                let _ = lags
                    .lock()
                    .record(written.elapsed().as_micros().max(1) as u64);
                break;
            }
            if written.elapsed() > Duration::from_secs(10) {
                shared
                    .invisible
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
