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

/// `If-Match` (RFC 9110 §13.1.1): `None` when absent or `*`; otherwise the versions of the
/// listed strong entity tags (`"7"`, or `"7", "8"`). Weak tags (`W/"7"`) never match in the
/// strong comparison `If-Match` uses, so they add nothing (a list of only weak tags gives 412).
/// 400 when a member is not an entity tag holding a version.
pub fn if_match(headers: &HeaderMap) -> Result<Option<Vec<u64>>, Problem> {
    let malformed = || {
        Problem::bad_request("If-Match must list versions in quotes, such as \"7\" or \"7\", \"8\"")
    };
    let mut versions = Vec::new();
    let mut any = false;
    for value in headers.get_all(axum::http::header::IF_MATCH) {
        let text = value.to_str().map_err(|_| malformed())?;
        for member in text.split(',').map(str::trim) {
            if member == "*" {
                any = true;
                continue;
            }
            if let Some(weak) = member.strip_prefix("W/") {
                web::middleware::parse_version_tag_text(weak).ok_or_else(malformed)?;
                continue;
            }
            versions.push(web::middleware::parse_version_tag_text(member).ok_or_else(malformed)?);
        }
    }
    if headers.get(axum::http::header::IF_MATCH).is_none() || any {
        return Ok(None);
    }
    Ok(Some(versions))
}
