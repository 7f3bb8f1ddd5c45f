//! Extractors whose rejections are problem+json, so even malformed input gets a clear 4xx.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;

use crate::problem::Problem;

/// `axum::Json` with problem+json rejections: 400 for malformed JSON, 415 without a JSON
/// content type, 413 over the body limit, 422 for well-formed JSON of the wrong shape.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

/// `axum::extract::Query` with a 400 problem for a malformed query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

/// A query string whose repeated parameters fill a `Vec` field (`brand=acme&brand=sonora`),
/// parsed by `serde_html_form` (what HTML forms send), with a 400 problem when it is malformed.
#[derive(Debug)]
pub struct MultiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for MultiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_html_form::from_str(query)
            .map(MultiQuery)
            .map_err(|error| Problem::bad_request(format!("malformed query: {error}")))
    }
}

/// `axum::extract::Path` with a 404 problem when a segment does not parse.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(error) => Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid fields",
                error.body_text(),
            ),
            JsonRejection::JsonSyntaxError(error) => {
                Problem::bad_request(format!("malformed JSON: {}", error.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => Problem::unsupported_media_type(
                "expected a body with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(error) => Problem::from(error),
            other => Problem::bad_request(other.body_text()),
        }
    }
}

impl From<BytesRejection> for Problem {
    fn from(rejection: BytesRejection) -> Self {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Problem::payload_too_large(
                "the request body is over this route's limit (1 MiB; 10 MiB for an image upload)",
            )
        } else {
            Problem::bad_request(format!(
                "could not read the body: {}",
                rejection.body_text()
            ))
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::bad_request(format!("malformed query: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Problem::not_found(rejection.body_text())
    }
}
