//! The command-api's HTTP routes.

pub mod auth;
pub mod categories;
pub mod images;
pub mod products;
pub mod schemas;
pub mod search;
pub mod session;

use ::auth::{AdminUser, AuthUser};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use events::EventMetadata;
use uuid::Uuid;
use web::{FieldErrors, Problem};

use crate::commands::ProductCommand;
use crate::idempotency::RequestClaim;
use crate::service::Accepted;
use crate::CommandState;

pub const X_POSITION: &str = "x-position";

/// What every command handler starts from: the state, the admin sending the command (401 or
/// 403 before the body is read) and the request's headers (`If-Match`, the request id).
pub struct AdminCommand {
    pub state: CommandState,
    pub user: AuthUser,
    pub headers: HeaderMap,
    /// The claim of a request with an `Idempotency-Key` on a claimed route.
    pub claim: Option<RequestClaim>,
}

impl FromRequestParts<CommandState> for AdminCommand {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &CommandState,
    ) -> Result<Self, Self::Rejection> {
        let AdminUser(user) = AdminUser::from_request_parts(parts, state).await?;
        Ok(AdminCommand {
            state: state.clone(),
            user,
            headers: parts.headers.clone(),
            claim: parts.extensions.get::<RequestClaim>().cloned(),
        })
    }
}

impl AdminCommand {
    /// The envelope metadata of the events this command produces.
    pub fn metadata(&self) -> EventMetadata {
        metadata(&self.user, &self.headers)
    }

    /// Runs `command` (or answers its field errors) on the product with path segment `id`,
    /// under the request's `If-Match`. An unknown id is 404 and a bad `If-Match` 400 before the
    /// body's errors (422).
    pub async fn on_product(
        &self,
        id: &str,
        command: Result<ProductCommand, FieldErrors>,
    ) -> Result<Accepted, Problem> {
        let id = parse_product_id(id)?;
        let expected = if_match(&self.headers)?;
        let command = command.map_err(Problem::validation)?;
        Ok(self
            .state
            .commands
            .execute_claimed(id, command, expected, self.metadata(), self.claim.clone())
            .await?)
    }
}

/// A command's answer: `status`, the position in `X-Position`, `{"id","version","position"}`.
pub fn accepted(status: StatusCode, accepted: Accepted) -> Response {
    (
        status,
        [(X_POSITION, accepted.position.to_string())],
        axum::Json(accepted),
    )
        .into_response()
}

/// The request's media type, lower-cased without parameters (`Application/JSON; charset=utf-8`
/// is `application/json`); empty without a readable `Content-Type`.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

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
        traceparent: None,
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
