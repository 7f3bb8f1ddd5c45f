//! The layers every service wraps its router in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use crate::guard::{GuardLayer, HttpPolicy};
use crate::problem::{Problem, PROBLEM_JSON};

/// The request body limit (API.md: default 1 MiB).
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The largest body any route takes (an image upload, API.md: 10 MiB). The shared stack refuses
/// a longer body before a handler runs; every route reads at most [`BODY_LIMIT_BYTES`] unless
/// it raises its own limit (`DefaultBodyLimit` on the route) up to this.
pub const MAX_ROUTE_BODY_LIMIT_BYTES: usize = 10 * 1024 * 1024;

/// How long one request may take before the server answers 503 itself.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` in the layers every service shares, outermost first: the security headers,
/// request id (a client's kept only when short and printable, else made; echoed on the
/// response), tracing, panic → opaque 500, the client's address and rate limits
/// ([`crate::guard`]), metrics per matched route and the problem fallback, a timeout and the
/// body limits.
///
/// They are one tower stack, applied once: `Router::layer` boxes each route's service once per
/// call, and axum clones a route's boxed service on every request, so nine layers added one by
/// one were nine nested boxes cloned per request (a third of a product page's instructions).
pub fn with_http_layers(router: Router, policy: HttpPolicy) -> Router {
    let [nosniff, frame, referrer, policy_header] = crate::guard::security_headers();
    // ServiceBuilder: the first layer added is the outermost.
    let layers = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(nosniff.0, nosniff.1))
        .layer(SetResponseHeaderLayer::if_not_present(frame.0, frame.1))
        .layer(SetResponseHeaderLayer::if_not_present(
            referrer.0, referrer.1,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            policy_header.0,
            policy_header.1,
        ))
        .map_request(|mut request: Request| {
            crate::guard::sanitize_request_id(&mut request);
            request
        })
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            MakeCheapRequestId,
        ))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(record_response)
                // A 5xx is counted in the metrics and, where it is the server's fault, logged where
                // it happened (`Problem::internal_logged`); a line per failed response would let
                // any client flood the log (a 503 is a client's for the asking).
                .on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ),
        )
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked");
                Problem::internal().into_response()
            },
        ))
        .layer(GuardLayer::new(policy))
        .layer(MetricsAndProblemsLayer)
        .layer(RequestBodyLimitLayer::new(MAX_ROUTE_BODY_LIMIT_BYTES))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ));
    router.layer(layers)
}

/// A request's span, at debug: made only where a subscriber wants one (`RUST_LOG=debug`, or
/// the trace exporter, which takes the catalog's spans); at the default level none is. Named
/// `METHOD route` with OpenTelemetry's HTTP server attributes, and a child of the client's
/// span when the request carries a W3C `traceparent`.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let method = method_label(request.method());
    let span = tracing::debug_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id,
    );
    let traceparent = request.headers().get("traceparent");
    events::trace::follow(&span, traceparent.and_then(|value| value.to_str().ok()));
    span
}

/// Records the answer's status on the request's span.
fn record_response<B>(response: &axum::http::Response<B>, latency: Duration, span: &tracing::Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(status = status.as_u16(), ?latency, "answered");
}

/// Metrics per matched route ([`track_metrics`]) and the problem fallback ([`problem_fallback`])
/// as one tower layer over the inner service itself: axum's `from_fn` middleware boxes its
/// inner service and clones it on every call.
#[derive(Clone, Copy, Default)]
pub struct MetricsAndProblemsLayer;

impl<S> tower::Layer<S> for MetricsAndProblemsLayer {
    type Service = MetricsAndProblems<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsAndProblems { inner }
    }
}

#[derive(Clone)]
pub struct MetricsAndProblems<S> {
    inner: S,
}

impl<S, B> tower::Service<Request> for MetricsAndProblems<S>
where
    S: tower::Service<Request, Response = Response<B>, Error = std::convert::Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = method_label(request.method());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = problem_fallback(answer.await?.map(Body::new));
            track_metrics(route.as_ref(), method, response.status(), started);
            Ok(response)
        })
    }
}

/// Counts a request and records its latency per method, matched route and status. The
/// handles of each (route, method, status) are registered once ([`RequestMetrics`]): a request
/// formats no label and allocates nothing here.
fn track_metrics(
    route: Option<&MatchedPath>,
    method: &'static str,
    status: StatusCode,
    started: Instant,
) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let (requests, duration) = REQUEST_METRICS.handles(route, method, status);
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
}

/// The method as a metric label: the standard methods by name, any other as `other` (a
/// client must not be able to add label values).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

type Handles = (metrics::Counter, metrics::Histogram);

/// The request metrics' handles, by route, then by method and status: looked up under read
/// locks by the route's `&str`, registered with the recorder on first use only.
#[derive(Default)]
struct RequestMetrics {
    routes: RwLock<HashMap<String, RouteMetrics>>,
}

type RouteMetrics = Arc<RwLock<HashMap<(&'static str, u16), Handles>>>;

static REQUEST_METRICS: LazyLock<RequestMetrics> = LazyLock::new(RequestMetrics::default);

impl RequestMetrics {
    fn handles(&self, route: &str, method: &'static str, status: StatusCode) -> Handles {
        let status = status.as_u16();
        let known = read(&self.routes).get(route).cloned();
        let by_status = match known {
            Some(by_status) => by_status,
            None => write(&self.routes)
                .entry(route.to_owned())
                .or_default()
                .clone(),
        };
        if let Some(handles) = read(&by_status).get(&(method, status)) {
            return handles.clone();
        }
        let route = route.to_owned();
        let handles = (
            metrics::counter!("catalog_http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string()),
            metrics::histogram!("catalog_http_request_duration_seconds", "method" => method, "route" => route),
        );
        write(&by_status).insert((method, status), handles.clone());
        handles
    }
}

/// A read lock; a panic while it was held cannot leave a map of handles half-written.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Request ids shaped as random (v4) UUIDs without asking the OS for randomness per request:
/// a random key drawn once per process, and a counter mixed under it (splitmix64), so ids are
/// unique within the process and, with the key, across processes.
#[derive(Clone, Default)]
pub struct MakeCheapRequestId;

static REQUEST_ID_KEY: LazyLock<(u64, u64)> = LazyLock::new(|| {
    let key = Uuid::new_v4().as_u64_pair();
    (key.0, key.1)
});
static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn splitmix64(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

impl MakeRequestId for MakeCheapRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let count = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let (high, low) = *REQUEST_ID_KEY;
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&(splitmix64(low ^ count)).to_be_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = id.hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
}

/// Turns every error response that is not yet problem+json (unknown route, wrong method,
/// body over the limit, timeout) into one, keeping its status and headers.
fn problem_fallback(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let reason = sentence_case_title(status);
    let detail = match status {
        StatusCode::NOT_FOUND => "no such resource".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => {
            // axum adds `Allow` after the route's layers ran, so it is not here yet; the
            // response still carries it.
            match parts
                .headers
                .get(header::ALLOW)
                .and_then(|value| value.to_str().ok())
                .filter(|allowed| !allowed.is_empty())
            {
                Some(allowed) => format!("method not allowed here; allowed: {allowed}"),
                None => "method not allowed here; the Allow header lists the methods this \
                         resource accepts"
                    .to_owned(),
            }
        }
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is over the limit of 1 MiB".to_owned(),
        StatusCode::SERVICE_UNAVAILABLE => "the request took too long; try again".to_owned(),
        other => other.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let kind = match status {
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        _ => "http-error",
    };
    let mut problem = Problem::new(status, kind, reason, detail);
    if status == StatusCode::SERVICE_UNAVAILABLE && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        problem = problem.with_retry_after(1);
    }
    let rendered = problem.into_response();
    let (new_parts, body) = rendered.into_parts();
    for (name, value) in new_parts.headers.iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::new(body))
}

/// Titles in the same sentence case as [`Problem`]'s own constructors.
fn sentence_case_title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "Bad request",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::NOT_ACCEPTABLE => "Not acceptable",
        StatusCode::REQUEST_TIMEOUT => "Request timeout",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::LENGTH_REQUIRED => "Length required",
        StatusCode::PRECONDITION_FAILED => "Precondition failed",
        StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
        StatusCode::URI_TOO_LONG => "URI too long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
        StatusCode::UNPROCESSABLE_ENTITY => "Unprocessable entity",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "Request header fields too large",
        StatusCode::INTERNAL_SERVER_ERROR => "Internal server error",
        StatusCode::NOT_IMPLEMENTED => "Not implemented",
        StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
        StatusCode::GATEWAY_TIMEOUT => "Gateway timeout",
        _ if status.is_client_error() => "Client error",
        _ => "Server error",
    }
}

/// Parses an entity-tag header value holding a version: `"7"` (also `W/"7"` and bare `7`).
pub fn parse_version_tag(value: &HeaderValue) -> Option<u64> {
    let text = value.to_str().ok()?.trim();
    parse_version_tag_text(text.strip_prefix("W/").unwrap_or(text))
}

/// The version in one entity tag without its weakness prefix: `"7"` (or a bare `7`), at most
/// 19 digits (versions are 64-bit signed in the stores; the OpenAPI document says the same).
pub fn parse_version_tag_text(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
