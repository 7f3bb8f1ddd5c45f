//! Product commands.

use axum::http::header::LOCATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use web::extract::{Json, Path};
use web::Problem;

use super::schemas::{
    BulkItemResult, BulkResults, PriceInput, ProductInput, ProductPatch, SaleInput, StockInput,
};
use super::{accepted, AdminCommand, X_POSITION};
use crate::commands::ProductCommand;
use crate::service::Accepted;
use crate::validation;

/// The most items one bulk request may hold.
pub const MAX_BULK_ITEMS: usize = 1000;

/// Create a product.
#[utoipa::path(post, path = "/api/products", tag = "commands",
    request_body = ProductInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retry")),
    responses(
        (status = 201, description = "Created", body = Accepted, headers(("Location" = String), ("X-Position" = u64))),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "Duplicate SKU or idempotency key reused", body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem),
        (status = 422, description = "Invalid fields or unknown category", body = Problem),
    ),
    security(("bearer" = [])))]
pub async fn create_product(
    admin: AdminCommand,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let command = validation::new_product(&body).map_err(Problem::validation)?;
    let result = admin
        .state
        .commands
        .create_product_claimed(command, admin.metadata(), admin.claim.clone())
        .await?;
    let mut response = accepted(StatusCode::CREATED, result);
    if let Ok(location) = format!("/api/products/{}", result.id).parse() {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// Change a product's descriptive fields.
#[utoipa::path(patch, path = "/api/products/{id}", tag = "commands", request_body = ProductPatch,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header, description = "\"<version>\"; 412 when stale")),
    responses((status = 200, body = Accepted), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn change_details(
    admin: AdminCommand,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let command = validation::details_change(&body).map(ProductCommand::ChangeDetails);
    Ok(accepted(
        StatusCode::OK,
        admin.on_product(&id, command).await?,
    ))
}

/// Change a product's price.
#[utoipa::path(put, path = "/api/products/{id}/price", tag = "commands", request_body = PriceInput,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn change_price(
    admin: AdminCommand,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let command = validation::price_change(&body).map(ProductCommand::ChangePrice);
    Ok(accepted(
        StatusCode::OK,
        admin.on_product(&id, command).await?,
    ))
}

/// Adjust a product's stock by a delta.
#[utoipa::path(post, path = "/api/products/{id}/stock", tag = "commands", request_body = StockInput,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = 404, body = Problem), (status = 409, description = "Stock would go below 0", body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn adjust_stock(
    admin: AdminCommand,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let command = validation::stock_adjustment(&body).map(ProductCommand::AdjustStock);
    Ok(accepted(
        StatusCode::OK,
        admin.on_product(&id, command).await?,
    ))
}

/// Record a sale: stock goes down and sales up by the quantity.
#[utoipa::path(post, path = "/api/products/{id}/sales", tag = "commands", request_body = SaleInput,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = 404, body = Problem), (status = 409, description = "Not enough stock", body = Problem),
        (status = 412, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn record_sale(
    admin: AdminCommand,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    let command = validation::sale(&body).map(ProductCommand::RecordSale);
    Ok(accepted(
        StatusCode::OK,
        admin.on_product(&id, command).await?,
    ))
}

/// Publish a product: shoppers can see it.
#[utoipa::path(post, path = "/api/products/{id}/publish", tag = "commands",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = 404, body = Problem), (status = 409, description = "Already published or archived", body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn publish(admin: AdminCommand, Path(id): Path<String>) -> Result<Response, Problem> {
    let result = admin.on_product(&id, Ok(ProductCommand::Publish)).await?;
    Ok(accepted(StatusCode::OK, result))
}

/// Unpublish a product: back to draft.
#[utoipa::path(post, path = "/api/products/{id}/unpublish", tag = "commands",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = Accepted), (status = 404, body = Problem), (status = 409, description = "Not published", body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn unpublish(admin: AdminCommand, Path(id): Path<String>) -> Result<Response, Problem> {
    let result = admin.on_product(&id, Ok(ProductCommand::Unpublish)).await?;
    Ok(accepted(StatusCode::OK, result))
}

/// Archive a product: shoppers get 404 for it from now on; an admin still reads it (with
/// `"status": "archived"`) at `GET /api/products/{id}`.
#[utoipa::path(delete, path = "/api/products/{id}", tag = "commands",
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 204, description = "Archived", headers(("X-Position" = u64))), (status = 404, body = Problem),
        (status = 409, description = "Already archived", body = Problem), (status = 412, body = Problem)),
    security(("bearer" = [])))]
pub async fn archive(admin: AdminCommand, Path(id): Path<String>) -> Result<Response, Problem> {
    let result = admin.on_product(&id, Ok(ProductCommand::Archive)).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(X_POSITION, result.position.to_string())],
    )
        .into_response())
}

/// Create up to 1000 products: a JSON array, or NDJSON (`application/x-ndjson`).
#[utoipa::path(post, path = "/api/products/bulk", tag = "commands",
    request_body(content = Vec<ProductInput>, description = "A JSON array, or one JSON object per line as application/x-ndjson"),
    responses((status = 207, description = "A result per item, in input order", body = BulkResults),
        (status = 400, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn bulk_create(
    admin: AdminCommand,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let items = bulk_items(&admin.headers, &body)?;
    if items.is_empty() {
        return Err(Problem::invalid_field(
            "body",
            "must hold at least one product",
        ));
    }
    if items.len() > MAX_BULK_ITEMS {
        return Err(Problem::invalid_field(
            "body",
            format!(
                "may hold at most {MAX_BULK_ITEMS} products; got {}",
                items.len()
            ),
        ));
    }
    // Valid items are created at once, each on its own (a duplicate SKU fails only its item),
    // so the store commits them in a few groups instead of one transaction each.
    let mut outcomes: Vec<Option<Result<Accepted, Problem>>> = Vec::with_capacity(items.len());
    let mut commands = Vec::new();
    for item in items {
        match item.and_then(|value| validation::new_product(&value).map_err(Problem::validation)) {
            Ok(command) => {
                commands.push(command);
                outcomes.push(None);
            }
            Err(problem) => outcomes.push(Some(Err(problem))),
        }
    }
    let mut created = admin
        .state
        .commands
        .create_each(commands, admin.metadata())
        .await
        .into_iter();
    let results = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| {
            let outcome = outcome.unwrap_or_else(|| match created.next() {
                Some(result) => result.map_err(Problem::from),
                None => Err(Problem::internal_logged(&"a bulk item got no answer")),
            });
            bulk_item_result(index, outcome)
        })
        .collect();
    Ok((
        StatusCode::MULTI_STATUS,
        axum::Json(BulkResults { results }),
    )
        .into_response())
}

/// The items of a bulk body: a JSON array, or NDJSON (a line that is not JSON is that item's
/// 400, not the whole request's). 400 for a malformed array, 415 for another media type.
/// Public for the fuzz target (fuzz/fuzz_targets/bulk_body.rs).
pub fn bulk_items(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<Result<Value, Problem>>, Problem> {
    match super::media_type(headers).as_str() {
        "application/json" => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) => Ok(items.into_iter().map(Ok).collect()),
            Ok(_) => Err(Problem::invalid_field(
                "body",
                "must be a JSON array of products",
            )),
            Err(error) => Err(Problem::bad_request(format!("malformed JSON: {error}"))),
        },
        "application/x-ndjson" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| Problem::bad_request("NDJSON must be UTF-8"))?;
            Ok(text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| {
                    serde_json::from_str::<Value>(line).map_err(|error| {
                        Problem::bad_request(format!("malformed JSON line: {error}"))
                    })
                })
                .collect())
        }
        _ => Err(Problem::unsupported_media_type(
            "expected application/json (an array) or application/x-ndjson",
        )),
    }
}

fn bulk_item_result(index: usize, outcome: Result<Accepted, Problem>) -> BulkItemResult {
    match outcome {
        Ok(accepted) => BulkItemResult {
            index,
            status: StatusCode::CREATED.as_u16(),
            id: Some(accepted.id),
            version: Some(accepted.version),
            position: Some(accepted.position),
            problem: None,
        },
        Err(problem) => BulkItemResult {
            index,
            status: problem.status,
            id: None,
            version: None,
            position: None,
            problem: serde_json::to_value(&problem).ok(),
        },
    }
}
