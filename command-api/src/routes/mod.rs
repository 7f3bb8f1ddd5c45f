//! The command-api's HTTP routes.

pub mod auth;
pub mod categories;
pub mod products;
pub mod schemas;

use ::auth::AuthUser;
use axum::http::HeaderMap;
use events::EventMetadata;
use uuid::Uuid;
use web::Problem;

pub const X_POSITION: &str = "x-position";

/// Who issued a command and which request carried it, for the events' envelopes.
pub fn metadata(user: &AuthUser, headers: &HeaderMap) -> EventMetadata {
    let request_id = headers
        .get(&web::middleware::X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    EventMetadata {
        actor: Some(user.id.to_string()),
        correlation_id: request_id.clone(),
        causation_id: request_id,
    }
}

/// A product id from the path: anything that is not a UUID names no product.
pub fn parse_product_id(text: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(text).map_err(|_| Problem::not_found(format!("no product with id {text:?}")))
}

/// `If-Match: "<version>"`: `None` when absent or `*`; 400 when malformed.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    if value.as_bytes() == b"*" {
        return Ok(None);
    }
    web::middleware::parse_version_tag(value)
        .map(Some)
        .ok_or_else(|| Problem::bad_request("If-Match must be a version in quotes, such as \"7\""))
}
