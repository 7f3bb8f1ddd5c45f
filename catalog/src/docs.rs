//! `/api/docs`: the API reference, rendered by Swagger UI from assets compiled into the binary
//! (utoipa-swagger-ui's vendored copy), so it works on a machine without internet and loads
//! nothing from another origin. Its Content-Security-Policy lets only its own scripts run.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use web::Problem;

const INDEX: &str = include_str!("docs/index.html");
const INIT: &str = include_str!("docs/catalog-docs.js");

/// The policy of the docs page and its assets: scripts and styles from this origin only
/// (Swagger UI sets inline styles), the document fetched from this origin, no framing.
pub const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
     'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The assets the page loads besides its own script.
const ASSETS: [&str; 2] = ["swagger-ui.css", "swagger-ui-bundle.js"];

pub fn routes() -> Router {
    Router::new()
        .route(
            "/api/docs",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route("/api/docs/{asset}", get(asset))
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_POLICY),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    if name == "catalog-docs.js" {
        return page(INIT, "text/javascript; charset=utf-8");
    }
    if !ASSETS.contains(&name.as_str()) {
        return Problem::not_found("no such asset of the API reference").into_response();
    }
    let config = Arc::new(utoipa_swagger_ui::Config::from("/api/openapi.json"));
    match utoipa_swagger_ui::serve(&name, config) {
        Ok(Some(file)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, file.content_type),
                (header::CONTENT_SECURITY_POLICY, DOCS_POLICY.to_owned()),
                (header::CACHE_CONTROL, "public, max-age=86400".to_owned()),
            ],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => Problem::not_found("no such asset of the API reference").into_response(),
        Err(error) => Problem::internal_logged(&error).into_response(),
    }
}
