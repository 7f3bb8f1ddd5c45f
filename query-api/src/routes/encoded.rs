//! Answers as bytes and their headers: encoded bodies, validators (`ETag`, `If-None-Match`),
//! `Cache-Control` and the surrogate keys the edge cache purges by.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use projectors::read_model::{ProductView, StampScope};
use uuid::Uuid;

use super::{with_position, QueryProblem, QueryResult};
use crate::answers::{Answer, AnswerKey};
use crate::QueryState;

/// `Cache-Control` of listings, bestsellers and the category list: fresh for 5 s in a browser,
/// then served while revalidated; shared caches (the edge) are purged by events instead.
const LIST_CACHE_CONTROL: HeaderValue =
    HeaderValue::from_static("public, max-age=5, stale-while-revalidate=30");

/// The surrogate keys of an answer (`Surrogate-Key`, space-separated), by which the edge
/// cache purges it when an event changes what it shows (docker/varnish/catalog.vcl): every
/// answer has `catalog` (all of them at once); a product page `product:<id>`; a listing
/// `scope:all` over every category, else `scope:<slug>` per category; bestseller lists
/// `bestsellers`; the category list `categories`.
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

pub(super) fn surrogate_keys(keys: &str) -> HeaderValue {
    HeaderValue::from_str(keys).unwrap_or(HeaderValue::from_static("catalog"))
}

pub(super) fn product_keys(id: Uuid) -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    surrogate_keys(&format!(
        "catalog product:{}",
        id.hyphenated().encode_lower(&mut text)
    ))
}

/// A JSON answer from bytes already encoded.
pub(crate) fn json_bytes(body: Bytes) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"items":[…]}` (and `"next_cursor"` when `cursor` is given) from the items' encoded
/// documents: a listing is its products' bytes, each encoded once.
pub(crate) fn items_json(items: &[Arc<ProductView>], cursor: Option<Option<&str>>) -> Bytes {
    let parts: Vec<Bytes> = items.iter().map(|item| item.json()).collect();
    let size = parts.iter().map(Bytes::len).sum::<usize>() + parts.len() + 128;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"items\":[");
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(part);
    }
    body.push(b']');
    if let Some(cursor) = cursor {
        body.extend_from_slice(b",\"next_cursor\":");
        match cursor {
            Some(text) => {
                // A cursor is base64url: nothing to escape, but write it as JSON does.
                let _ = serde_json::to_writer(&mut body, text);
            }
            None => body.extend_from_slice(b"null"),
        }
    }
    body.push(b'}');
    Bytes::from(body)
}

/// A listing's validator: derived from what the page shows (each item's id and version, and
/// where the next page starts), the same in every process.
pub(super) fn items_tag(items: &[Arc<ProductView>], cursor: Option<&str>) -> HeaderValue {
    let mut hasher = std::hash::DefaultHasher::new();
    for item in items {
        item.id.hash(&mut hasher);
        item.version.hash(&mut hasher);
    }
    cursor.hash(&mut hasher);
    hashed_tag(hasher.finish())
}

pub(super) fn hashed_tag(hash: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"l{hash:016x}\"")).unwrap_or(HeaderValue::from_static("\"l\""))
}

/// The entity tags `If-None-Match` gives, each without its weakness prefix (`*` as is):
/// GET compares them weakly.
fn if_none_match(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| {
            let tag = tag.trim();
            tag.strip_prefix("W/").unwrap_or(tag)
        })
}

/// Whether `If-None-Match` names `tag` (or `*`).
fn matches_tag(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    let Ok(tag) = tag.to_str() else {
        return false;
    };
    if_none_match(headers).any(|given| given == "*" || given == tag)
}

/// Whether `If-None-Match` names a product's current version (or `*`): `"7"`, `W/"7"`, `7`.
pub(super) fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    if_none_match(headers).any(|given| {
        given == "*" || web::middleware::parse_version_tag_text(given) == Some(version)
    })
}

/// A 200 with `answer`'s body, or a 304 when `If-None-Match` names its tag; either with the
/// list headers (`ETag`, `Cache-Control`, `Surrogate-Key`).
fn list_response(headers: &HeaderMap, answer: &Answer) -> Response {
    let mut response = if matches_tag(headers, &answer.tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_bytes(answer.body.clone())
    };
    let fields = response.headers_mut();
    fields.insert(ETAG, answer.tag.clone());
    fields.insert(CACHE_CONTROL, LIST_CACHE_CONTROL);
    fields.insert(SURROGATE_KEY, answer.keys.clone());
    response
}

/// A list answer from the answer cache while the read model's stamp for `scope` holds
/// ([`crate::answers`]), else built by `build` (which reads the model and gives the answer and
/// the position it reflects) and kept.
pub(super) async fn cached_list<F, Fut>(
    state: &QueryState,
    headers: &HeaderMap,
    key: AnswerKey,
    scope: StampScope<'_>,
    build: F,
) -> QueryResult
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(Answer, u64), QueryProblem>>,
{
    // The position before the stamp: an answer whose stamp still holds reflects it.
    let position = state.read_model.position();
    let stamp = state.read_model.change_stamp(scope);
    if let Some(stamp) = stamp {
        if let Some(answer) = state.answers.get(&key, stamp) {
            return Ok(with_position(list_response(headers, &answer), position));
        }
    }
    let (mut answer, position) = build().await?;
    let response = list_response(headers, &answer);
    if let Some(stamp) = stamp {
        answer.stamp = stamp;
        state.answers.insert(key, answer);
    }
    Ok(with_position(response, position))
}
