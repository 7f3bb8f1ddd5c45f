//! `catalog-bench shoppers`: simulated shoppers. Each user is one keep-alive HTTP/1.1
//! connection that browses (product pages, category listings, categories, bestsellers,
//! search and autocomplete) with a think time between requests.
//!
//! The search mixes draw from a vocabulary built from the catalog sample ([`queries`]): Zipf
//! over all of it (`search`), over its head only (`search-head`), a tail that never repeats
//! (`search-tail`), or prefixes for autocomplete (`suggest`). `--mix` takes several mixes, run
//! one after another against the same server, so that one run compares them (a table at the
//! end); the report counts the distinct queries each mix sent and the share of repeats.
//!
//! A process may hold at most 20,000 open files here, so the tool forks `--workers` processes
//! (each holding `users / workers` connections) and merges their HdrHistograms. Connections
//! leave from `--source-addresses` loopback addresses in turn (127.0.0.1–127.0.0.8 by
//! default), so the ephemeral ports of one source address do not run out. Only loopback
//! targets are accepted; the run is bounded by `--seconds`.

mod queries;
mod realistic;
mod worker;
mod writes;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
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
use queries::{Named, Query, Searches};
use worker::{Counters, Window, Worker};

/// What the users of a run request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Mix {
    /// Product pages, listings, categories, bestsellers (and search with --search).
    #[default]
    Browse,
    /// Only product pages.
    Product,
    /// Only category listings.
    Listing,
    /// Only /api/search: queries of the catalog's vocabulary drawn Zipf-distributed
    /// (--zipf-s), --typo-share of them with a typo; head queries repeat, the tail rarely.
    Search,
    /// Only /api/search: the top --head queries of the vocabulary, Zipf-drawn, as written (no
    /// typos): cache-friendly.
    SearchHead,
    /// Only /api/search: a query never sent before in the run (3 or more words of the
    /// catalog), --typo-share of them with a typo: the uncached long tail.
    SearchTail,
    /// Only /api/search/suggest: a Zipf-drawn vocabulary query cut at 2 or more letters of
    /// its last word, as a shopper typing.
    Suggest,
    /// Only `--path`.
    Path,
    /// What a storefront's shoppers ask for, in proportion: product pages (Zipf-drawn),
    /// listings, filtered listings, categories, bestsellers, searches (Zipf, with typos) and
    /// suggestions, each measured on its own; see `realistic.rs`. With --writes-per-second a
    /// write stream runs beside it.
    Realistic,
}

impl Mix {
    /// The name `--mix` takes.
    fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default()
    }

    /// Whether the mix sends search or suggest queries.
    fn searches(self) -> bool {
        matches!(
            self,
            Mix::Search | Mix::SearchHead | Mix::SearchTail | Mix::Suggest | Mix::Realistic
        )
    }
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
    /// What to request; several (comma-separated, e.g. `product,search-head,search-tail`) run
    /// one after another, each for the ramp-up and `--seconds`, and end with a table
    /// comparing them.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "browse")]
    pub mix: Vec<Mix>,
    /// The path `--mix path` requests.
    #[arg(long, default_value = "/api/categories")]
    pub path: String,
    /// Include `/api/search` (as in `--mix search`) in the browse mix.
    #[arg(long)]
    pub search: bool,
    /// The exponent of the Zipf draw over the query vocabulary (rank r comes r^-s as often
    /// as rank 1; 0: uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf_s: f64,
    /// The share of `search` and `search-tail` queries that get a typo (two adjacent letters
    /// swapped in a word of 5 letters or more, or a letter dropped).
    #[arg(long, default_value_t = 0.2)]
    pub typo_share: f64,
    /// How many of the top queries `--mix search-head` draws from.
    #[arg(long, default_value_t = 100)]
    pub head: usize,
    /// Products to read before the run: the ids product pages ask for and the names and
    /// brands the query vocabulary is built from.
    #[arg(long, default_value_t = 2_000)]
    pub sample_products: usize,
    /// Source addresses to spread connections over: 127.0.0.1 to 127.0.0.N.
    #[arg(long, default_value_t = 8)]
    pub source_addresses: u8,
    /// Server processes whose peak RSS to report (pids, comma-separated); default: every
    /// process named `catalog`.
    #[arg(long, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Writes per second through --command-url beside the run (0: none): price changes,
    /// deliveries and sales to products of the sample, each followed until it is visible at
    /// --url and at --direct-url.
    #[arg(long, default_value_t = 0)]
    pub writes_per_second: u32,
    /// The command API the writes go to (loopback only).
    #[arg(long)]
    pub command_url: Option<String>,
    /// A query process read directly (not through the edge): the write-to-visible lag of its
    /// L1 [default: --url].
    #[arg(long)]
    pub direct_url: Option<String>,
    /// The edge cache in front of the query processes: the write-to-visible lag there
    /// [default: --url].
    #[arg(long)]
    pub edge_url: Option<String>,
    /// The admin the writes log in as.
    #[arg(long, env = "CATALOG_ADMIN_EMAIL", default_value = "admin@localhost")]
    pub admin_email: String,
    #[arg(
        long,
        env = "CATALOG_ADMIN_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub admin_password: String,
    #[arg(skip)]
    pub worker_index: usize,
    /// Brands of the sample (filtered listings).
    #[arg(skip)]
    pub brands: Vec<String>,
    #[arg(skip)]
    pub products: Vec<String>,
    #[arg(skip)]
    pub categories: Vec<String>,
    /// The ranked query vocabulary (built once, shared by the workers).
    #[arg(skip)]
    pub vocabulary: Vec<String>,
    /// The mix this worker runs.
    #[arg(skip)]
    pub phase: Mix,
    /// The number of this phase's first tail query (the workers take turns after it).
    #[arg(skip)]
    pub tail_start: u64,
    /// The run's rotation of the tail's order.
    #[arg(skip)]
    pub tail_rotation: u64,
}

/// What one worker reports.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerReport {
    requests: u64,
    errors: u64,
    connected_peak: usize,
    connected_at_end: usize,
    histogram: String,
    /// Search and suggest queries sent in the measured window.
    queries_sent: u64,
    /// Of those, the ones with a typo.
    queries_with_typo: u64,
    /// Per kind of request (`--mix realistic`): its latencies (base64 HdrHistogram) and errors.
    #[serde(default)]
    kinds: Vec<(String, u64)>,
    /// The 64-bit hashes of the distinct query texts sent, little-endian, base64.
    query_hashes: String,
    /// How many tail query numbers this worker took (in the ramp-up too).
    tail_taken: u64,
}

/// What one mix measured, over all workers.
struct Phase {
    mix: Mix,
    requests: u64,
    errors: u64,
    connected_peak: usize,
    connected_at_end: usize,
    latencies: hdrhistogram::Histogram<u64>,
    queries_sent: u64,
    queries_with_typo: u64,
    distinct_queries: usize,
    /// The first tail query number no worker of this phase took.
    tail_next: u64,
    /// Per kind of request: latencies and errors (`--mix realistic`).
    kinds: Vec<(hdrhistogram::Histogram<u64>, u64)>,
}

pub async fn run(mut args: Args) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    // A server still recovering from the run before may answer 503 for a while.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sample = loop {
        let sample = catalog_sample(&args.url, args.sample_products).await?;
        if !sample.named.is_empty() || Instant::now() > deadline {
            break sample;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    args.products = sample.products;
    args.categories = sample.categories;
    args.vocabulary = queries::vocabulary(&sample.named);
    let mut brands: Vec<String> = sample
        .named
        .iter()
        .map(|named| named.brand.clone())
        .filter(|brand| !brand.is_empty())
        .collect();
    brands.sort();
    brands.dedup();
    args.brands = brands;
    // A random order per run, so that a run does not send the tail of the run before it.
    args.tail_rotation = rand::random();
    // Checked here, before any worker starts: a bad setting fails once, with its reason.
    if args.search || args.mix.iter().any(|mix| mix.searches()) {
        let with_tail = args.mix.contains(&Mix::SearchTail);
        Searches::new(
            args.vocabulary.clone(),
            args.zipf_s,
            args.head,
            args.typo_share,
            with_tail.then_some(args.tail_rotation),
        )?;
    }
    let pids = server_pids(&args.server_pids);
    let mut phases = Vec::new();
    // Tail query numbers go on from one phase to the next, so no phase repeats another.
    let mut tail_start = 0;
    for mix in args.mix.clone() {
        let mut phase_args = args.clone();
        phase_args.phase = mix;
        phase_args.tail_start = tail_start;
        let duration = Duration::from_secs(args.ramp_seconds + args.seconds);
        let (phase, written) =
            tokio::join!(run_phase(&phase_args), writes::run(&phase_args, duration));
        let phase = phase?;
        tail_start = phase.tail_next;
        let peak_rss: u64 = pids.iter().map(|pid| rss_kib(*pid, "VmHWM:")).sum();
        println!("{}", phase_line(&phase_args, &phase, peak_rss, pids.len()));
        if mix == Mix::Realistic {
            print!("{}", realistic::kind_table(&phase.kinds, args.seconds));
        }
        if let Some(written) = written? {
            println!("{written}");
        }
        phases.push(phase);
    }
    if phases.len() > 1 {
        print!("{}", comparison(&phases, args.seconds));
    }
    Ok(())
}

/// One mix: forks the workers, waits for them and merges their reports.
async fn run_phase(args: &Args) -> anyhow::Result<Phase> {
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
    let mut phase = Phase {
        mix: args.phase,
        requests: 0,
        errors: 0,
        connected_peak: 0,
        connected_at_end: 0,
        latencies: histogram(),
        queries_sent: 0,
        queries_with_typo: 0,
        distinct_queries: 0,
        tail_next: args.tail_start,
        kinds: Vec::new(),
    };
    let mut distinct: HashSet<u64> = HashSet::new();
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
        phase.latencies.add(&histogram)?;
        for (index, (encoded, errors)) in report.kinds.iter().enumerate() {
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
            let kind: hdrhistogram::Histogram<u64> =
                Deserializer::new().deserialize(&mut bytes.as_slice())?;
            if phase.kinds.len() <= index {
                phase.kinds.push((crate::report::histogram(), 0));
            }
            phase.kinds[index].0.add(&kind)?;
            phase.kinds[index].1 += errors;
        }
        phase.requests += report.requests;
        phase.errors += report.errors;
        phase.connected_peak += report.connected_peak;
        phase.connected_at_end += report.connected_at_end;
        phase.queries_sent += report.queries_sent;
        phase.queries_with_typo += report.queries_with_typo;
        // Worker i took the numbers start + k·workers + i for k below its count.
        phase.tail_next = phase
            .tail_next
            .max(args.tail_start + report.tail_taken * workers as u64);
        let hashes = base64::engine::general_purpose::STANDARD.decode(&report.query_hashes)?;
        distinct.extend(
            hashes
                .chunks_exact(8)
                .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or_default())),
        );
    }
    phase.distinct_queries = distinct.len();
    Ok(phase)
}

/// The report line of one mix.
fn phase_line(args: &Args, phase: &Phase, peak_rss_kib: u64, server_processes: usize) -> String {
    let mut line = format!(
        "{} users ({} workers, think {} ms, mix {}) for {} s: {:.0} requests/s, {}, errors {}, connections held {} (peak {}), server peak RSS {:.0} MiB over {} processes",
        args.users,
        args.workers.max(1),
        args.think_ms,
        phase.mix.name(),
        args.seconds,
        phase.requests as f64 / args.seconds.max(1) as f64,
        percentiles(&phase.latencies),
        phase.errors,
        phase.connected_at_end,
        phase.connected_peak,
        peak_rss_kib as f64 / 1024.0,
        server_processes
    );
    if phase.queries_sent > 0 {
        line.push_str(&format!(
            "; queries sent {}, distinct {}, repeats {:.1}%, with a typo {:.1}%",
            phase.queries_sent,
            phase.distinct_queries,
            phase.repeat_percent(),
            100.0 * phase.queries_with_typo as f64 / phase.queries_sent as f64
        ));
    }
    line
}

impl Phase {
    /// The share of queries whose text had been sent before in this mix, in percent.
    fn repeat_percent(&self) -> f64 {
        if self.queries_sent == 0 {
            return 0.0;
        }
        100.0 * (1.0 - self.distinct_queries as f64 / self.queries_sent as f64)
    }
}

/// A table of the mixes of one run, each against the product pages of the same run when
/// they were measured.
fn comparison(phases: &[Phase], seconds: u64) -> String {
    let rate = |phase: &Phase| phase.requests as f64 / seconds.max(1) as f64;
    let product = phases
        .iter()
        .find(|phase| phase.mix == Mix::Product)
        .map(rate);
    let ms =
        |phase: &Phase, quantile: f64| phase.latencies.value_at_quantile(quantile) as f64 / 1000.0;
    let mut out = format!(
        "{:<12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>6} {:>10}\n",
        "mix",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        "queries",
        "distinct",
        "repeats",
        "typos",
        "vs product"
    );
    for phase in phases {
        let (queries, distinct, repeats, typos) = if phase.queries_sent > 0 {
            (
                phase.queries_sent.to_string(),
                phase.distinct_queries.to_string(),
                format!("{:.1}%", phase.repeat_percent()),
                format!(
                    "{:.1}%",
                    100.0 * phase.queries_with_typo as f64 / phase.queries_sent as f64
                ),
            )
        } else {
            ("-".into(), "-".into(), "-".into(), "-".into())
        };
        let versus = match product {
            Some(product) if product > 0.0 => format!("{:.2}×", rate(phase) / product),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<12} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9} {:>9} {:>8} {:>6} {:>10}\n",
            phase.mix.name(),
            rate(phase),
            ms(phase, 0.5),
            ms(phase, 0.9),
            ms(phase, 0.99),
            ms(phase, 0.999),
            phase.errors,
            queries,
            distinct,
            repeats,
            typos,
            versus
        ));
    }
    out
}

/// What the run browses and searches for, read from the catalog before it.
struct Sample {
    products: Vec<String>,
    categories: Vec<String>,
    named: Vec<Named>,
}

/// Up to `limit` product ids (newest first) with their names and brands, and the category
/// slugs.
async fn catalog_sample(url: &str, limit: usize) -> anyhow::Result<Sample> {
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
    let mut named = Vec::new();
    let mut cursor: Option<String> = None;
    while products.len() < limit {
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
                named.push(Named {
                    name: name.to_owned(),
                    brand: item["brand"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(Sample {
        products,
        categories,
        named,
    })
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
    // Built before the clock starts: the tail's typo table takes a moment.
    let searches = if args.search || args.phase.searches() {
        Some(Searches::new(
            args.vocabulary.clone(),
            args.zipf_s,
            args.head,
            args.typo_share,
            (args.phase == Mix::SearchTail).then_some(args.tail_rotation),
        )?)
    } else {
        None
    };
    let ramp = Duration::from_secs(args.ramp_seconds);
    let measure_from = Instant::now() + ramp;
    let window = Window {
        from: measure_from,
        until: measure_from + Duration::from_secs(args.seconds),
    };
    let realistic = (args.phase == Mix::Realistic)
        .then(|| realistic::Realistic::new(&args))
        .transpose()?;
    let worker = Arc::new(Worker {
        realistic,
        host_header: format!("{}:{}", target.ip(), target.port()),
        target,
        window,
        counters: Counters::new(),
        searches,
        tail_counter: AtomicU64::new(0),
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
    let tail_taken = worker.tail_counter.load(Ordering::SeqCst);
    let report = worker.counters.report(connected_at_end, tail_taken)?;
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
