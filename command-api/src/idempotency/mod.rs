//! `Idempotency-Key` on POST: a retry with the same key and body gets the first response and
//! appends nothing; the same key with another body is 409; keys are scoped to the caller and
//! kept at least [`KEY_LIFETIME`].

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auth::{AuthUser, TokenVerifier};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use web::Problem;

/// How long a key is remembered (API.md: at least 24 h).
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Response headers worth replaying.
const REPLAYED_HEADERS: [&str; 3] = ["content-type", "location", "x-position"];

/// A first response, kept for replays.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A request that carries an `Idempotency-Key`, as [`IdempotencyStore::begin`] is asked about
/// it: the caller it is scoped to, the key, a hash of the request, and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRequest<'a> {
    pub caller: &'a str,
    pub key: &'a str,
    pub request_hash: &'a str,
    pub now: DateTime<Utc>,
}

/// What [`IdempotencyStore::begin`] found for a key.
#[derive(Debug, PartialEq)]
pub enum Begin {
    /// The key is new and now reserved for this request.
    Started,
    /// The same request was answered before: replay this.
    Replay(StoredResponse),
    /// The key was used with another request.
    Mismatch,
    /// The first request with this key has not finished yet.
    InProgress,
}

#[derive(Debug, thiserror::Error)]
#[error("idempotency store: {0}")]
pub struct IdempotencyError(pub String);

/// Idempotency keys per caller.
///
/// Contract, checked by the `conformance` suite (feature `testsuite`): keys are scoped to their caller
/// (another caller's same key is another key).
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Reserves a new key atomically: of concurrent requests with one key, exactly one gets
    /// [`Begin::Started`], the others [`Begin::InProgress`] (or a replay once it completed).
    /// A key used with another `request_hash` is [`Begin::Mismatch`]; a completed one with the
    /// same hash is [`Begin::Replay`] of the stored response, as often as asked. `now` is the
    /// key's creation time, what [`IdempotencyStore::purge`] compares.
    async fn begin(&self, request: KeyedRequest<'_>) -> Result<Begin, IdempotencyError>;
    /// Stores the response of a started key for its replays.
    async fn complete(
        &self,
        caller: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError>;
    /// Frees a key whose request failed on the server side, so a retry (with any body) can
    /// run; an unknown key changes nothing.
    async fn abandon(&self, caller: &str, key: &str) -> Result<(), IdempotencyError>;
    /// Forgets keys created before `before` (begun or completed); returns how many. A purged
    /// key is new again.
    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, IdempotencyError>;
}

#[derive(Clone)]
pub struct IdempotencyLayerState {
    pub store: Arc<dyn IdempotencyStore>,
    pub verifier: Arc<TokenVerifier>,
    /// Whether the routes behind this layer append with the request's [`RequestClaim`]: then
    /// a retry of a request still in progress runs again instead of answering 409 (the claim
    /// lets only one of them append, and the other answers with its events).
    pub claimed: bool,
    /// The longest body the routes behind this layer take (the request is hashed whole).
    pub body_limit_bytes: usize,
}

/// The claim a keyed request's events take in the event store (scope
/// [`events::store::REQUEST_CLAIM_SCOPE`]), a request extension for the handler: the same for
/// every retry of the request, so at most one attempt appends. `retried` when an earlier
/// attempt was begun and never answered (its process may have died after its append): the
/// command looks the claim up before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestClaim {
    pub value: String,
    pub retried: bool,
}

impl RequestClaim {
    fn new(caller: &str, key: &str, retried: bool) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(caller.as_bytes());
        hasher.update([0]);
        hasher.update(key.as_bytes());
        RequestClaim {
            value: hex(hasher),
            retried,
        }
    }
}

/// The middleware; apply it to the command routes.
pub async fn idempotency(
    State(state): State<IdempotencyLayerState>,
    request: Request,
    next: Next,
) -> Response {
    let (caller, key) = match caller_and_key(&state, &request) {
        Keyed::Key { caller, key } => (caller, key),
        Keyed::Unkeyed => return next.run(request).await,
        Keyed::InvalidKey => {
            return Problem::bad_request(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .into_response()
        }
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, state.body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Problem::payload_too_large(format!(
                "the request body is over the limit of {} MiB",
                state.body_limit_bytes / (1024 * 1024)
            ))
            .into_response()
        }
    };
    let request_hash = hash_request(&parts, &bytes);
    let retried = match answer_from_store(&state, &caller, &key, &request_hash).await {
        Answer::Run { retried } => retried,
        Answer::Answered(answered) => return answered,
    };
    let mut parts = parts;
    parts
        .extensions
        .insert(RequestClaim::new(&caller, &key, retried));
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    remember(&state, &caller, &key, response).await
}

/// What the middleware makes of a request.
enum Keyed {
    /// Not a POST, no `Idempotency-Key`, or no valid caller: left alone.
    Unkeyed,
    Key {
        caller: String,
        key: String,
    },
    /// A key it cannot use: 400.
    InvalidKey,
}

fn caller_and_key(state: &IdempotencyLayerState, request: &Request) -> Keyed {
    if request.method() != Method::POST {
        return Keyed::Unkeyed;
    }
    let Some(key_value) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return Keyed::Unkeyed;
    };
    // Without a valid caller there is nothing to scope the key to; the handler answers 401
    // (before anything about the key is judged).
    // Only an admin's writes are kept: anyone else's request goes on to be refused (403)
    // without its body read here (up to 10 MiB on the image route).
    let caller = match AuthUser::from_headers(request.headers(), &state.verifier) {
        Ok(Some(user)) if user.role == auth::Role::Admin => user.id.to_string(),
        _ => return Keyed::Unkeyed,
    };
    match key_value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 255 => Keyed::Key {
            caller,
            key: key.to_owned(),
        },
        _ => Keyed::InvalidKey,
    }
}

/// What the middleware does with a keyed request.
enum Answer {
    /// Runs the handler: the key is now reserved for this request, or (`retried`) it was
    /// reserved by an attempt never answered and the routes are claimed.
    Run { retried: bool },
    /// Answers from the store: a replay or a conflict.
    Answered(Response),
}

/// What the store says of the key.
async fn answer_from_store(
    state: &IdempotencyLayerState,
    caller: &str,
    key: &str,
    request_hash: &str,
) -> Answer {
    let begun = state
        .store
        .begin(KeyedRequest {
            caller,
            key,
            request_hash,
            now: Utc::now(),
        })
        .await;
    let answered = match begun {
        Err(error) => {
            tracing::warn!(%error, "idempotency store unavailable");
            Problem::unavailable(1, "cannot check the Idempotency-Key now; retry").into_response()
        }
        Ok(Begin::Mismatch) => Problem::conflict(
            "idempotency-key-reused",
            "this Idempotency-Key was used with a different request",
        )
        .into_response(),
        // The first attempt may be running still, or may have died with its process after
        // its append: the claim makes running again safe, and answers with its events.
        Ok(Begin::InProgress) if state.claimed => return Answer::Run { retried: true },
        Ok(Begin::InProgress) => {
            let mut problem = Problem::conflict(
                "idempotency-key-in-progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            );
            problem.retry_after_seconds = Some(1);
            problem.into_response()
        }
        Ok(Begin::Replay(stored)) => replay(stored),
        Ok(Begin::Started) => return Answer::Run { retried: false },
    };
    Answer::Answered(answered)
}

/// Stores the handler's response under the key for replays, or frees the key when the server
/// failed or the caller was refused; returns the response.
async fn remember(
    state: &IdempotencyLayerState,
    caller: &str,
    key: &str,
    response: Response,
) -> Response {
    let (response_parts, response_body) = response.into_parts();
    let body = match axum::body::to_bytes(response_body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            let _ = state.store.abandon(caller, key).await;
            return Problem::internal_logged(&error).into_response();
        }
    };
    let status = response_parts.status;
    // A server error decided nothing; a refusal of the caller (401, 403) or of the moment
    // (408, 429) is not the command's answer either: let a retry with the same key run again
    // rather than replay it for a day.
    let not_an_answer = status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        );
    if not_an_answer {
        if let Err(error) = state.store.abandon(caller, key).await {
            tracing::warn!(%error, "could not free an idempotency key");
        }
    } else {
        let stored = StoredResponse {
            status: status.as_u16(),
            headers: REPLAYED_HEADERS
                .iter()
                .filter_map(|name| {
                    let value = response_parts.headers.get(*name)?.to_str().ok()?;
                    Some(((*name).to_owned(), value.to_owned()))
                })
                .collect(),
            body: body.to_vec(),
        };
        if let Err(error) = state.store.complete(caller, key, &stored).await {
            // The write itself succeeded; a retry will see InProgress until the key expires,
            // which is safer than running the command twice.
            tracing::error!(%error, "could not store an idempotent response");
        }
    }
    Response::from_parts(response_parts, Body::from(body))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

fn hash_request(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update([0]);
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(parts.uri.query().unwrap_or("").as_bytes());
    hasher.update([0]);
    // The same JSON document is the same request, whatever its key order or spacing.
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(document) => hasher.update(canonical_json(&document).as_bytes()),
        Err(_) => hasher.update(body),
    }
    hex(hasher)
}

/// The digest of `hasher` in lower-case hex.
fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `value` as JSON with object keys sorted at every level and no insignificant whitespace.
fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(key.clone()),
                        canonical_json(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_json;

    #[test]
    fn key_order_and_spacing_do_not_change_the_canonical_form() {
        let first: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": null}}"#)
                .expect("json");
        let second: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"p":1,"q":2}]},"b":1}"#).expect("json");
        assert_eq!(canonical_json(&first), canonical_json(&second));
        let other: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[{"p":1,"q":2},1]},"b":1}"#).expect("json");
        assert_ne!(
            canonical_json(&first),
            canonical_json(&other),
            "array order matters"
        );
    }
}
