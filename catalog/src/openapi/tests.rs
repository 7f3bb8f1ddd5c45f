use super::*;

#[test]
fn the_document_lists_every_route_of_the_contract() {
    let document = document();
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
        ("/api/search", "get"),
        ("/api/search/suggest", "get"),
        ("/api/search/synonyms", "get"),
        ("/api/search/synonyms", "put"),
        ("/api/auth/login", "post"),
        ("/api/auth/session", "post"),
        ("/api/auth/session", "delete"),
        ("/api/auth/session/refresh", "post"),
        ("/api/products/{id}/images", "post"),
        ("/api/products/{id}/images/{image_id}", "delete"),
        ("/images/{name}", "get"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/auth/users", "post"),
        ("/.well-known/jwks.json", "get"),
        ("/api/admin/projections", "get"),
        ("/api/admin/projections/{view}/parked", "get"),
        (
            "/api/admin/projections/{view}/parked/{position}/retry",
            "post",
        ),
        (
            "/api/admin/projections/{view}/parked/{position}/skip",
            "post",
        ),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
        ("/api/docs", "get"),
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
        "SessionToken",
        "ImageAccepted",
        "CategoryView",
        "SynonymsInput",
        "SynonymsAccepted",
        "SynonymList",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} is missing");
    }
}

#[test]
fn errors_are_problem_json_and_shared_parts_are_on_every_operation() {
    let document = document();
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("item") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"].get("application/json").is_none(),
                        "{method} {path} {status} declares application/json"
                    );
                }
                if path.starts_with("/api/products") || path.starts_with("/api/categories") {
                    assert!(
                        response["headers"].get("X-Request-Id").is_some(),
                        "{method} {path} {status} without X-Request-Id"
                    );
                }
            }
        }
    }
    for (path, method) in [
        ("/api/products", "post"),
        ("/api/products/bulk", "post"),
        ("/api/products/{id}/stock", "post"),
        ("/api/products/{id}/sales", "post"),
        ("/api/products/{id}/unpublish", "post"),
        ("/api/categories", "post"),
        ("/api/auth/users", "post"),
    ] {
        let parameters = document["paths"][path][method]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            parameters.iter().any(|p| p["name"] == "Idempotency-Key"),
            "{method} {path} without Idempotency-Key"
        );
        for status in ["401", "403"] {
            assert!(
                document["paths"][path][method]["responses"]
                    .get(status)
                    .is_some(),
                "{method} {path} without {status}"
            );
        }
    }
    assert!(
        document["paths"]["/api/products/bulk"]["post"]["requestBody"]["content"]
            .get("application/x-ndjson")
            .is_some()
    );
    assert!(
        document["paths"]["/api/categories"]["get"]["responses"]["200"]["headers"]
            .get("X-Position")
            .is_some()
    );
    let synonyms_get = &document["paths"]["/api/search/synonyms"]["get"];
    assert!(synonyms_get["responses"]["200"]["headers"]
        .get("X-Position")
        .is_some());
    assert!(synonyms_get["parameters"]
        .as_array()
        .is_some_and(|parameters| parameters.iter().any(|p| p["name"] == "X-Min-Position")));
    let synonyms_put = &document["paths"]["/api/search/synonyms"]["put"];
    for status in ["200", "400", "401", "403", "413", "415", "422"] {
        assert!(
            synonyms_put["responses"].get(status).is_some(),
            "PUT /api/search/synonyms without {status}"
        );
    }
    assert_eq!(
        synonyms_put["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SynonymsInput"
    );
    let patch = &document["components"]["schemas"]["ProductPatch"]["properties"];
    assert_eq!(
        patch["name"]["type"], "string",
        "name is not nullable: {patch}"
    );
}

#[test]
fn the_if_match_pattern_accepts_exactly_what_the_server_accepts() {
    let pattern = regex::Regex::new(IF_MATCH_PATTERN).expect("pattern");
    for value in [
        "\"7\"",
        "W/\"7\"",
        "7",
        "*",
        " \"7\" , \"8\",W/\"9\"",
        "*, \"3\"",
        "\"9999999999999999999\"",
        "\"99999999999999999999\"",
        "null",
        "",
        "\"7",
        "7\"",
        "\"7\",",
        "\"-1\"",
        "W/7x",
        "\"\"",
    ] {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::IF_MATCH,
            axum::http::HeaderValue::from_str(value).expect("header value"),
        );
        assert_eq!(
            pattern.is_match(value),
            command_api::routes::if_match(&headers).is_ok(),
            "If-Match: {value:?}"
        );
    }
}
