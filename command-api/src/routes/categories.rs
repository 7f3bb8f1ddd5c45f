//! Category commands.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use web::extract::Json;
use web::Problem;

use super::schemas::CategoryInput;
use super::{accepted, AdminCommand};
use crate::service::Accepted;
use crate::validation;

/// Create a category; `parent`, when given, must exist.
#[utoipa::path(post, path = "/api/categories", tag = "commands", request_body = CategoryInput,
    responses((status = 201, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "Slug taken", body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_category(
    admin: AdminCommand,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let command = validation::new_category(&body).map_err(Problem::validation)?;
    let result = admin
        .state
        .commands
        .create_category(command, admin.metadata())
        .await?;
    Ok(accepted(StatusCode::CREATED, result))
}
