//! Rate limits per client and route class (API.md, "Limits"): GCRA buckets, 429 with
//! `Retry-After` and `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`.
//!
//! The client is the token's subject when the request carries a valid bearer token (a shop
//! behind one NAT is many shoppers, an admin on many addresses is one), otherwise its address
//! ([`crate::client`]). Classes: `auth` (login and token refresh, strict), `writes` (every other
//! method but GET/HEAD, moderate), `reads` (generous); health, readiness and metrics are never
//! limited (balancers and Prometheus poll them).
//!
//! In process the buckets are `governor`'s keyed GCRA; a [`RateLimitBackend`] may share them
//! (the command role's Redis backend: one atomic script per check, so N replicas enforce one
//! limit).

use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use crate::client::ClientIp;
use crate::problem::Problem;

pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The route classes, each with its own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Auth,
    Writes,
    Reads,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Writes => "writes",
            RouteClass::Reads => "reads",
        }
    }

    /// The class of a request, or `None` for the operations routes, which are not limited.
    pub fn of(method: &Method, path: &str) -> Option<RouteClass> {
        if matches!(path, "/healthz" | "/readyz" | "/metrics") {
            return None;
        }
        if *method == Method::POST
            && matches!(
                path,
                "/api/auth/login"
                    | "/api/auth/refresh"
                    | "/api/auth/session"
                    | "/api/auth/session/refresh"
            )
        {
            return Some(RouteClass::Auth);
        }
        if *method == Method::GET || *method == Method::HEAD {
            Some(RouteClass::Reads)
        } else {
            Some(RouteClass::Writes)
        }
    }
}

/// A limit: `count` requests per `period`, as a burst of `count` refilled evenly over the
/// period. Written `300/s`, `600/min`, `20/h`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
}

impl Rate {
    pub fn new(count: u32, period: Duration) -> Option<Rate> {
        let count = NonZeroU32::new(count)?;
        (!period.is_zero()).then_some(Rate { count, period })
    }

    /// The time one request's share of the bucket takes to refill.
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }

    fn quota(&self) -> Quota {
        Quota::with_period(self.interval().max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.count)
    }

    /// `None` for `off`.
    pub fn parse(text: &str) -> Result<Option<Rate>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let message = || format!("{text:?} is not a rate such as 300/s, 600/min, 20/h or off");
        let (count, unit) = text.split_once('/').ok_or_else(message)?;
        let count = u32::from_str(count.trim()).map_err(|_| message())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(message()),
        };
        Rate::new(count, period).map(Some).ok_or_else(message)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => return write!(formatter, "{}/{:?}", self.count, self.period),
        };
        write!(formatter, "{}/{unit}", self.count)
    }
}

/// Whom a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Address(IpAddr),
    Subject(String),
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Address(address) => write!(formatter, "a:{address}"),
            ClientKey::Subject(subject) => write!(formatter, "s:{subject}"),
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// Until the next request would be allowed (zero when this one was).
    pub retry_after: Duration,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where buckets live. Implementations never fail a request: a shared backend that cannot be
/// reached decides in process instead (and says so in its logs).
pub trait RateLimitBackend: Send + Sync + 'static {
    fn check<'a>(&'a self, class: RouteClass, key: &'a ClientKey) -> BoxFuture<'a, Decision>;
}

type Keyed = RateLimiter<
    ClientKey,
    governor::state::keyed::DefaultKeyedStateStore<ClientKey>,
    governor::clock::DefaultClock,
    StateInformationMiddleware,
>;

/// Buckets in this process (`governor`), one keyed limiter per class.
pub struct LocalBackend {
    classes: Vec<(RouteClass, Rate, Keyed)>,
}

impl LocalBackend {
    pub fn new(limits: &RateLimits) -> Self {
        let classes = limits
            .rates()
            .map(|(class, rate)| {
                let limiter = RateLimiter::keyed(rate.quota())
                    .with_middleware::<StateInformationMiddleware>();
                (class, rate, limiter)
            })
            .collect();
        LocalBackend { classes }
    }

    /// Decides in process; for a class without a limit, always allowed.
    pub fn decide(&self, class: RouteClass, key: &ClientKey) -> Decision {
        let Some((_, rate, limiter)) = self.classes.iter().find(|(each, _, _)| *each == class)
        else {
            return Decision {
                allowed: true,
                limit: u32::MAX,
                remaining: u32::MAX,
                reset: Duration::ZERO,
                retry_after: Duration::ZERO,
            };
        };
        let limit = rate.count.get();
        match limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit,
                    remaining,
                    reset: rate.interval() * limit.saturating_sub(remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
                Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset: rate.interval() * limit,
                    retry_after: wait,
                }
            }
        }
    }

    /// Forgets buckets that are full again (bounds memory under many distinct clients).
    pub fn forget_idle(&self) {
        for (_, _, limiter) in &self.classes {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// [`LocalBackend::forget_idle`] every `period`, for as long as the process runs.
    pub async fn forget_idle_every(self: Arc<Self>, period: Duration) {
        loop {
            tokio::time::sleep(period).await;
            self.forget_idle();
        }
    }
}

impl RateLimitBackend for LocalBackend {
    fn check<'a>(&'a self, class: RouteClass, key: &'a ClientKey) -> BoxFuture<'a, Decision> {
        let decision = self.decide(class, key);
        Box::pin(std::future::ready(decision))
    }
}

/// The subject of a request's valid bearer token, if any (the auth crate provides it: this
/// crate does not verify tokens).
pub type SubjectOf = Arc<dyn Fn(&HeaderMap) -> Option<String> + Send + Sync>;

/// The configured limits per class (`None`: not limited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub auth: Option<Rate>,
    pub writes: Option<Rate>,
    pub reads: Option<Rate>,
}

impl Default for RateLimits {
    /// Per client: 30 logins or refreshes a minute, 100 writes a second, 1,000 reads a second.
    fn default() -> Self {
        RateLimits {
            auth: Rate::new(30, Duration::from_secs(60)),
            writes: Rate::new(100, Duration::from_secs(1)),
            reads: Rate::new(1000, Duration::from_secs(1)),
        }
    }
}

impl RateLimits {
    pub fn off() -> Self {
        RateLimits {
            auth: None,
            writes: None,
            reads: None,
        }
    }

    pub fn rate(&self, class: RouteClass) -> Option<Rate> {
        match class {
            RouteClass::Auth => self.auth,
            RouteClass::Writes => self.writes,
            RouteClass::Reads => self.reads,
        }
    }

    pub fn rates(&self) -> impl Iterator<Item = (RouteClass, Rate)> + '_ {
        [RouteClass::Auth, RouteClass::Writes, RouteClass::Reads]
            .into_iter()
            .filter_map(|class| self.rate(class).map(|rate| (class, rate)))
    }
}

/// What the rate-limit layer needs: the limits, where the buckets live per class, and how to
/// name an authenticated client.
#[derive(Clone)]
pub struct Limiter {
    pub limits: RateLimits,
    /// The backend per class; a class missing here is decided by `local`.
    pub shared: Vec<(RouteClass, Arc<dyn RateLimitBackend>)>,
    pub local: Arc<LocalBackend>,
    pub subject: Option<SubjectOf>,
}

impl Limiter {
    pub fn local(limits: RateLimits) -> Self {
        Limiter {
            limits,
            shared: Vec::new(),
            local: Arc::new(LocalBackend::new(&limits)),
            subject: None,
        }
    }

    /// What to do with `request`: pass it, answer it (429), or ask a shared backend.
    pub fn admission(&self, request: &Request) -> Admission {
        let Some(class) = RouteClass::of(request.method(), request.uri().path()) else {
            return Admission::Decided(Ok(None));
        };
        if self.limits.rate(class).is_none() {
            return Admission::Decided(Ok(None));
        }
        let subject = self
            .subject
            .as_ref()
            .filter(|_| {
                request
                    .headers()
                    .contains_key(axum::http::header::AUTHORIZATION)
            })
            .and_then(|subject| subject(request.headers()));
        let key = match (subject, request.extensions().get::<ClientIp>()) {
            (Some(subject), _) => ClientKey::Subject(subject),
            (None, Some(ClientIp(address))) => ClientKey::Address(*address),
            // No connection (a router called directly): nobody to limit.
            (None, None) => return Admission::Decided(Ok(None)),
        };
        match self.shared.iter().find(|(each, _)| *each == class) {
            Some((_, backend)) => Admission::Ask(Pending {
                class,
                key,
                backend: backend.clone(),
            }),
            None => Admission::Decided(verdict(class, self.local.decide(class, &key))),
        }
    }
}

/// A decision made: allowed (with the headers for the answer, when there are any), or the
/// 429 that is the answer.
pub type Verdict = Result<Option<Decision>, Box<Response>>;

/// A request's fate under the limits: decided here, or to be asked of a shared backend.
pub enum Admission {
    Decided(Verdict),
    Ask(Pending),
}

/// A check a shared backend makes.
pub struct Pending {
    class: RouteClass,
    key: ClientKey,
    backend: Arc<dyn RateLimitBackend>,
}

impl Pending {
    /// Waits for the backend's decision.
    pub async fn settle(self) -> Verdict {
        verdict(self.class, self.backend.check(self.class, &self.key).await)
    }
}

/// Allowed (with headers, except on reads: a cached page must not carry one client's count)
/// or refused with a 429.
fn verdict(class: RouteClass, decision: Decision) -> Verdict {
    if decision.allowed {
        return Ok((class != RouteClass::Reads).then_some(decision));
    }
    metrics::counter!("catalog_rate_limited_total", "class" => class.as_str()).increment(1);
    let seconds = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let detail = format!(
        "too many {} requests from this client; retry in {seconds} s",
        class.as_str()
    );
    let mut response = Problem::too_many_requests(seconds, detail).into_response();
    add_headers(response.headers_mut(), &decision);
    Err(Box::new(response))
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds, rounded up).
pub fn add_headers(headers: &mut HeaderMap, decision: &Decision) {
    let reset = decision.reset.as_secs_f64().ceil() as u64;
    headers.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(decision.limit));
    headers.insert(
        RATELIMIT_REMAINING.clone(),
        HeaderValue::from(decision.remaining),
    );
    headers.insert(RATELIMIT_RESET.clone(), HeaderValue::from(reset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let rate = Rate::parse("30/min").expect("parse").expect("a rate");
        assert_eq!(rate.count.get(), 30);
        assert_eq!(rate.interval(), Duration::from_secs(2));
        assert_eq!(rate.to_string(), "30/min");
        assert_eq!(Rate::parse("off").expect("parse"), None);
        for bad in ["", "30", "0/s", "x/s", "30/fortnight", "-1/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn classes_follow_method_and_path() {
        assert_eq!(
            RouteClass::of(&Method::POST, "/api/auth/login"),
            Some(RouteClass::Auth)
        );
        assert_eq!(
            RouteClass::of(&Method::POST, "/api/products"),
            Some(RouteClass::Writes)
        );
        assert_eq!(
            RouteClass::of(&Method::GET, "/api/search"),
            Some(RouteClass::Reads)
        );
        assert_eq!(RouteClass::of(&Method::GET, "/readyz"), None);
        // The console's cookie login checks passwords too: the same budget as the token login.
        for path in ["/api/auth/session", "/api/auth/session/refresh"] {
            assert_eq!(
                RouteClass::of(&Method::POST, path),
                Some(RouteClass::Auth),
                "{path}"
            );
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait_and_keys_are_separate() {
        let limits = RateLimits {
            auth: Rate::new(3, Duration::from_secs(60)),
            ..RateLimits::off()
        };
        let local = LocalBackend::new(&limits);
        let one = ClientKey::Address("192.0.2.1".parse().expect("ip"));
        let other = ClientKey::Subject("someone".into());
        let remaining: Vec<_> = (0..3)
            .map(|_| local.decide(RouteClass::Auth, &one).remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = local.decide(RouteClass::Auth, &one);
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(18), "{refused:?}");
        assert!(local.decide(RouteClass::Auth, &other).allowed);
        // A class without a limit is never refused.
        assert!(local.decide(RouteClass::Reads, &one).allowed);
    }
}
