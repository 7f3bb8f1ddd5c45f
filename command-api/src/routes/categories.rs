//! Category commands.

use ::auth::{AdminUser, Role};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use web::extract::Json;
use web::Problem;

use super::schemas::CategoryInput;
use super::{metadata, X_POSITION};
use crate::service::Accepted;
use crate::{validation, CommandState};

/// Create a category; `parent`, when given, must exist.
#[utoipa::path(post, path = "/api/categories", tag = "commands", request_body = CategoryInput,
    responses((status = 201, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "Slug taken", body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_category(
    State(state): State<CommandState>,
    AdminUser(user): AdminUser,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    user.require(&[Role::Admin])?;
    let created = validation::new_category(&body).map_err(Problem::validation)?;
    let result = state
        .commands
        .create_category(created, metadata(&user, &headers))
        .await?;
    Ok((
        StatusCode::CREATED,
        [(X_POSITION, result.position.to_string())],
        axum::Json(result),
    )
        .into_response())
}
