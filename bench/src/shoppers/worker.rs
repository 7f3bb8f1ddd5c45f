//! One worker process of `catalog-bench shoppers`: its users, their connections and
//! requests, and what it counts.

use super::*;

/// When requests count: sent from the end of the ramp-up until the end of the run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) from: Instant,
    pub(super) until: Instant,
}

impl Window {
    fn contains(&self, at: Instant) -> bool {
        at >= self.from && at < self.until
    }
}

/// One worker process: what its users share.
pub(super) struct Worker {
    pub(super) args: Args,
    pub(super) target: SocketAddr,
    pub(super) host_header: String,
    pub(super) window: Window,
    pub(super) counters: Counters,
    /// The query draws, for the mixes that search.
    pub(super) searches: Option<Searches>,
    /// How many tail queries this worker's users have taken.
    pub(super) tail_counter: AtomicU64,
    /// The draws of `--mix realistic`.
    pub(super) realistic: Option<super::realistic::Realistic>,
}

impl Worker {
    /// User number `user`: starts at its share of the ramp-up, from its source address in turn.
    pub(super) async fn user(self: Arc<Self>, user: usize, ramp: Duration) -> bool {
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
            let (kind, path, query) = self.next_request(&mut random);
            let request = hyper::Request::get(&path)
                .header(hyper::header::HOST, &self.host_header)
                .body(Empty::<Bytes>::new());
            let Ok(request) = request else { continue };
            let sent = Instant::now();
            if let Some(query) = &query {
                if self.window.contains(sent) {
                    self.counters.query_sent(query);
                }
            }
            let outcome = send(connection, request).await;
            if !self.counters.record(outcome, sent, self.window, kind) {
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

    /// The next request of this worker's mix: its kind (`--mix realistic`), path and the
    /// query it carries (search and suggest).
    fn next_request(&self, random: &mut impl Rng) -> (Option<usize>, String, Option<Query>) {
        if let (Some(realistic), Some(searches)) = (&self.realistic, &self.searches) {
            let (kind, path, query) = realistic.next(&self.args, searches, random);
            return (Some(kind), path, query);
        }
        let (path, query) = self.next_mixed(random);
        (None, path, query)
    }

    fn next_mixed(&self, random: &mut impl Rng) -> (String, Option<Query>) {
        let searched = |query: Query| {
            let path = format!("/api/search?q={}", encode(&query.text));
            (path, Some(query))
        };
        let searches = self.searches.as_ref();
        match (self.args.phase, searches) {
            (Mix::Search, Some(searches)) => searched(searches.zipf(random)),
            (Mix::SearchHead, Some(searches)) => searched(searches.head(random)),
            (Mix::SearchTail, Some(searches)) => {
                let taken = self.tail_counter.fetch_add(1, Ordering::Relaxed);
                // Workers take turns, so no two take the same number.
                let sequence = self.args.tail_start
                    + taken * self.args.workers.max(1) as u64
                    + self.args.worker_index as u64;
                searched(searches.tail(sequence, random))
            }
            (Mix::Suggest, Some(searches)) => {
                let query = searches.suggest(random);
                let path = format!("/api/search/suggest?q={}", encode(&query.text));
                (path, Some(query))
            }
            (Mix::Browse, searches) => {
                let roll = random.gen_range(0..100);
                match (roll, searches) {
                    (95.., Some(searches)) => searched(searches.zipf(random)),
                    _ => (browse_path(&self.args, roll, random), None),
                }
            }
            (Mix::Product, _) => (product_path(&self.args, random), None),
            (Mix::Listing, _) => (listing_path(&self.args, random), None),
            // `run` builds the draws for every mix that searches.
            (
                Mix::Path
                | Mix::Search
                | Mix::SearchHead
                | Mix::SearchTail
                | Mix::Suggest
                | Mix::Realistic,
                _,
            ) => (self.args.path.clone(), None),
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
pub(super) struct Counters {
    connected: AtomicUsize,
    peak: AtomicUsize,
    requests: AtomicU64,
    errors: AtomicU64,
    latencies: parking_lot::Mutex<hdrhistogram::Histogram<u64>>,
    queries: parking_lot::Mutex<QueryLog>,
    /// Per kind of request (`--mix realistic`): latencies and errors.
    kinds: parking_lot::Mutex<Vec<(hdrhistogram::Histogram<u64>, u64)>>,
}

/// The search and suggest queries sent in the measured window.
#[derive(Default)]
struct QueryLog {
    sent: u64,
    with_typo: u64,
    /// Hashes of the distinct texts: 8 bytes a query, where the texts would be tens.
    distinct: HashSet<u64>,
}

impl Counters {
    pub(super) fn new() -> Self {
        Counters {
            connected: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latencies: parking_lot::Mutex::new(histogram()),
            queries: parking_lot::Mutex::new(QueryLog::default()),
            kinds: parking_lot::Mutex::new(
                super::realistic::KINDS
                    .iter()
                    .map(|_| (histogram(), 0))
                    .collect(),
            ),
        }
    }

    /// Counts a query sent in the measured window.
    fn query_sent(&self, query: &Query) {
        // The same hash in every worker: `DefaultHasher::new` has fixed keys.
        let mut hasher = DefaultHasher::new();
        query.text.hash(&mut hasher);
        let mut log = self.queries.lock();
        log.sent += 1;
        log.with_typo += u64::from(query.typo);
        log.distinct.insert(hasher.finish());
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
        kind: Option<usize>,
    ) -> bool {
        let measuring = window.contains(sent);
        let kind_error = |counters: &Self| {
            if let Some(kind) = kind {
                if let Some(entry) = counters.kinds.lock().get_mut(kind) {
                    entry.1 += 1;
                }
            }
        };
        match outcome {
            Ok(status) if status.is_success() || status == hyper::StatusCode::NOT_MODIFIED => {
                if measuring {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let micros = sent.elapsed().as_micros().max(1) as u64;
                    let _ = self.latencies.lock().record(micros);
                    if let Some(kind) = kind {
                        if let Some(entry) = self.kinds.lock().get_mut(kind) {
                            let _ = entry.0.record(micros);
                        }
                    }
                }
                true
            }
            Ok(_) => {
                if measuring {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    kind_error(self);
                }
                true
            }
            Err(_) => {
                if measuring {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    kind_error(self);
                }
                self.connected.fetch_sub(1, Ordering::SeqCst);
                false
            }
        }
    }

    pub(super) fn report(
        &self,
        connected_at_end: usize,
        tail_taken: u64,
    ) -> anyhow::Result<WorkerReport> {
        let merged = self.latencies.lock().clone();
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(&merged, &mut bytes)?;
        let log = self.queries.lock();
        let hashes: Vec<u8> = log
            .distinct
            .iter()
            .flat_map(|hash| hash.to_le_bytes())
            .collect();
        let mut kinds = Vec::new();
        for (latencies, errors) in self.kinds.lock().iter() {
            let mut bytes = Vec::new();
            V2Serializer::new().serialize(latencies, &mut bytes)?;
            kinds.push((
                base64::engine::general_purpose::STANDARD.encode(bytes),
                *errors,
            ));
        }
        Ok(WorkerReport {
            kinds,
            requests: self.requests.load(Ordering::SeqCst),
            errors: self.errors.load(Ordering::SeqCst),
            connected_peak: self.peak.load(Ordering::SeqCst),
            connected_at_end,
            histogram: base64::engine::general_purpose::STANDARD.encode(bytes),
            queries_sent: log.sent,
            queries_with_typo: log.with_typo,
            query_hashes: base64::engine::general_purpose::STANDARD.encode(hashes),
            tail_taken,
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

fn product_path(args: &Args, random: &mut dyn rand::RngCore) -> String {
    let id = pick(&args.products, random);
    format!("/api/products/{id}")
}

fn listing_path(args: &Args, random: &mut dyn rand::RngCore) -> String {
    let category = pick(&args.categories, random);
    let sort = ["newest", "price_asc", "price_desc", "bestselling", "name"][random.gen_range(0..5)];
    format!("/api/products?category={category}&sort={sort}&limit=20")
}

/// The browse mix for a roll of 0..100 (95 and up search when `--search` is given; `run`
/// sends those).
fn browse_path(args: &Args, roll: u32, random: &mut dyn rand::RngCore) -> String {
    match roll {
        0..=54 => product_path(args, random),
        55..=84 => listing_path(args, random),
        85..=89 => "/api/categories".to_owned(),
        90..=94 => "/api/products/bestsellers?limit=10".to_owned(),
        _ => product_path(args, random),
    }
}

/// `text` as a query-string value (spaces as `%20`).
pub(super) fn encode(text: &str) -> String {
    // `+` in the text itself comes out as `%2B`, so every `+` left is a space.
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
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
