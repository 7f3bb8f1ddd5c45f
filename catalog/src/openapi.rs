//! The OpenAPI document: the whole public API, whichever role serves it.

use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Catalog",
        version = "1",
        description = "An event-driven CQRS product catalog. Errors are RFC 9457 application/problem+json; \
                       every response carries X-Request-Id; every query response carries X-Position."
    ),
    paths(
        command_api::routes::products::create_product,
        command_api::routes::products::bulk_create,
        command_api::routes::products::change_details,
        command_api::routes::products::change_price,
        command_api::routes::products::adjust_stock,
        command_api::routes::products::record_sale,
        command_api::routes::products::publish,
        command_api::routes::products::unpublish,
        command_api::routes::products::archive,
        command_api::routes::images::upload_image,
        command_api::routes::images::remove_image,
        command_api::routes::categories::create_category,
        command_api::routes::search::set_synonyms,
        command_api::routes::auth::login,
        command_api::routes::auth::refresh,
        command_api::routes::auth::logout,
        command_api::routes::session::start,
        command_api::routes::session::refresh,
        command_api::routes::session::end,
        command_api::routes::auth::me,
        command_api::routes::auth::create_user,
        command_api::routes::auth::jwks,
        query_api::routes::get_product,
        query_api::routes::list_products,
        query_api::routes::bestsellers,
        query_api::routes::list_categories,
        query_api::routes::search::search,
        query_api::routes::search::suggest,
        query_api::routes::synonyms::list_synonyms,
        query_api::events_api::list_events,
        query_api::events_api::stream_events,
        query_api::analytics::trending,
        query_api::analytics::searches,
        crate::roles::admin::projections,
        crate::roles::admin::parked,
        crate::roles::admin::retry,
        crate::roles::admin::skip,
        crate::roles::admin::rebuild,
        crate::roles::admin::pause,
        crate::roles::admin::resume,
        web::ops::healthz,
        web::ops::readyz,
        web::ops::metrics_text,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "commands", description = "Admin writes (command-api); role admin"),
        (name = "queries", description = "Shopper reads (query-api); public"),
        (name = "auth", description = "Tokens and users"),
        (name = "analysts", description = "The event log, its live stream and shopper analytics (query-api); role analyst or admin"),
        (name = "operations", description = "Health, readiness, metrics, projections"),
    )
)]
pub struct ApiDoc;

/// The document every service serves: what the annotations generate, completed with what holds
/// for every operation alike (so no handler can forget it): errors are
/// `application/problem+json`; every response carries `X-Request-Id`; 429 and 503 carry
/// `Retry-After`; writes can answer 400, 401, 403, 413 and 415; every POST of the command API
/// takes `Idempotency-Key`; every query takes `X-Min-Position` and answers `X-Position`.
pub fn document() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    complete(&mut document);
    document
}

fn header(description: &str, schema: Value) -> Value {
    json!({"description": description, "schema": schema})
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The headers every response documents.
struct CommonHeaders {
    request_id: Value,
    retry_after: Value,
    position: Value,
}

/// What kind of operation a path and method are, for the parts utoipa does not know.
struct OperationKind<'a> {
    path: &'a str,
    method: &'a str,
    /// A write of the catalog (`/api/products*`, `/api/categories*`, the search settings).
    command: bool,
    /// A read of the views (`X-Min-Position` / `X-Position`).
    query: bool,
}

impl<'a> OperationKind<'a> {
    fn of(path: &'a str, method: &'a str) -> Self {
        let is_write = matches!(method, "post" | "put" | "patch" | "delete");
        let catalog = path.starts_with("/api/products") || path.starts_with("/api/categories");
        let search = path == "/api/search" || path.starts_with("/api/search/");
        OperationKind {
            path,
            method,
            command: is_write && (catalog || search),
            query: method == "get" && (catalog || search),
        }
    }
}

/// Adds what the derive macros cannot say: the shared error responses and headers, the
/// headers of read-your-writes and idempotency, exact parameter schemas, and the paths the
/// binary serves itself.
fn complete(document: &mut Value) {
    let headers = CommonHeaders {
        request_id: header(
            "The request's id: the one the client sent, or a new one",
            json!({"type": "string"}),
        ),
        retry_after: header(
            "Seconds to wait before retrying",
            json!({"type": "integer"}),
        ),
        position: header(
            "The log position the views answering had reached",
            json!({"type": "integer", "format": "int64", "minimum": 0}),
        ),
    };
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if let Some(operation) = operation.as_object_mut() {
                complete_operation(&OperationKind::of(path, method), operation, &headers);
            }
        }
    }
    add_served_paths(paths);
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        command_api::routes::schemas::refine(schemas);
    }
    if let Some(status) = document.pointer_mut("/components/schemas/ProductView/properties/status")
    {
        *status = json!({"type": "string", "enum": ["draft", "published", "archived"]});
    }
}

fn complete_operation(
    kind: &OperationKind,
    operation: &mut serde_json::Map<String, Value>,
    headers: &CommonHeaders,
) {
    let secured = operation.get("security").is_some();
    let has_body = operation.get("requestBody").is_some();
    if let Some(responses) = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        add_error_responses(kind, responses, secured, has_body);
        add_response_headers(kind, responses, headers);
    }
    let Some(parameters) = operation
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    else {
        return;
    };
    add_header_parameters(kind, parameters);
    for parameter in parameters.iter_mut() {
        if let Some(schema) = parameter_schema(kind.path, parameter["name"].as_str()) {
            parameter["schema"] = schema;
        }
        if parameter["name"] == "X-Min-Position" {
            parameter["description"] = json!(X_MIN_POSITION_DESCRIPTION);
        }
    }
    if parameters.is_empty() {
        operation.remove("parameters");
    }
}

/// The problem responses an operation can give besides its own: bad bodies, auth, conflicts,
/// a dependency down.
fn add_error_responses(
    kind: &OperationKind,
    responses: &mut serde_json::Map<String, Value>,
    secured: bool,
    has_body: bool,
) {
    let mut wanted: Vec<(&str, &str)> = Vec::new();
    if has_body {
        wanted.extend([
            ("400", "Malformed JSON or parameters"),
            ("413", "Body over 1 MiB"),
            ("415", "Body without Content-Type: application/json"),
        ]);
    }
    if secured {
        wanted.extend([
            ("401", "No valid access token"),
            ("403", "The token's role may not do this"),
        ]);
    }
    if kind.command && kind.method == "post" {
        wanted.push((
            "409",
            "Conflict, or an Idempotency-Key reused with another body or still in progress",
        ));
    } else if kind.command {
        wanted.push(("409", "Conflict with the product's state (archived, say)"));
    }
    if kind.path.starts_with("/api/products/{id}") && kind.command {
        wanted.push(("400", "A malformed If-Match"));
    }
    wanted.push(("503", "A dependency is down; retry after Retry-After"));
    for (status, description) in wanted {
        responses
            .entry(status)
            .or_insert_with(|| problem_response(description));
    }
}

/// Errors as problem+json; every response with its request id, 429 and 503 with
/// `Retry-After`, reads with `X-Position`.
fn add_response_headers(
    kind: &OperationKind,
    responses: &mut serde_json::Map<String, Value>,
    common: &CommonHeaders,
) {
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error {
            if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) {
                if let Some(json) = content.remove("application/json") {
                    content.insert("application/problem+json".into(), json);
                }
            }
        }
        let Some(headers) = response
            .entry("headers")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        else {
            continue;
        };
        headers.insert("X-Request-Id".into(), common.request_id.clone());
        if status == "429" || status == "503" {
            headers.insert("Retry-After".into(), common.retry_after.clone());
        }
        if kind.query {
            headers.insert("X-Position".into(), common.position.clone());
        }
    }
}

/// `Idempotency-Key` on creating writes, `X-Min-Position` on reads.
fn add_header_parameters(kind: &OperationKind, parameters: &mut Vec<Value>) {
    let named = |parameters: &Vec<Value>, name: &str| {
        parameters.iter().any(|parameter| parameter["name"] == name)
    };
    if kind.method == "post"
        && (kind.command || kind.path == "/api/auth/users")
        && !named(parameters, "Idempotency-Key")
    {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Any string of 1–255 characters: a retry with the same key and body gets the first answer and appends nothing; another body is 409. Kept at least 24 h, per caller.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}
        }));
    }
    if kind.query && !named(parameters, "X-Min-Position") {
        parameters.push(json!({
            "name": "X-Min-Position", "in": "header", "required": false,
            "description": X_MIN_POSITION_DESCRIPTION,
            "schema": {"type": "integer", "format": "int64", "minimum": 0}
        }));
    }
}

/// What `X-Min-Position` does, on every read that takes it.
const X_MIN_POSITION_DESCRIPTION: &str = "Answer only once the views have applied this position: the request waits up to 2 s, then answers 503 with Retry-After. A position the log has not reached (one beyond its head) is a 503 too, by design: the reader cannot tell it from a write still on its way, so it is told to retry rather than refused. (Schemathesis's not_a_server_error check accepts this 503, and only this status, on the reads that take the header: schemathesis.toml.)";

/// A log position or version as the server reads it: `0` to `i64::MAX` (positions and
/// versions are 64-bit signed in the stores; a larger number is a 400).
const POSITION_MAX: i64 = i64::MAX;

/// What `If-Match` holds (RFC 9110 §13.1.1): `*`, or a list of entity tags holding a version
/// (`"7"`, weak `W/"7"`, or a bare `7`), at most 19 digits each.
const IF_MATCH_PATTERN: &str = r#"^[ \t]*(\*|(W/)?("[0-9]{1,19}"|[0-9]{1,19}))([ \t]*,[ \t]*(\*|(W/)?("[0-9]{1,19}"|[0-9]{1,19})))*[ \t]*$"#;

/// The exact schema of a parameter (query or header) whose Rust type says less than the
/// contract.
fn parameter_schema(path: &str, name: Option<&str>) -> Option<Value> {
    let schema = match name? {
        "X-Min-Position" | "Last-Event-ID" => {
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": POSITION_MAX})
        }
        "If-Match" => json!({"type": "string", "pattern": IF_MATCH_PATTERN}),
        "If-None-Match" | "Authorization" => json!({"type": "string"}),
        "Idempotency-Key" => json!({"type": "string", "minLength": 1, "maxLength": 255}),
        "window" => json!({"type": "string", "enum": ["1h", "24h", "7d"], "default": "24h"}),
        "category" if path == "/api/products/bestsellers" || path == "/api/analytics/trending" => {
            // An empty value counts as not given.
            json!({"type": "string", "pattern": "^[a-z0-9-]{0,64}$"})
        }
        "after" => {
            json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": POSITION_MAX})
        }
        "limit" if path == "/api/events" => {
            json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})
        }
        "category" if path == "/api/search" || path == "/api/products" => json!({
            "type": "array",
            // An empty value counts as not given.
            "items": {"type": "string", "pattern": "^[a-z0-9-]{0,64}$"},
            "maxItems": 20
        }),
        "brand" if path == "/api/search" || path == "/api/products" => json!({
            "type": "array",
            "items": {"type": "string", "maxLength": 100},
            "maxItems": 20
        }),
        "limit" if path == "/api/search/suggest" => {
            json!({"type": "integer", "minimum": 1, "maximum": 20, "default": 5})
        }
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": 100}),
        "min_price" | "max_price" => json!({"type": "integer", "format": "int64", "minimum": 0}),
        "in_stock" => json!({"type": "boolean"}),
        "sort" if path == "/api/search" => json!({
            "type": "string",
            "enum": ["relevance", "price_asc", "price_desc", "newest"],
            "default": "relevance"
        }),
        "sort" if path == "/api/products" => json!({
            "type": "string",
            "enum": ["newest", "price_asc", "price_desc", "bestselling", "name"],
            "default": "newest"
        }),
        _ => return None,
    };
    // The parameters an empty value leaves out (`limit=` is no limit given, an empty
    // `Last-Event-ID` none): the schema says so, so a fuzzer sending one expects it accepted.
    let empty_is_absent = matches!(
        name?,
        "window"
            | "after"
            | "limit"
            | "min_price"
            | "max_price"
            | "in_stock"
            | "sort"
            | "Last-Event-ID"
    );
    Some(if empty_is_absent {
        json!({"anyOf": [schema, {"type": "string", "maxLength": 0, "description": "Empty: as if not given"}]})
    } else {
        schema
    })
}

/// The NDJSON body of the bulk import, and the paths the binary serves itself.
fn add_served_paths(paths: &mut serde_json::Map<String, Value>) {
    if let Some(bulk) = paths
        .get_mut("/api/products/bulk")
        .and_then(|item| item.get_mut("post"))
        .and_then(|operation| operation.get_mut("requestBody"))
        .and_then(|body| body.get_mut("content"))
        .and_then(Value::as_object_mut)
    {
        // Each item is checked on its own and refused in its own result (a 207 whatever the
        // items hold), so the request's schema is the array alone.
        if let Some(json) = bulk.get_mut("application/json") {
            json["schema"] = json!({
                "type": "array", "minItems": 1, "maxItems": 1000,
                "items": {"description": "A product as for POST /api/products (ProductInput); one the rules refuse is that item's 422 in the results, not the request's"}
            });
        }
        bulk.insert(
            "application/x-ndjson".into(),
            json!({"schema": {"type": "string", "description": "One product (as for POST /api/products) per line, at most 1,000 lines"}}),
        );
    }
    if let Some(upload) = paths
        .get_mut("/api/products/{id}/images")
        .and_then(|item| item.get_mut("post"))
        .and_then(|operation| operation.get_mut("requestBody"))
    {
        let binary =
            json!({"schema": {"type": "string", "format": "binary", "maxLength": 10_485_760}});
        upload["content"] = json!({
            "image/jpeg": binary.clone(), "image/png": binary.clone(), "image/webp": binary,
        });
    }
    paths.insert(
        "/images/{name}".into(),
        json!({"get": {"tags": ["queries"], "summary": "An uploaded image's rendition, when the catalog keeps images itself (no CATALOG_IMAGES); cached for a year (names are content-addressed)",
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}\\.(page|thumb)\\.jpg$"}}],
            "responses": {"200": {"description": "The JPEG", "content": {"image/jpeg": {}}},
                "404": {"description": "No such image (or images are kept in S3)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}}}),
    );
    paths.insert(
        "/api/openapi.json".into(),
        json!({"get": {"tags": ["operations"], "summary": "This document", "responses": {"200": {"description": "The OpenAPI document of the whole public API", "content": {"application/json": {}}}}}}),
    );
    paths.insert(
        "/api/docs".into(),
        json!({"get": {"tags": ["operations"], "summary": "A browsable rendering of this document (Swagger UI, from assets compiled into the binary)", "responses": {"200": {"description": "An HTML page", "content": {"text/html": {}}}}}}),
    );
    paths.insert(
        "/api/docs/{asset}".into(),
        json!({"get": {"tags": ["operations"], "summary": "A script or style sheet of the reference page",
            "parameters": [{"name": "asset", "in": "path", "required": true, "schema": {"type": "string", "enum": ["swagger-ui.css", "swagger-ui-bundle.js", "catalog-docs.js"]}}],
            "responses": {"200": {"description": "The asset", "content": {"text/css": {}, "text/javascript": {}}},
                "404": {"description": "No such asset", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}}}),
    );
}

#[cfg(test)]
mod tests;
