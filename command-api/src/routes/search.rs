//! Search settings commands: the synonyms (`PUT /api/search/synonyms`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use web::extract::Json;
use web::Problem;

use super::schemas::SynonymsInput;
use super::{AdminCommand, X_POSITION};
use crate::service::SynonymsAccepted;
use crate::validation;

/// Replace the search synonyms: each group lists words a shopper means alike, so a search for
/// one finds the others too. The whole set is replaced; `{"groups": []}` clears it. Sending
/// the synonyms already set appends nothing and answers the position that set them.
#[utoipa::path(put, path = "/api/search/synonyms", tag = "commands", request_body = SynonymsInput,
    responses(
        (status = 200, description = "The synonyms as stored (trimmed, lower-cased, each word once per group) and the position of the `SynonymsChanged` event holding them",
            body = SynonymsAccepted, headers(("X-Position" = u64))),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, description = "Invalid groups: errors keyed `groups`, `groups.<i>` or `groups.<i>.<j>`", body = Problem)),
    security(("bearer" = [])))]
pub async fn set_synonyms(
    admin: AdminCommand,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let command = validation::synonyms(&body).map_err(Problem::validation)?;
    let result = admin
        .state
        .commands
        .set_synonyms(command, admin.metadata())
        .await?;
    Ok(synonyms_accepted(result))
}

/// 200 with the position in `X-Position` too, as every command answers.
fn synonyms_accepted(result: SynonymsAccepted) -> Response {
    (
        StatusCode::OK,
        [(X_POSITION, result.position.to_string())],
        axum::Json(result),
    )
        .into_response()
}
