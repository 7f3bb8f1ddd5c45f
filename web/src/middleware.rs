//! The layers every service wraps its router in.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::problem::{Problem, PROBLEM_JSON};

/// The request body limit (API.md: default 1 MiB).
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// How long one request may take before the server answers 503 itself.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` in the layers every service shares, outermost first: request id (set when
/// missing, echoed on the response), tracing, panic → opaque 500, metrics per matched route,
/// the problem fallback, a timeout and the body limits.
pub fn with_http_layers(router: Router) -> Router {
    // Router::layer applies each layer to every route; the last one added is the outermost.
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(problem_fallback))
        .layer(middleware::from_fn(track_metrics))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked");
                Problem::internal().into_response()
            },
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(&X_REQUEST_ID)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    uri = %request.uri().path(),
                    request_id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            MakeRequestUuid,
        ))
}

/// Counts requests and records their latency per method, matched route and status.
async fn track_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("catalog_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("catalog_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed);
    response
}

/// Turns every error response that is not yet problem+json (unknown route, wrong method,
/// body over the limit, timeout) into one, keeping its status and headers.
async fn problem_fallback(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
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

/// The version in one entity tag without its weakness prefix: `"7"` (or a bare `7`).
pub fn parse_version_tag_text(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}
