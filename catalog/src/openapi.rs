//! The OpenAPI document: the whole public API, whichever role serves it.

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
        command_api::routes::categories::create_category,
        command_api::routes::auth::login,
        command_api::routes::auth::refresh,
        command_api::routes::auth::logout,
        command_api::routes::auth::me,
        command_api::routes::auth::create_user,
        command_api::routes::auth::jwks,
        query_api::routes::get_product,
        query_api::routes::list_products,
        query_api::routes::bestsellers,
        query_api::routes::list_categories,
        crate::admin::projections,
        web::ops::healthz,
        web::ops::readyz,
        web::ops::metrics_text,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "commands", description = "Admin writes (command-api); role admin"),
        (name = "queries", description = "Shopper reads (query-api); public"),
        (name = "auth", description = "Tokens and users"),
        (name = "operations", description = "Health, readiness, metrics, projections"),
    )
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_of_the_contract() {
        let document = serde_json::to_value(ApiDoc::openapi()).expect("json");
        let paths = document["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/api/products", "post"),
            ("/api/products", "get"),
            ("/api/products/bulk", "post"),
            ("/api/products/{id}", "get"),
            ("/api/products/{id}", "patch"),
            ("/api/products/{id}", "delete"),
            ("/api/products/{id}/price", "put"),
            ("/api/products/{id}/stock", "post"),
            ("/api/products/{id}/sales", "post"),
            ("/api/products/{id}/publish", "post"),
            ("/api/products/{id}/unpublish", "post"),
            ("/api/products/bestsellers", "get"),
            ("/api/categories", "get"),
            ("/api/categories", "post"),
            ("/api/auth/login", "post"),
            ("/api/auth/refresh", "post"),
            ("/api/auth/logout", "post"),
            ("/api/auth/me", "get"),
            ("/api/auth/users", "post"),
            ("/.well-known/jwks.json", "get"),
            ("/api/admin/projections", "get"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|item| item.get(method)).is_some(),
                "{method} {path} is missing"
            );
        }
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for schema in [
            "Problem",
            "ProductView",
            "Accepted",
            "TokenPair",
            "CategoryView",
        ] {
            assert!(schemas.contains_key(schema), "schema {schema} is missing");
        }
    }
}
