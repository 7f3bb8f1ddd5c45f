//! Sales on one product through a running command API:
//!
//! - `history`: sequential sales (one client) on products with 0, 10,000, 100,000… events of
//!   history: whether a command's cost grows with the product's history.
//! - `flash-sale`: many buyers of one product until it is sold out, then a check that exactly
//!   the stock was sold (every further attempt a 409, stock never below zero) and that the
//!   read side (`GET /api/products/{id}` on a query API) says the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::report::{admin_session, bulk_create, histogram, percentiles, require_loopback};

#[derive(Debug, clap::Args)]
/// Sequential sales on one product at several lengths of history.
pub struct HistoryArgs {
    /// The command API (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    #[arg(long, env = "CATALOG_ADMIN_EMAIL")]
    email: String,
    #[arg(long, env = "CATALOG_ADMIN_PASSWORD")]
    password: String,
    /// Lengths of history (events before the measured sales), one product each.
    #[arg(long, value_delimiter = ',', default_value = "0,10000,100000")]
    history: Vec<u64>,
    /// Sequential sales measured per length.
    #[arg(long, default_value_t = 500)]
    samples: usize,
    /// Concurrent clients that build the history (sales of one unit).
    #[arg(long, default_value_t = 64)]
    fill_clients: usize,
}

#[derive(Debug, clap::Args)]
/// Buyers of one product until it is sold out; checks the sale was exact.
pub struct FlashSaleArgs {
    /// The command API (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// A query API to check the read side against (loopback only); none: only the answers.
    #[arg(long)]
    query_url: Option<String>,
    #[arg(long, env = "CATALOG_ADMIN_EMAIL")]
    email: String,
    #[arg(long, env = "CATALOG_ADMIN_PASSWORD")]
    password: String,
    /// Units in stock at the start.
    #[arg(long, default_value_t = 50_000)]
    stock: i64,
    /// Concurrent buyers, each buying one unit at a time.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Attempts each buyer makes after its first refusal (all must be refused too).
    #[arg(long, default_value_t = 5)]
    after_sold_out: usize,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        .build()?)
}

/// One published product in the `bench` category with `stock` units; its id.
async fn one_product(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    stock: i64,
) -> anyhow::Result<String> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let item = json!({"sku": format!("SALE-{}", &tag[..12]), "name": "Flash sale product",
                      "category": "bench", "price_cents": 1000, "currency": "USD",
                      "stock": stock, "status": "published"});
    bulk_create(client, url, token, &[item])
        .await?
        .pop()
        .context("no product created")
}

/// The answer to one sale of one unit: its status and, when accepted, its position.
async fn sell(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    id: &str,
) -> anyhow::Result<(StatusCode, u64)> {
    let response = client
        .post(format!("{url}/api/products/{id}/sales"))
        .bearer_auth(token)
        .json(&json!({"quantity": 1}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body["position"].as_u64().unwrap_or(0)))
}

pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    let client = client()?;
    let token = admin_session(&client, &args.url, &args.email, &args.password).await?;
    println!(
        "sequential sales on one product at {} ({} per length, {} clients fill the history)",
        args.url, args.samples, args.fill_clients
    );
    let mut first_p50 = None;
    for length in &args.history {
        let stock = 1_000_000_000;
        let id = one_product(&client, &args.url, &token, stock).await?;
        let filled = Instant::now();
        fill(&client, &args.url, &token, &id, *length, args.fill_clients).await?;
        let fill_seconds = filled.elapsed().as_secs_f64();
        let mut latencies = histogram();
        for _ in 0..args.samples {
            let sent = Instant::now();
            let (status, _) = sell(&client, &args.url, &token, &id).await?;
            anyhow::ensure!(status == StatusCode::OK, "a sale was answered {status}");
            latencies.record(sent.elapsed().as_micros() as u64)?;
        }
        let p50 = latencies.value_at_quantile(0.5) as f64;
        let ratio = p50 / *first_p50.get_or_insert(p50);
        println!(
            "{length:>7} events of history: {}  ({ratio:.2}× the first p50; history built in {fill_seconds:.1} s)",
            percentiles(&latencies)
        );
    }
    Ok(())
}

/// `count` sales of one unit on `id`, from `clients` concurrent clients.
async fn fill(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    id: &str,
    count: u64,
    clients: usize,
) -> anyhow::Result<()> {
    let remaining = Arc::new(std::sync::atomic::AtomicI64::new(count as i64));
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (client, url, token, id) = (
                client.clone(),
                url.to_owned(),
                token.to_owned(),
                id.to_owned(),
            );
            let remaining = remaining.clone();
            tokio::spawn(async move {
                while remaining.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                    let (status, _) = sell(&client, &url, &token, &id).await?;
                    anyhow::ensure!(status == StatusCode::OK, "a sale was answered {status}");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// What one buyer saw.
#[derive(Default)]
struct Buyer {
    latencies: Option<Histogram<u64>>,
    sold: u64,
    refused_after: u64,
    /// Sales accepted after this buyer's first refusal: must stay 0.
    sold_after_refusal: u64,
    other: u64,
    last_position: u64,
}

pub async fn flash_sale(args: FlashSaleArgs) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    if let Some(query) = &args.query_url {
        require_loopback(query)?;
    }
    let client = client()?;
    let token = admin_session(&client, &args.url, &args.email, &args.password).await?;
    let id = one_product(&client, &args.url, &token, args.stock).await?;
    println!(
        "flash sale of {} units of {id} to {} buyers at {}",
        args.stock, args.clients, args.url
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients.max(1))
        .map(|_| {
            let (client, url, token, id) =
                (client.clone(), args.url.clone(), token.clone(), id.clone());
            let after_sold_out = args.after_sold_out;
            tokio::spawn(
                async move { buy_until_sold_out(client, url, token, id, after_sold_out).await },
            )
        })
        .collect();
    let mut merged = histogram();
    let mut total = Buyer::default();
    for task in tasks {
        let buyer = task.await??;
        if let Some(latencies) = &buyer.latencies {
            merged.add(latencies)?;
        }
        total.sold += buyer.sold;
        total.refused_after += buyer.refused_after;
        total.sold_after_refusal += buyer.sold_after_refusal;
        total.other += buyer.other;
        total.last_position = total.last_position.max(buyer.last_position);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{:>8.0} sales/s over {elapsed:.1} s ({} attempts)  {}",
        total.sold as f64 / elapsed,
        merged.len(),
        percentiles(&merged)
    );
    println!(
        "sold {} of {}; refused with 409 {}; sold after a refusal {}; other answers {}",
        total.sold, args.stock, total.refused_after, total.sold_after_refusal, total.other
    );
    let mut exact =
        total.sold == args.stock as u64 && total.sold_after_refusal == 0 && total.other == 0;
    if let Some(query) = &args.query_url {
        let product = read_after(&client, query, &id, total.last_position).await?;
        println!(
            "read side at position {}: stock {}, sales {}",
            total.last_position, product["stock"], product["sales"]
        );
        exact &=
            product["stock"].as_i64() == Some(0) && product["sales"].as_i64() == Some(args.stock);
    }
    anyhow::ensure!(exact, "the flash sale was NOT exact");
    println!("exact: every unit sold once, every further attempt refused");
    Ok(())
}

/// `GET /api/products/{id}` once the views applied `position`: a 503 (the wait of
/// `X-Min-Position` ran out while the projectors catch up) is asked again, for up to 5 minutes.
async fn read_after(
    client: &reqwest::Client,
    query: &str,
    id: &str,
    position: u64,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let response = client
            .get(format!("{query}/api/products/{id}"))
            .header("X-Min-Position", position.to_string())
            .send()
            .await?;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        return Ok(response.error_for_status()?.json().await?);
    }
}

async fn buy_until_sold_out(
    client: reqwest::Client,
    url: String,
    token: String,
    id: String,
    after_sold_out: usize,
) -> anyhow::Result<Buyer> {
    let mut buyer = Buyer {
        latencies: Some(histogram()),
        ..Buyer::default()
    };
    let mut refusals_left: Option<usize> = None;
    loop {
        let sent = Instant::now();
        let (status, position) = sell(&client, &url, &token, &id).await?;
        if let Some(latencies) = buyer.latencies.as_mut() {
            latencies.record(sent.elapsed().as_micros() as u64)?;
        }
        match status {
            StatusCode::OK if refusals_left.is_some() => buyer.sold_after_refusal += 1,
            StatusCode::OK => {
                buyer.sold += 1;
                buyer.last_position = buyer.last_position.max(position);
            }
            StatusCode::CONFLICT => {
                buyer.refused_after += 1;
                let left = refusals_left.get_or_insert(after_sold_out);
                if *left == 0 {
                    return Ok(buyer);
                }
                *left -= 1;
            }
            _ => {
                buyer.other += 1;
                anyhow::ensure!(buyer.other < 100, "100 sales answered neither 200 nor 409");
            }
        }
    }
}
