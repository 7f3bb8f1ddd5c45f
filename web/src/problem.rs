//! RFC 9457 problem details: the body of every error response.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Validation messages keyed by field name (dotted for nested fields).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// An error as a client sees it. 4xx problems explain themselves; 5xx ones are opaque (the
/// cause is logged, never sent).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem, such as `urn:catalog:problem:validation`.
    #[serde(rename = "type", serialize_with = "type_uri")]
    #[schema(value_type = String, example = "urn:catalog:problem:validation")]
    pub kind: &'static str,
    #[schema(value_type = String)]
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Messages per field (dotted for nested fields), for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub errors: Option<Box<FieldErrors>>,
    #[serde(skip)]
    pub retry_after_seconds: Option<u64>,
}

impl Problem {
    /// A problem of `kind` (a short stable slug) with the given status, title and detail.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            retry_after_seconds: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn conflict(kind: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::CONFLICT, kind, "Conflict", detail)
    }

    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "version-mismatch",
            "Precondition failed",
            detail,
        )
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            detail,
        )
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 422 with messages per field.
    pub fn validation(errors: FieldErrors) -> Self {
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        let mut problem = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid fields",
            format!("invalid fields: {}", fields.join(", ")),
        );
        problem.errors = Some(Box::new(errors));
        problem
    }

    /// 422 for a single field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Problem::validation(FieldErrors::from([(
            field.to_owned(),
            vec![message.into()],
        )]))
    }

    pub fn too_many_requests(retry_after_seconds: u64, detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
            detail,
        )
        .with_retry_after(retry_after_seconds)
    }

    pub fn unavailable(retry_after_seconds: u64, detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
        .with_retry_after(retry_after_seconds)
    }

    /// The problem with a `Retry-After` header of `seconds` (at least one).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds.max(1));
        self
    }

    /// An opaque 500. Log the cause with [`Problem::internal_logged`] instead where there is one.
    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "the server failed to handle the request; it has been logged",
        )
    }

    /// Logs `cause` for operators and returns an opaque 500 for the client.
    pub fn internal_logged(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Problem::internal()
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

fn type_uri<S: serde::Serializer>(kind: &&'static str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("urn:catalog:problem:{kind}"))
}

impl std::fmt::Display for Problem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
