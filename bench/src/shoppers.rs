//! `catalog-bench shoppers`: simulated shoppers. Each user is one keep-alive HTTP/1.1
//! connection that browses (product pages, category listings, categories, bestsellers, and
//! search once the service has it) with a think time between requests.
//!
//! A process may hold at most 20,000 open files here, so the tool forks `--workers` processes
//! (each holding `users / workers` connections) and merges their HdrHistograms. Connections
//! leave from `--source-addresses` loopback addresses in turn (127.0.0.1–127.0.0.8 by
//! default), so the ephemeral ports of one source address do not run out. Only loopback
//! targets are accepted; the run is bounded by `--seconds`.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::report::{histogram, percentiles, require_loopback};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Mix {
    /// Product pages, listings, categories, bestsellers (and search with --search).
    Browse,
    /// Only product pages.
    Product,
    /// Only category listings.
    Listing,
    /// Only `/api/search`: 1–3 words from product names, half of them with a typo.
    Search,
    /// Only `--path`.
    Path,
}

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
/// Simulated shoppers on keep-alive connections, over several processes.
pub struct Args {
    /// The query API (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    pub url: String,
    /// Concurrent users, each on a connection of its own.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Processes to spread the users over (at most about 18,000 connections each).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// How long to measure, after the ramp-up.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Seconds over which users connect.
    #[arg(long, default_value_t = 5)]
    pub ramp_seconds: u64,
    /// Mean think time between a user's requests (0: closed loop, as fast as answers come).
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    #[arg(long, value_enum, default_value_t = Mix::Browse)]
    pub mix: Mix,
    /// The path `--mix path` requests.
    #[arg(long, default_value = "/api/categories")]
    pub path: String,
    /// Include `/api/search` in the browse mix.
    #[arg(long)]
    pub search: bool,
    /// Source addresses to spread connections over: 127.0.0.1 to 127.0.0.N.
    #[arg(long, default_value_t = 8)]
    pub source_addresses: u8,
    /// Server processes whose peak RSS to report (pids, comma-separated); default: every
    /// process named `catalog`.
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    #[arg(skip)]
    pub worker_index: usize,
    #[arg(skip)]
    pub products: Vec<String>,
    #[arg(skip)]
    pub categories: Vec<String>,
    #[arg(skip)]
    pub searches: Vec<String>,
}

/// What one worker reports.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerReport {
    requests: u64,
    errors: u64,
    connected_peak: usize,
    connected_at_end: usize,
    histogram: String,
}

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    let (products, categories, names) = catalog_sample(&args.url).await?;
    args.products = products;
    args.categories = categories;
    args.searches = searches(&names);
    let workers = args.workers.max(1);
    let config_file =
        std::env::temp_dir().join(format!("catalog-bench-{}.json", std::process::id()));
    let mut children = Vec::new();
    for index in 0..workers {
        let mut worker = args.clone();
        worker.worker_index = index;
        worker.users = args.users / workers + usize::from(index < args.users % workers);
        let path = config_file.with_extension(format!("{index}.json"));
        std::fs::write(&path, serde_json::to_vec(&worker)?)?;
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("shoppers-worker")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start a worker process")?;
        children.push((child, path));
    }
    let pids = server_pids(&args.server_pids);
    let mut peak_rss = 0u64;
    let mut merged = histogram();
    let (mut requests, mut errors, mut peak, mut at_end) = (0u64, 0u64, 0usize, 0usize);
    for (child, path) in children {
        let output = child.wait_with_output().await?;
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&output.stdout);
        let report: WorkerReport = text
            .lines()
            .last()
            .and_then(|line| serde_json::from_str(line).ok())
            .with_context(|| format!("a worker did not report ({})", output.status))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(&report.histogram)?;
        let histogram: hdrhistogram::Histogram<u64> =
            Deserializer::new().deserialize(&mut bytes.as_slice())?;
        merged.add(&histogram)?;
        requests += report.requests;
        errors += report.errors;
        peak += report.connected_peak;
        at_end += report.connected_at_end;
    }
    for pid in &pids {
        peak_rss += rss_kib(*pid, "VmHWM:");
    }
    println!(
        "{} users ({} workers, think {} ms, mix {:?}) for {} s: {:.0} requests/s, {}, errors {errors}, connections held {at_end} (peak {peak}), server peak RSS {:.0} MiB over {} processes",
        args.users,
        workers,
        args.think_ms,
        args.mix,
        args.seconds,
        requests as f64 / args.seconds as f64,
        percentiles(&merged),
        peak_rss as f64 / 1024.0,
        pids.len()
    );
    Ok(())
}

/// Search texts from product names: 1–3 words; every other one with a typo (two adjacent
/// letters swapped in a word of five letters or more).
fn searches(names: &[String]) -> Vec<String> {
    let mut random = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let mut out = Vec::new();
    for (index, name) in names.iter().enumerate().take(1_000) {
        let words: Vec<&str> = name
            .split_whitespace()
            .filter(|word| word.chars().all(char::is_alphabetic))
            .collect();
        if words.is_empty() {
            continue;
        }
        let count = random.gen_range(1..=3.min(words.len()));
        let start = random.gen_range(0..=words.len() - count);
        let mut chosen: Vec<String> = words[start..start + count]
            .iter()
            .map(|word| word.to_lowercase())
            .collect();
        if index % 2 == 1 {
            if let Some(word) = chosen.iter_mut().find(|word| word.chars().count() >= 5) {
                let mut letters: Vec<char> = word.chars().collect();
                let at = random.gen_range(1..letters.len() - 1);
                letters.swap(at, at + 1);
                *word = letters.into_iter().collect();
            }
        }
        out.push(chosen.join(" "));
    }
    out
}

/// Product ids, category slugs and product names to browse.
async fn catalog_sample(url: &str) -> anyhow::Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let client = reqwest::Client::new();
    let categories: serde_json::Value = client
        .get(format!("{url}/api/categories"))
        .send()
        .await?
        .json()
        .await
        .unwrap_or_default();
    let categories: Vec<String> = categories["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["slug"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut products = Vec::new();
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    while products.len() < 2_000 {
        let mut request = client
            .get(format!("{url}/api/products"))
            .query(&[("limit", "100")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let page: serde_json::Value = request.send().await?.json().await.unwrap_or_default();
        for item in page["items"].as_array().into_iter().flatten() {
            if let Some(id) = item["id"].as_str() {
                products.push(id.to_owned());
            }
            if let Some(name) = item["name"].as_str() {
                names.push(name.to_owned());
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok((products, categories, names))
}

pub(crate) fn server_pids(given: &[u32]) -> Vec<u32> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == "catalog")
        })
        .collect()
}

/// A `/proc/<pid>/status` line in KiB (VmHWM: the process's peak resident set).
pub(crate) fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// The worker process: holds its users' connections and reports one JSON line.
pub async fn worker(config: std::path::PathBuf) -> anyhow::Result<()> {
    let args: Args = serde_json::from_slice(&std::fs::read(&config)?)?;
    let target = resolve(&args.url).await?;
    let ramp = Duration::from_secs(args.ramp_seconds);
    let measure_from = Instant::now() + ramp;
    let window = Window {
        from: measure_from,
        until: measure_from + Duration::from_secs(args.seconds),
    };
    let worker = Arc::new(Worker {
        host_header: format!("{}:{}", target.ip(), target.port()),
        target,
        window,
        counters: Counters::new(),
        args,
    });
    let tasks: Vec<_> = (0..worker.args.users)
        .map(|user| tokio::spawn(worker.clone().user(user, ramp)))
        .collect();
    let mut connected_at_end = 0;
    for task in tasks {
        if let Ok(held) = task.await {
            connected_at_end += usize::from(held);
        }
    }
    let report = worker.counters.report(connected_at_end)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The first address `url` resolves to.
async fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let parsed = url::Url::parse(url)?;
    let host = parsed.host_str().context("host")?.to_owned();
    let port = parsed.port_or_known_default().context("port")?;
    let mut addresses = tokio::net::lookup_host((host.as_str(), port)).await?;
    addresses.next().context("address")
}

/// When requests count: sent from the end of the ramp-up until the end of the run.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    fn contains(&self, at: Instant) -> bool {
        at >= self.from && at < self.until
    }
}

/// One worker process: what its users share.
struct Worker {
    args: Args,
    target: SocketAddr,
    host_header: String,
    window: Window,
    counters: Counters,
}

impl Worker {
    /// User number `user`: starts at its share of the ramp-up, from its source address in turn.
    async fn user(self: Arc<Self>, user: usize, ramp: Duration) -> bool {
        let users = self.args.users;
        let delay = if users > 1 {
            ramp.mul_f64(user as f64 / users as f64)
        } else {
            Duration::ZERO
        };
        let source = IpAddr::from([
            127,
            0,
            0,
            1 + ((user + self.args.worker_index) % self.args.source_addresses.max(1) as usize)
                as u8,
        ]);
        tokio::time::sleep(delay).await;
        self.shopper(source).await
    }

    /// One user: connect, then request and think until the end. Returns whether its
    /// connection was still open at the end.
    async fn shopper(&self, source: IpAddr) -> bool {
        let mut sender = None;
        let mut random = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
        // The first request comes after a random part of a think time, so users do not march
        // in step.
        if self.args.think_ms > 0 {
            let first = random.gen_range(0..self.args.think_ms.max(1));
            tokio::time::sleep(Duration::from_millis(first)).await;
        }
        while Instant::now() < self.window.until {
            if sender.is_none() {
                sender = self.connect(source).await;
                if sender.is_none() {
                    continue;
                }
            }
            let Some(connection) = sender.as_mut() else {
                continue;
            };
            let path = next_path(&self.args, &mut random);
            let request = hyper::Request::get(&path)
                .header(hyper::header::HOST, &self.host_header)
                .body(Empty::<Bytes>::new());
            let Ok(request) = request else { continue };
            let sent = Instant::now();
            let outcome = send(connection, request).await;
            if !self.counters.record(outcome, sent, self.window) {
                sender = None;
            }
            self.think(&mut random).await;
        }
        sender.is_some()
    }

    /// A new connection from `source`, counted; `None` (after a pause) when it failed.
    async fn connect(&self, source: IpAddr) -> Option<Sender> {
        match connect(source, self.target).await {
            Ok(connection) => {
                self.counters.connection_opened();
                Some(connection)
            }
            Err(_) => {
                if Instant::now() >= self.window.from {
                    self.counters.errors.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                None
            }
        }
    }

    /// Exponential think times with the given mean (none with `--think-ms 0`), never past the
    /// end of the run.
    async fn think(&self, random: &mut impl Rng) {
        let think_ms = self.args.think_ms;
        if think_ms == 0 {
            return;
        }
        let u: f64 = random.gen_range(f64::EPSILON..1.0);
        let think = (-(u.ln()) * think_ms as f64) as u64;
        let wake = Instant::now() + Duration::from_millis(think.min(think_ms * 5));
        tokio::time::sleep_until(wake.min(self.window.until).into()).await;
    }
}

/// Sends one request and reads its whole body; the status.
async fn send(
    connection: &mut Sender,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::StatusCode, hyper::Error> {
    connection.ready().await?;
    let response = connection.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// What the users of one worker process count. One histogram per process: one per user would
/// cost tens of KB each.
struct Counters {
    connected: AtomicUsize,
    peak: AtomicUsize,
    requests: AtomicU64,
    errors: AtomicU64,
    latencies: parking_lot::Mutex<hdrhistogram::Histogram<u64>>,
}

impl Counters {
    fn new() -> Self {
        Counters {
            connected: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latencies: parking_lot::Mutex::new(histogram()),
        }
    }

    fn connection_opened(&self) {
        let now = self.connected.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    /// Counts a request sent at `sent` if the window holds it (an answer other than 2xx or 304
    /// is an error); returns whether its connection is still usable.
    fn record(
        &self,
        outcome: Result<hyper::StatusCode, hyper::Error>,
        sent: Instant,
        window: Window,
    ) -> bool {
        let measuring = window.contains(sent);
        match outcome {
            Ok(status) if status.is_success() || status == hyper::StatusCode::NOT_MODIFIED => {
                if measuring {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let _ = self
                        .latencies
                        .lock()
                        .record(sent.elapsed().as_micros().max(1) as u64);
                }
                true
            }
            Ok(_) => {
                if measuring {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Err(_) => {
                if measuring {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
                self.connected.fetch_sub(1, Ordering::SeqCst);
                false
            }
        }
    }

    fn report(&self, connected_at_end: usize) -> anyhow::Result<WorkerReport> {
        let merged = self.latencies.lock().clone();
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&merged, &mut bytes)?;
        Ok(WorkerReport {
            requests: self.requests.load(Ordering::SeqCst),
            errors: self.errors.load(Ordering::SeqCst),
            connected_peak: self.peak.load(Ordering::SeqCst),
            connected_at_end,
            histogram: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }
}

/// One of `items` at random (an empty string when there is none).
fn pick(items: &[String], random: &mut dyn rand::RngCore) -> String {
    items
        .get(random.gen_range(0..items.len().max(1)))
        .cloned()
        .unwrap_or_default()
}

fn next_path(args: &Args, random: &mut impl Rng) -> String {
    let product = |random: &mut dyn rand::RngCore| {
        let id = pick(&args.products, random);
        format!("/api/products/{id}")
    };
    let listing = |random: &mut dyn rand::RngCore| {
        let category = pick(&args.categories, random);
        let sort =
            ["newest", "price_asc", "price_desc", "bestselling", "name"][random.gen_range(0..5)];
        format!("/api/products?category={category}&sort={sort}&limit=20")
    };
    let search = |random: &mut dyn rand::RngCore| {
        let text = pick(&args.searches, random);
        format!("/api/search?q={}", text.replace(' ', "%20"))
    };
    match args.mix {
        Mix::Search => search(random),
        Mix::Product => product(random),
        Mix::Listing => listing(random),
        Mix::Path => args.path.clone(),
        Mix::Browse => {
            let roll = random.gen_range(0..100);
            match roll {
                0..=54 => product(random),
                55..=84 => listing(random),
                85..=89 => "/api/categories".to_owned(),
                90..=94 => "/api/products/bestsellers?limit=10".to_owned(),
                _ if args.search => search(random),
                _ => product(random),
            }
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(source: IpAddr, target: SocketAddr) -> anyhow::Result<Sender> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // Pick the port at connect(), not at bind(): bind() with port 0 searches the whole bind
    // table for a free port, which at tens of thousands of sockets costs the kernel most of
    // the machine; connect() only needs the 4-tuple to be unique.
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(target)).await??;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
