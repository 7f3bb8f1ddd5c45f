//! The trace test: a command, a projectors and a query process export their spans over
//! OTLP/HTTP to a receiver in this test, which decodes them with the official protobuf
//! definitions (`opentelemetry-proto`). One admin write and the shopper read that waits for
//! it must form one trace across the three processes: the command's HTTP request, the
//! command, the event-store append, the outbox relay's publish, each projector applying the
//! event (through Kafka: the read model, the Redis views, analytics), the Redis projector's invalidation reaching the query process, and
//! the shopper's read with its wait for the position and its cache layers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::{common, Stack, ADMIN_EMAIL, ADMIN_PASSWORD};

/// A span as received.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(number)) => number.to_string(),
        Some(AnyValue::BoolValue(flag)) => flag.to_string(),
        Some(AnyValue::DoubleValue(number)) => number.to_string(),
        _ => String::new(),
    }
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), text(pair.value.as_ref())))
        .collect()
}

/// An OTLP/HTTP receiver on a loopback port: `POST /v1/traces` with a protobuf
/// `ExportTraceServiceRequest`, as every OpenTelemetry SDK sends it.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Received>>>,
    requests: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let (kept, counted) = (spans.clone(), requests.clone());
        let router = axum::Router::new().route(
            "/v1/traces",
            post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let (kept, counted) = (kept.clone(), counted.clone());
                async move {
                    let protobuf = headers
                        .get("content-type")
                        .is_some_and(|value| value == "application/x-protobuf");
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                    };
                    if !protobuf {
                        return (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                    }
                    *counted.lock().expect("count") += 1;
                    let mut kept = kept.lock().expect("spans");
                    for resource_spans in request.resource_spans {
                        let resource = resource_spans.resource.unwrap_or_default();
                        let service = attributes(&resource.attributes)
                            .remove("service.name")
                            .unwrap_or_default();
                        for scope in resource_spans.scope_spans {
                            for span in scope.spans {
                                kept.push(Received {
                                    service: service.clone(),
                                    trace: hex(&span.trace_id),
                                    id: hex(&span.span_id),
                                    parent: hex(&span.parent_span_id),
                                    name: span.name.clone(),
                                    attributes: attributes(&span.attributes),
                                });
                            }
                        }
                    }
                    (axum::http::StatusCode::OK, Vec::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Receiver {
            port,
            spans,
            requests,
        }
    }

    fn of_trace(&self, trace: &str) -> Vec<Received> {
        let spans = self.spans.lock().expect("spans");
        spans
            .iter()
            .filter(|span| span.trace == trace)
            .cloned()
            .collect()
    }
}

/// The span of `trace` named `name` in `service` whose parent is `parent` (and whose
/// attributes include `with`), if it arrived.
fn find<'a>(
    spans: &'a [Received],
    service: &str,
    name: &str,
    parent: &str,
    with: &[(&str, &str)],
) -> Option<&'a Received> {
    spans.iter().find(|span| {
        span.service == service
            && span.name == name
            && span.parent == parent
            && with
                .iter()
                .all(|(key, value)| span.attributes.get(*key).map(String::as_str) == Some(*value))
    })
}

/// The tree under `parent`, one span a line, indented by depth.
fn tree(spans: &[Received], parent: &str, depth: usize, out: &mut String) {
    let mut children: Vec<&Received> = spans.iter().filter(|s| s.parent == parent).collect();
    children.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
    for span in children {
        let detail: Vec<String> = [
            "projector",
            "position",
            "cache.l1",
            "cache.redis",
            "http.response.status_code",
        ]
        .iter()
        .filter_map(|key| {
            span.attributes
                .get(*key)
                .map(|value| format!("{key}={value}"))
        })
        .collect();
        out.push_str(&format!(
            "{}{} [{}] {}\n",
            "  ".repeat(depth),
            span.name,
            span.service,
            detail.join(" ")
        ));
        tree(spans, &span.id, depth + 1, out);
    }
}

/// What the write's trace must hold; `Err` names the first missing span.
fn check_trace(spans: &[Received], root: &str, read_root: &str) -> Result<String, String> {
    let missing = |what: &str| Err(format!("no {what} yet"));
    let (command, projectors, query) = ("catalog-command", "catalog-projectors", "catalog-query");
    let Some(request) = find(spans, command, "POST /api/products", root, &[]) else {
        return missing("command HTTP span, child of the client's");
    };
    let Some(handling) = find(spans, command, "command.create_product", &request.id, &[]) else {
        return missing("command span");
    };
    let Some(append) = find(spans, command, "event_store.append", &handling.id, &[]) else {
        return missing("event-store append span");
    };
    let Some(publish) = find(spans, command, "outbox.publish", &append.id, &[]) else {
        return missing("outbox relay publish span, child of the append");
    };
    // The projectors role's views (without CATALOG_SEARCH each query process indexes the
    // store itself).
    for view in ["read-model", "redis", "analytics"] {
        let projector = [("projector", view)];
        if find(
            spans,
            projectors,
            "projection.apply",
            &publish.id,
            &projector,
        )
        .is_none()
        {
            return Err(format!(
                "no {view} projection span, child of the relay's, yet"
            ));
        }
    }
    let redis = find(
        spans,
        projectors,
        "projection.apply",
        &publish.id,
        &[("projector", "redis")],
    );
    let redis_id = redis.map(|span| span.id.clone()).unwrap_or_default();
    if find(spans, query, "cache.invalidate", &redis_id, &[]).is_none() {
        return missing("invalidation span in the query process, child of the Redis projector's");
    }
    // The read answered 200 (an earlier attempt may have timed out waiting: 503, no cache).
    let read = spans.iter().find(|span| {
        span.service == query
            && span.name == "GET /api/products/{id}"
            && span.parent == read_root
            && span
                .attributes
                .get("http.response.status_code")
                .map(String::as_str)
                == Some("200")
    });
    let Some(read) = read else {
        return missing("shopper read span answered 200, child of the client's");
    };
    if find(spans, query, "read.wait_for_position", &read.id, &[]).is_none() {
        return missing("wait for the position, child of the read");
    }
    let Some(layers) = find(spans, query, "read.cache", &read.id, &[]) else {
        return missing("read through the cache layers, child of the read");
    };
    if !layers.attributes.contains_key("cache.l1") {
        return Err(format!(
            "the read's cache span says nothing of L1: {layers:?}"
        ));
    }
    let mut text = format!("client span {root}\n");
    tree(spans, root, 1, &mut text);
    text.push_str(&format!("client span {read_root}\n"));
    tree(spans, read_root, 1, &mut text);
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_and_the_read_that_waits_for_it_are_one_trace_across_three_processes() {
    let _alone = crate::cluster::one_at_a_time().await;
    let receiver = Receiver::start().await;
    let stack = Stack::new().await;
    let redis = testkit::RedisServer::start();
    let mut environment = stack.environment.clone();
    environment.extend([
        ("REDIS_URL".to_owned(), redis.url()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            format!("http://127.0.0.1:{}", receiver.port),
        ),
        // Export every 100 ms instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()),
    ]);
    let cluster = Cluster::start(environment);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let login = cluster.url("command", "/api/auth/login");
    let token = common::login(&client, &login, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let categories = cluster.url("command", "/api/categories");
    common::create_tools_category(&client, &categories, &token).await;

    // The client (a browser, a gateway) starts the trace and sends its context along.
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let (root, read_root) = ("00f067aa0ba902b7", "00f067aa0ba902b8");
    let created = client
        .post(cluster.url("command", "/api/products"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace}-{root}-01"))
        .json(&json!({
            "sku": "TRACE-1", "name": "Traced hammer", "category": "tools",
            "price_cents": 1999, "currency": "USD", "stock": 3, "status": "published"
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.expect("json");
    let (id, position) = (
        body["id"].as_str().expect("id"),
        body["position"].as_u64().expect("position"),
    );
    // The shopper's read waits (up to its budget) for the views to reach the write; asked
    // again while the projectors are still catching up after their start.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = client
            .get(cluster.url("query", &format!("/api/products/{id}")))
            .header("traceparent", format!("00-{trace}-{read_root}-01"))
            .header("X-Min-Position", position.to_string())
            .send()
            .await
            .expect("read");
        if read.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the read never reached position {position}"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let spans = receiver.of_trace(&trace);
        match check_trace(&spans, root, read_root) {
            Ok(text) => break text,
            Err(missing) => {
                let mut seen = String::new();
                tree(&spans, root, 1, &mut seen);
                tree(&spans, read_root, 1, &mut seen);
                assert!(
                    Instant::now() < deadline,
                    "{missing} after 30 s ({} export requests received); the trace so far:\n{seen}\
                     command log:\n{}",
                    receiver.requests.lock().map(|n| *n).unwrap_or_default(),
                    cluster.log("command")
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("trace {trace}:\n{text}");
}
