//! `catalog-bench sse`: how many `/api/events/stream` clients one query process holds at an
//! event rate. Opens the clients (each a keep-alive connection reading the stream), writes
//! price changes at a steady rate through the command API, and reports per-event delivery lag
//! (from the write's answer to its arrival at each client), events delivered, clients dropped
//! or gapped, and the server's RSS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{json, Value};

use crate::report::{admin_session, bulk_create, histogram, percentiles, require_loopback};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The catalog (the all-in-one process, or command-api; loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The query process to stream from [default: --url].
    #[arg(long)]
    stream_url: Option<String>,
    #[arg(long, env = "CATALOG_ADMIN_EMAIL")]
    email: String,
    #[arg(long, env = "CATALOG_ADMIN_PASSWORD")]
    password: String,
    /// Concurrent stream clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Events written per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of writing.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Server process ids to report RSS of [default: every process named catalog].
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
}

#[derive(Default)]
struct ClientReport {
    received: u64,
    gaps: u64,
    dropped: bool,
    lags: Vec<u64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    let stream_url = args.stream_url.clone().unwrap_or_else(|| args.url.clone());
    require_loopback(&stream_url)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let token = admin_session(&client, &args.url, &args.email, &args.password).await?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let items: Vec<Value> = (0..100)
        .map(|index| json!({"sku": format!("SSE-{}-{index}", &tag[..8]), "name": format!("Stream product {index}"),
                            "category": "bench", "price_cents": 1000, "currency": "USD", "stock": 10, "status": "published"}))
        .collect();
    let ids = bulk_create(&client, &args.url, &token, &items).await?;
    anyhow::ensure!(!ids.is_empty(), "no products created");
    // The position to stream after: the answer to one write.
    let start: Value = client
        .put(format!("{}/api/products/{}/price", args.url, ids[0]))
        .bearer_auth(&token)
        .json(&json!({"price_cents": 999, "currency": "USD"}))
        .send()
        .await?
        .json()
        .await?;
    let after = start["position"].as_u64().context("position")?;

    let answered: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(args.seconds) + Duration::from_secs(5);
    let mut readers = Vec::with_capacity(args.clients);
    let stream_client = reqwest::Client::builder().build()?;
    for _ in 0..args.clients {
        let response = stream_client
            .get(format!("{stream_url}/api/events/stream"))
            .bearer_auth(&token)
            .header("Last-Event-ID", after.to_string())
            .send()
            .await?
            .error_for_status()
            .context("open a stream")?;
        let answered = answered.clone();
        readers.push(tokio::spawn(read_stream(
            response, after, answered, deadline,
        )));
    }
    println!(
        "{} stream clients open at {stream_url}; writing {} events/s for {} s",
        args.clients, args.rate, args.seconds
    );

    // The writer: one price change every 1/rate s, paced by a ticker.
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(1) as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let write_until = Instant::now() + Duration::from_secs(args.seconds);
    let mut written = 0u64;
    let mut last_position = after;
    let mut writes = Vec::new();
    while Instant::now() < write_until {
        ticker.tick().await;
        let client = client.clone();
        let token = token.clone();
        let url = format!(
            "{}/api/products/{}/price",
            args.url,
            ids[rand::thread_rng().gen_range(0..ids.len())]
        );
        let answered = answered.clone();
        let price = rand::thread_rng().gen_range(100..100_000);
        writes.push(tokio::spawn(async move {
            let answer: Value = client
                .put(url)
                .bearer_auth(token)
                .json(&json!({"price_cents": price, "currency": "USD"}))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let position = answer["position"].as_u64()?;
            answered.lock().insert(position, Instant::now());
            Some(position)
        }));
        written += 1;
    }
    for write in writes {
        if let Ok(Some(position)) = write.await {
            last_position = last_position.max(position);
        }
    }
    let expected = last_position - after;
    let mut lags = histogram();
    let (mut received, mut gaps, mut dropped, mut short) = (0u64, 0u64, 0u64, 0u64);
    for reader in readers {
        let report = reader.await.unwrap_or_default();
        received += report.received;
        gaps += report.gaps;
        dropped += u64::from(report.dropped);
        if report.received < expected {
            short += 1;
        }
        for lag in report.lags {
            let _ = lags.record(lag.max(1));
        }
    }
    let pids = crate::shoppers::server_pids(&args.server_pid);
    let peak: u64 = pids
        .iter()
        .map(|pid| crate::shoppers::rss_kib(*pid, "VmHWM:"))
        .sum();
    println!(
        "{} clients x {expected} events ({written} writes at {} /s): delivered {received} of {}, \
         clients dropped {dropped}, with gaps {gaps}, short {short}; delivery lag {}; server peak RSS {} MiB",
        args.clients,
        args.rate,
        expected * args.clients as u64,
        percentiles(&lags),
        peak / 1024
    );
    Ok(())
}

/// Reads one stream until `deadline`; lags in microseconds.
async fn read_stream(
    mut response: reqwest::Response,
    mut last: u64,
    answered: Arc<Mutex<HashMap<u64, Instant>>>,
    deadline: Instant,
) -> ClientReport {
    let mut report = ClientReport::default();
    let mut buffer = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            _ => return report,
        };
        let now = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.contains("event: dropped") {
                report.dropped = true;
                return report;
            }
            let Some(id) = block
                .lines()
                .find_map(|line| line.strip_prefix("id:"))
                .and_then(|id| id.trim().parse::<u64>().ok())
            else {
                continue;
            };
            if id != last + 1 {
                report.gaps += 1;
            }
            last = id;
            report.received += 1;
            if let Some(at) = answered.lock().get(&id) {
                report
                    .lags
                    .push(now.saturating_duration_since(*at).as_micros() as u64);
            }
        }
    }
}
