//! `catalog-bench sse`: how many `/api/events/stream` clients one query process holds at an
//! event rate. Opens the clients (each a keep-alive connection reading the stream), writes
//! price changes at a steady rate through the command API, and reports per-event delivery lag
//! (from the write's answer to its arrival at each client), events delivered, clients dropped
//! or gapped, and the server's RSS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
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

/// When each written position was answered, shared by the writer and the stream readers.
type Answered = Arc<Mutex<HashMap<u64, Instant>>>;

pub async fn run(args: Args) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    let stream_url = args.stream_url.clone().unwrap_or_else(|| args.url.clone());
    require_loopback(&stream_url)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let token = admin_session(&client, &args.url, &args.email, &args.password).await?;
    let ids = create_products(&client, &args.url, &token).await?;
    let writer = Writer {
        client,
        url: args.url.clone(),
        token,
        ids,
    };
    let after = writer.stream_start().await?;

    let answered: Answered = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(args.seconds) + Duration::from_secs(5);
    let readers = open_streams(
        &stream_url,
        &writer.token,
        args.clients,
        after,
        &answered,
        deadline,
    )
    .await?;
    println!(
        "{} stream clients open at {stream_url}; writing {} events/s for {} s",
        args.clients, args.rate, args.seconds
    );
    let (written, last_position) = writer
        .write_at_rate(args.rate, args.seconds, after, &answered)
        .await;
    let expected = last_position - after;
    let totals = Totals::collect(readers, expected).await;
    let pids = crate::shoppers::server_pids(&args.server_pid);
    let peak: u64 = pids
        .iter()
        .map(|pid| crate::shoppers::rss_kib(*pid, "VmHWM:"))
        .sum();
    println!(
        "{} clients x {expected} events ({written} writes at {} /s): delivered {} of {}, \
         clients dropped {}, with gaps {}, short {}; delivery lag {}; server peak RSS {} MiB",
        args.clients,
        args.rate,
        totals.received,
        expected * args.clients as u64,
        totals.dropped,
        totals.gaps,
        totals.short,
        percentiles(&totals.lags),
        peak / 1024
    );
    Ok(())
}

/// 100 published products in the `bench` category; their ids.
async fn create_products(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> anyhow::Result<Vec<String>> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let items: Vec<Value> = (0..100)
        .map(|index| json!({"sku": format!("SSE-{}-{index}", &tag[..8]), "name": format!("Stream product {index}"),
                            "category": "bench", "price_cents": 1000, "currency": "USD", "stock": 10, "status": "published"}))
        .collect();
    let ids = bulk_create(client, url, token, &items).await?;
    anyhow::ensure!(!ids.is_empty(), "no products created");
    Ok(ids)
}

/// Writes price changes to the products of the run through the command API.
struct Writer {
    client: reqwest::Client,
    url: String,
    token: String,
    ids: Vec<String>,
}

impl Writer {
    /// The position to stream after: the answer to one write.
    async fn stream_start(&self) -> anyhow::Result<u64> {
        let start: Value = self
            .client
            .put(format!("{}/api/products/{}/price", self.url, self.ids[0]))
            .bearer_auth(&self.token)
            .json(&json!({"price_cents": 999, "currency": "USD"}))
            .send()
            .await?
            .json()
            .await?;
        start["position"].as_u64().context("position")
    }

    /// One price change to a random product every 1/rate s for `seconds`, paced by a ticker,
    /// each answer noted in `answered`; how many were written and the highest position
    /// answered (`after` when none was).
    async fn write_at_rate(
        &self,
        rate: u64,
        seconds: u64,
        after: u64,
        answered: &Answered,
    ) -> (u64, u64) {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let write_until = Instant::now() + Duration::from_secs(seconds);
        let mut written = 0u64;
        let mut writes = Vec::new();
        while Instant::now() < write_until {
            ticker.tick().await;
            writes.push(tokio::spawn(self.write_one(answered.clone())));
            written += 1;
        }
        let mut last_position = after;
        for write in writes {
            if let Ok(Some(position)) = write.await {
                last_position = last_position.max(position);
            }
        }
        (written, last_position)
    }

    /// One price change to a random product; its position, once answered.
    fn write_one(&self, answered: Answered) -> impl std::future::Future<Output = Option<u64>> {
        let client = self.client.clone();
        let token = self.token.clone();
        let url = format!(
            "{}/api/products/{}/price",
            self.url,
            self.ids[rand::thread_rng().gen_range(0..self.ids.len())]
        );
        let price = rand::thread_rng().gen_range(100..100_000);
        async move {
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
        }
    }
}

/// Opens `clients` streams after position `after`, each read by a task until `deadline`.
async fn open_streams(
    stream_url: &str,
    token: &str,
    clients: usize,
    after: u64,
    answered: &Answered,
    deadline: Instant,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<ClientReport>>> {
    let mut readers = Vec::with_capacity(clients);
    let stream_client = reqwest::Client::builder().build()?;
    for _ in 0..clients {
        let response = stream_client
            .get(format!("{stream_url}/api/events/stream"))
            .bearer_auth(token)
            .header("Last-Event-ID", after.to_string())
            .send()
            .await?
            .error_for_status()
            .context("open a stream")?;
        readers.push(tokio::spawn(read_stream(
            response,
            after,
            answered.clone(),
            deadline,
        )));
    }
    Ok(readers)
}

/// The reports of every client, added up.
struct Totals {
    received: u64,
    gaps: u64,
    dropped: u64,
    /// Clients that received fewer than the events expected.
    short: u64,
    lags: Histogram<u64>,
}

impl Totals {
    async fn collect(readers: Vec<tokio::task::JoinHandle<ClientReport>>, expected: u64) -> Totals {
        let mut totals = Totals {
            received: 0,
            gaps: 0,
            dropped: 0,
            short: 0,
            lags: histogram(),
        };
        for reader in readers {
            let report = reader.await.unwrap_or_default();
            totals.received += report.received;
            totals.gaps += report.gaps;
            totals.dropped += u64::from(report.dropped);
            if report.received < expected {
                totals.short += 1;
            }
            for lag in report.lags {
                let _ = totals.lags.record(lag.max(1));
            }
        }
        totals
    }
}

/// Reads one stream until `deadline`; lags in microseconds.
async fn read_stream(
    mut response: reqwest::Response,
    mut last: u64,
    answered: Answered,
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
