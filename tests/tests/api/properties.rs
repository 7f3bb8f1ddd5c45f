//! Arbitrary bodies and query strings never make the server answer 5xx.

use catalog_tests::{send, spawn_app_with_product, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sku".to_owned()),
                    Just("name".to_owned()),
                    Just("category".to_owned()),
                    Just("price_cents".to_owned()),
                    Just("currency".to_owned()),
                    Just("stock".to_owned()),
                    Just("attributes".to_owned()),
                    Just("images".to_owned()),
                    Just("delta".to_owned()),
                    Just("quantity".to_owned()),
                    Just("brand".to_owned()),
                    Just("status".to_owned()),
                    Just("slug".to_owned()),
                    Just("parent".to_owned()),
                    Just("email".to_owned()),
                    Just("password".to_owned()),
                    Just("role".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn run_cases<S: Strategy>(strategy: S, cases: u32, check: impl Fn(S::Value)) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |value| {
            check(value);
            Ok(())
        })
        .expect("no case answered 5xx");
}

/// The status `request` is answered with (the response is dropped inside the runtime).
async fn status_of(request: reqwest::RequestBuilder) -> reqwest::StatusCode {
    send(request).await.status()
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
    product_id: String,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, product_id) = runtime.block_on(spawn_app_with_product(json!({})));
    Fixture {
        runtime,
        app,
        product_id,
    }
}

#[test]
fn arbitrary_json_bodies_never_produce_a_5xx() {
    let fixture = fixture();
    let id = fixture.product_id.clone();
    let targets = [
        (Method::POST, "/api/products".to_owned()),
        (Method::POST, "/api/products/bulk".to_owned()),
        (Method::PATCH, format!("/api/products/{id}")),
        (Method::PUT, format!("/api/products/{id}/price")),
        (Method::POST, format!("/api/products/{id}/stock")),
        (Method::POST, format!("/api/products/{id}/sales")),
        (Method::POST, "/api/categories".to_owned()),
        (Method::POST, "/api/auth/users".to_owned()),
        (Method::POST, "/api/auth/login".to_owned()),
        (Method::POST, "/api/auth/refresh".to_owned()),
    ];
    run_cases(
        (arbitrary_json(), 0..targets.len()),
        300,
        |(body, target)| {
            let (method, path) = &targets[target];
            let request = fixture.app.admin(method.clone(), path).json(&body);
            let status = fixture.runtime.block_on(status_of(request));
            assert!(
                status.as_u16() < 500,
                "{method} {path} with {body} answered {status}"
            );
        },
    );
}

#[test]
fn arbitrary_bytes_as_bodies_never_produce_a_5xx() {
    let fixture = fixture();
    run_cases(
        (
            prop::collection::vec(any::<u8>(), 0..200),
            prop_oneof![
                Just("application/json"),
                Just("application/x-ndjson"),
                Just("text/plain")
            ],
        ),
        150,
        |(bytes, content_type)| {
            for path in ["/api/products", "/api/products/bulk"] {
                let request = fixture
                    .app
                    .admin(Method::POST, path)
                    .header("content-type", content_type)
                    .body(bytes.clone());
                let status = fixture.runtime.block_on(status_of(request));
                assert!(status.as_u16() < 500, "{path} answered {status}");
            }
        },
    );
}

#[test]
fn arbitrary_query_strings_never_produce_a_5xx() {
    let fixture = fixture();
    let key = prop_oneof![
        Just("category"),
        Just("brand"),
        Just("min_price"),
        Just("max_price"),
        Just("in_stock"),
        Just("sort"),
        Just("limit"),
        Just("cursor"),
        Just("q"),
        Just("x"),
    ];
    let value = prop_oneof![
        "[ -~]{0,20}",
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_owned()),
        Just("price_asc".to_owned()),
        "[a-z]{1,12}( [a-z]{1,12}){0,2}",
        "\\PC{0,30}"
    ];
    run_cases(prop::collection::vec((key, value), 0..5), 300, |pairs| {
        let query: String = pairs
            .iter()
            .map(|(key, value)| format!("{key}={}", urlencode(value)))
            .collect::<Vec<_>>()
            .join("&");
        for path in ["/api/products", "/api/products/bestsellers", "/api/search"] {
            let request = fixture.app.get(&format!("{path}?{query}"));
            let status = fixture.runtime.block_on(status_of(request));
            assert!(status.as_u16() < 500, "{path}?{query} answered {status}");
        }
    });
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
