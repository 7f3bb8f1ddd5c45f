//! `catalog-bench attack`: what a hostile client does to one catalog process, bounded in count
//! and time, on loopback only. Phases, each optional and run at the same time:
//!
//! - a login flood: wrong passwords for one account, in concurrent waves, each request naming
//!   a different client through `X-Forwarded-For` (as through a trusted balancer);
//! - slowloris: connections that send an unfinished request head a byte at a time, from their
//!   own source address (so a per-address cap shows);
//! - made-up methods: requests with random method names.
//!
//! Reports the answers by status, how the slow connections ended (closed by the server, or
//! still open at the end) and the server's peak RSS.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::Mutex;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::report::require_loopback;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The catalog process (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The account whose password is guessed.
    #[arg(long, default_value = "admin@localhost")]
    account: String,
    /// Concurrent wrong guesses per wave of the login flood (0: no flood).
    #[arg(long, default_value_t = 40)]
    login_concurrency: usize,
    /// Waves of the login flood.
    #[arg(long, default_value_t = 5)]
    login_waves: usize,
    /// The loopback address the login flood leaves from (list it in CATALOG_TRUSTED_PROXIES
    /// for its X-Forwarded-For to name the guessing clients).
    #[arg(long, default_value = "127.0.0.10")]
    login_source: IpAddr,
    /// Slow connections to hold (0: none).
    #[arg(long, default_value_t = 300)]
    slowloris: usize,
    /// The loopback address the slow connections leave from.
    #[arg(long, default_value = "127.0.0.9")]
    slowloris_source: IpAddr,
    /// Requests with made-up methods.
    #[arg(long, default_value_t = 50)]
    methods: usize,
    /// How long the attack lasts, in seconds.
    #[arg(long, default_value_t = 40)]
    seconds: u64,
    /// Server process ids to report the peak RSS of [default: every process named catalog].
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
}

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

fn count(counts: &Counts, what: impl Into<String>) {
    *counts.lock().entry(what.into()).or_default() += 1;
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    let parsed = url::Url::parse(&args.url)?;
    let host = parsed.host_str().context("the URL has no host")?.to_owned();
    let port = parsed
        .port_or_known_default()
        .context("the URL has no port")?;
    let target: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .next()
        .context("the URL resolves to nothing")?;
    let pids = crate::shoppers::server_pids(&args.server_pid);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let counts: Counts = Arc::default();
    let started = Instant::now();
    let slow = tokio::spawn(slowloris(
        target,
        args.slowloris_source,
        args.slowloris,
        deadline,
    ));
    let logins = tokio::spawn(login_flood(
        target,
        args.login_source,
        args.account.clone(),
        args.login_concurrency,
        args.login_waves,
        counts.clone(),
    ));
    let methods = tokio::spawn(made_up_methods(
        target,
        args.login_source,
        args.methods,
        counts.clone(),
    ));
    let login_time = logins.await.context("the login flood stopped")?;
    methods.await.context("the method burst stopped")?;
    let slow = slow.await.context("the slow connections stopped")?;
    let peak_rss: u64 = pids
        .iter()
        .map(|pid| crate::shoppers::rss_kib(*pid, "VmHWM:"))
        .sum();
    println!(
        "attack on {target} for {:.1} s (login flood {:.1} s)",
        started.elapsed().as_secs_f64(),
        login_time.as_secs_f64()
    );
    for (what, number) in counts.lock().iter() {
        println!("  {what}: {number}");
    }
    println!(
        "  slow connections: {} opened, {} refused at connect, {} closed by the server \
         (median after {:.1} s), {} answered 503, {} still open at the end",
        slow.opened,
        slow.refused,
        slow.closed.len(),
        median(&slow.closed),
        slow.answered_503,
        slow.open_at_end
    );
    println!(
        "  server peak RSS: {} MiB over {} process(es)",
        peak_rss / 1024,
        pids.len()
    );
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Sends one request on a new connection and returns its status line's code (or what went
/// wrong).
async fn one_request(target: SocketAddr, source: IpAddr, request: String) -> String {
    let exchange = async {
        let mut stream = connect_from(source, target).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut head = vec![0u8; 512];
        let read = stream.read(&mut head).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head[..read]).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(30), exchange).await {
        Err(_) => "no answer within 30 s".to_owned(),
        Ok(Err(error)) => format!("connection error ({})", error.kind()),
        Ok(Ok(head)) if head.is_empty() => "closed without an answer".to_owned(),
        Ok(Ok(head)) => head
            .split_whitespace()
            .nth(1)
            .map_or_else(|| "malformed answer".to_owned(), str::to_owned),
    }
}

async fn login_flood(
    target: SocketAddr,
    source: IpAddr,
    account: String,
    concurrency: usize,
    waves: usize,
    counts: Counts,
) -> Duration {
    let started = Instant::now();
    for _wave in 0..waves {
        let mut guesses = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let (a, b, c): (u8, u8, u8) = {
                let mut random = rand::thread_rng();
                (random.gen(), random.gen(), random.gen_range(1..255))
            };
            let body =
                serde_json::json!({"email": account, "password": format!("guess-{a}{b}{c}")})
                    .to_string();
            let request = format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\n\
                 X-Forwarded-For: 10.{a}.{b}.{c}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let counts = counts.clone();
            guesses.push(tokio::spawn(async move {
                let status = one_request(target, source, request).await;
                count(&counts, format!("login {status}"));
            }));
        }
        for guess in guesses {
            let _ = guess.await;
        }
    }
    started.elapsed()
}

async fn made_up_methods(target: SocketAddr, source: IpAddr, requests: usize, counts: Counts) {
    for _ in 0..requests {
        let method: String = {
            let mut random = rand::thread_rng();
            (0..8)
                .map(|_| char::from(random.gen_range(b'A'..=b'Z')))
                .collect()
        };
        let request = format!(
            "{method} /api/products HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
        );
        let status = one_request(target, source, request).await;
        count(&counts, format!("made-up method {status}"));
    }
}

async fn connect_from(source: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

#[derive(Default)]
struct SlowReport {
    opened: usize,
    refused: usize,
    /// Seconds after opening at which the server closed each closed connection.
    closed: Vec<f64>,
    answered_503: usize,
    open_at_end: usize,
}

async fn slowloris(
    target: SocketAddr,
    source: IpAddr,
    connections: usize,
    deadline: Instant,
) -> SlowReport {
    let report = Arc::new(Mutex::new(SlowReport::default()));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let report = report.clone();
        tasks.push(tokio::spawn(async move {
            let connected = connect_from(source, target);
            let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(5), connected).await
            else {
                report.lock().refused += 1;
                return;
            };
            report.lock().opened += 1;
            let opened = Instant::now();
            let head = format!("GET /api/products HTTP/1.1\r\nHost: {target}\r\nX-Slow: ");
            if stream.write_all(head.as_bytes()).await.is_err() {
                report.lock().closed.push(opened.elapsed().as_secs_f64());
                return;
            }
            let mut buffer = [0u8; 256];
            loop {
                if Instant::now() >= deadline {
                    report.lock().open_at_end += 1;
                    return;
                }
                // A byte every second, never the end of the head.
                let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer));
                match read.await {
                    Err(_) => {
                        if stream.write_all(b"a").await.is_err() {
                            report.lock().closed.push(opened.elapsed().as_secs_f64());
                            return;
                        }
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        report.lock().closed.push(opened.elapsed().as_secs_f64());
                        return;
                    }
                    Ok(Ok(read)) => {
                        if String::from_utf8_lossy(&buffer[..read]).contains(" 503 ") {
                            report.lock().answered_503 += 1;
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut report = report.lock();
    std::mem::take(&mut *report)
}
