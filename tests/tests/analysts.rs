//! The analysts' API end to end: `/api/events`, its SSE stream (resume, keep-alive, roles, a
//! client that stops reading), `/api/analytics/*`, and stored version 1 events read as
//! version 2.

use std::time::Duration;

use catalog::startup::ServeConfig;
use catalog_tests::{assert_problem, spawn_app, spawn_configured, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One parsed Server-Sent Event (or a comment, with `comment` set).
#[derive(Debug, Clone, Default)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comment: bool,
}

/// Splits complete events off the front of `buffer`.
fn parse_events(buffer: &mut String) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let mut event = SseEvent::default();
        for line in block.lines() {
            if let Some(rest) = line.strip_prefix(':') {
                let _ = rest;
                event.comment = true;
            } else if let Some(value) = line.strip_prefix("id:") {
                event.id = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("event:") {
                event.event = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("data:") {
                event.data.push_str(value.trim_start());
            }
        }
        events.push(event);
    }
    events
}

/// An open event stream read with reqwest.
struct Stream {
    response: reqwest::Response,
    buffer: String,
    parsed: std::collections::VecDeque<SseEvent>,
}

impl Stream {
    async fn open(app: &TestApp, token: &str, query: &str, last_event_id: Option<u64>) -> Stream {
        let mut request = app
            .get(&format!("/api/events/stream{query}"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("stream");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().expect("type"),
            "text/event-stream"
        );
        Stream {
            response,
            buffer: String::new(),
            parsed: std::collections::VecDeque::new(),
        }
    }

    /// The next event (comments included), or `None` when the server closed the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            self.parsed.extend(parse_events(&mut self.buffer));
            if let Some(event) = self.parsed.pop_front() {
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("no event within 10 s")
                .expect("read");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk?));
        }
    }

    /// The next envelope event, skipping comments.
    async fn next_envelope(&mut self) -> Option<SseEvent> {
        loop {
            let event = self.next().await?;
            if !event.comment {
                return Some(event);
            }
        }
    }
}

async fn analyst(app: &TestApp) -> String {
    app.user_token("analyst@example.com", "analyst").await
}

/// Creates the category and `count` products; returns the last write's position.
async fn write_products(app: &TestApp, count: usize) -> u64 {
    app.create_category("electronics").await;
    let mut last = 0;
    for _ in 0..count {
        last = app.create_product(json!({})).await["position"]
            .as_u64()
            .expect("position");
    }
    last
}

#[tokio::test]
async fn only_analysts_and_admins_read_events_and_analytics() {
    let app = spawn_app().await;
    let shopper = app.user_token("shopper@example.com", "shopper").await;
    let analyst = analyst(&app).await;
    for path in [
        "/api/events",
        "/api/events/stream",
        "/api/analytics/trending",
        "/api/analytics/searches",
    ] {
        assert_problem(app.get(path).send().await.expect("send"), 401).await;
        assert_problem(
            app.get(path)
                .bearer_auth("not-a-token")
                .send()
                .await
                .expect("send"),
            401,
        )
        .await;
        assert_problem(
            app.get(path)
                .bearer_auth(&shopper)
                .send()
                .await
                .expect("send"),
            403,
        )
        .await;
        for token in [&analyst, &app.admin_token] {
            let response = app.get(path).bearer_auth(token).send().await.expect("send");
            assert_eq!(response.status(), 200, "{path}");
        }
    }
}

#[tokio::test]
async fn events_come_in_log_order_a_page_at_a_time_and_bad_parameters_are_400() {
    let app = spawn_app().await;
    let analyst = analyst(&app).await;
    let last = write_products(&app, 4).await;
    let page = |query: &'static str| {
        app.get(&format!("/api/events{query}"))
            .bearer_auth(&analyst)
            .send()
    };
    let first: Value = page("?limit=2")
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let items = first["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["position"], 1);
    assert_eq!(items[0]["event_type"], "CategoryCreated");
    assert_eq!(items[1]["position"], 2);
    assert_eq!(items[1]["event_type"], "ProductCreated");
    assert_eq!(first["next_after"], 2);
    let rest: Value = app
        .get(&format!(
            "/api/events?after={}&limit=1000",
            first["next_after"]
        ))
        .bearer_auth(&analyst)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let positions: Vec<u64> = rest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions, (3..=last).collect::<Vec<_>>());
    assert_eq!(rest["next_after"], last);
    // Past the end: an empty page that keeps `after`.
    let empty: Value = app
        .get(&format!("/api/events?after={last}"))
        .bearer_auth(&analyst)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(empty, json!({"items": [], "next_after": last}));
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
        "?after=-1",
        "?after=abc",
        "?since=3",
    ] {
        assert_problem(page(bad).await.expect("send"), 400).await;
    }
}

#[tokio::test]
async fn a_stream_resumed_with_last_event_id_gets_exactly_the_missed_events_in_order() {
    let app = spawn_app().await;
    let analyst = analyst(&app).await;
    let first_batch = write_products(&app, 3).await;
    let mut stream = Stream::open(&app, &analyst, "?after=0", None).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = stream.next_envelope().await.expect("event");
        let envelope: Value = serde_json::from_str(&event.data).expect("envelope JSON");
        assert_eq!(
            event.id.as_deref(),
            Some(envelope["position"].to_string().as_str())
        );
        assert_eq!(event.event.as_deref(), envelope["event_type"].as_str());
        seen.push(envelope["position"].as_u64().expect("position"));
    }
    drop(stream);
    // Written while the client is away.
    let mut last = first_batch;
    for _ in 0..3 {
        last = app.create_product(json!({})).await["position"]
            .as_u64()
            .expect("position");
    }
    let resume_from = *seen.last().expect("seen");
    // `after` is ignored when Last-Event-ID is given.
    let mut resumed = Stream::open(&app, &analyst, "?after=0", Some(resume_from)).await;
    while *seen.last().expect("seen") < last {
        let event = resumed.next_envelope().await.expect("event");
        seen.push(event.id.expect("id").parse().expect("numeric id"));
    }
    assert_eq!(seen, (1..=last).collect::<Vec<_>>(), "no gap, no duplicate");
    // And it stays live: a new write arrives on the open stream.
    let newest = app.create_product(json!({})).await["position"]
        .as_u64()
        .expect("position");
    let event = resumed.next_envelope().await.expect("live event");
    assert_eq!(event.id, Some(newest.to_string()));
    // A malformed Last-Event-ID is a 400.
    let response = app
        .get("/api/events/stream")
        .bearer_auth(&analyst)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .expect("send");
    assert_problem(response, 400).await;
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = ServeConfig::embedded(dir.path().to_path_buf(), "127.0.0.1:0");
    config.analysts.sse_keep_alive = Duration::from_secs(1);
    let app = spawn_configured(config).await;
    let analyst = analyst(&app).await;
    let mut stream = Stream::open(&app, &analyst, "", None).await;
    let event = stream.next().await.expect("something within 10 s");
    assert!(event.comment, "an idle stream sends a comment: {event:?}");
    // An open stream does not hold up a graceful shutdown: the server ends it.
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops with a stream open");
    while let Some(event) = stream.next().await {
        assert!(event.comment, "only keep-alives before the end: {event:?}");
    }
}

/// Counts what this test binary (the server included) holds on the heap, so the test sees
/// what a stalled stream costs the server apart from file-backed pages and allocator slack.
#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Live heap bytes, once every view of `app` has applied `head` (so the projections' work is
/// not counted in the next phase).
async fn live_heap(app: &TestApp, head: u64) -> isize {
    for path in ["/api/products?limit=1", "/api/search?q=lorem&limit=1"] {
        loop {
            let response = app
                .get(path)
                .header("X-Min-Position", head.to_string())
                .send()
                .await
                .expect("read");
            if response.status() == 200 {
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = ALLOCATOR.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// Appends `count` events of about 9 KB (new products with long descriptions) straight to the
/// app's event store, so that only the event feed, not the projections, sees them.
async fn append_big_events(store: &dyn events::store::EventStore, count: usize) -> u64 {
    use events::store::StreamAppend;
    use events::{CatalogEvent, EventMetadata, NewEvent, ProductCreated, ProductStatus};
    let mut last = 0;
    for start in (0..count).step_by(50) {
        let streams = (start..(start + 50).min(count))
            .map(|index| {
                let id = uuid::Uuid::now_v7();
                let event = CatalogEvent::ProductCreated(ProductCreated {
                    sku: format!("BIG-{}", id.simple()),
                    name: format!("Big {index}"),
                    description: format!("{index} {}", "lorem ipsum ".repeat(750)),
                    category: "electronics".into(),
                    brand: None,
                    price_cents: 100,
                    currency: "USD".into(),
                    stock: 1,
                    status: ProductStatus::Draft,
                    attributes: Default::default(),
                    images: Vec::new(),
                });
                StreamAppend {
                    aggregate_id: id,
                    expected_version: 0,
                    events: vec![NewEvent::from_event(
                        id,
                        1,
                        &event,
                        chrono::Utc::now(),
                        EventMetadata::default(),
                    )],
                    unique_claims: Vec::new(),
                }
            })
            .collect();
        let appended = store.append(streams).await.expect("append");
        last = appended.last().map_or(last, |envelope| envelope.position);
    }
    last
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_without_the_server_buffering_for_it() {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = ServeConfig::embedded(dir.path().to_path_buf(), "127.0.0.1:0");
    config.analysts.sse_ring = 64;
    let app = spawn_configured(config).await;
    let analyst = analyst(&app).await;
    let database = command_api::sqlite::SqliteDatabase::open(&app.data_dir.join("catalog.db"))
        .await
        .expect("open the store");
    let store = database.event_store();
    // About 13 MB of envelopes per phase.
    const EVENTS: usize = 1500;
    // Phase A, no stream: what the writes themselves leave on the heap.
    let warm = append_big_events(&store, 400).await;
    let before_a = live_heap(&app, warm).await;
    let head_a = append_big_events(&store, EVENTS).await;
    let growth_a = live_heap(&app, head_a).await - before_a;

    // Phase B: a client with a tiny receive window reads the response head and stops.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stalled = socket.connect(app.address).await.expect("connect");
    let request = format!(
        "GET /api/events/stream?after={head_a} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {analyst}\r\n\r\n",
        app.address
    );
    stalled
        .write_all(request.as_bytes())
        .await
        .expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stalled.read_exact(&mut byte).await.expect("response head");
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
    let before_b = live_heap(&app, head_a).await;
    let head_b = append_big_events(&store, EVENTS).await;
    let growth_b = live_heap(&app, head_b).await - before_b;
    let written = (EVENTS * 9_000) as isize;
    eprintln!(
        "heap growth writing {EVENTS} events of ~9 KB ({written} bytes): {growth_a} bytes \
         without a stream, {growth_b} bytes with a stalled stream client"
    );
    // Buffering the stalled client's events would hold at least `written` more bytes; the
    // ring (64 events, about 0.6 MB) and the connection's write buffer are all the server may
    // keep for it (measured: about 2 MB more than without the client).
    assert!(
        growth_b < growth_a.max(0) + written / 2,
        "a stalled client grew the server's heap by {growth_b} bytes against {growth_a} without it"
    );

    // The client reads on: what the kernel held, then a `dropped` event, then the end of the
    // stream (the last chunk of the chunked body).
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let ended = |body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        text.find("event: dropped")
            .is_some_and(|at| text[at..].contains("\r\n0\r\n\r\n"))
    };
    while !ended(&body) {
        let read = tokio::time::timeout(Duration::from_secs(30), stalled.read(&mut chunk))
            .await
            .expect("the server ends the stream")
            .expect("read");
        assert!(read > 0, "the connection closed before a dropped event");
        body.extend_from_slice(&chunk[..read]);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    // Chunked transfer encoding frames the events; the SSE lines are intact inside.
    let dropped_at = text.find("event: dropped").expect("a final dropped event");
    // The last event delivered before the drop (none at all when the ring overflowed before the
    // stream's first read: then the stream had stopped at `head_a`).
    let last_id: u64 = text[..dropped_at]
        .rmatch_indices("\nid:")
        .next()
        .map(|(at, _)| {
            text[at + 4..]
                .lines()
                .next()
                .expect("id line")
                .trim()
                .parse()
                .expect("numeric id")
        })
        .unwrap_or(head_a);
    assert!(last_id >= head_a && last_id < head_b);
    let resume_after = text[dropped_at..]
        .split("\"resume_after\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u64>().ok())
        .expect("resume_after in the dropped event");
    assert_eq!(resume_after, last_id);
    // Resuming from there delivers the rest, starting right after.
    let mut resumed = Stream::open(&app, &analyst, "", Some(resume_after)).await;
    let event = resumed.next_envelope().await.expect("event");
    assert_eq!(event.id, Some((resume_after + 1).to_string()));
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("catalog_sse_clients_dropped_total")
                && !line.ends_with(" 0")),
        "the drop is counted"
    );
}

#[tokio::test]
async fn product_views_and_searches_show_up_in_analytics() {
    let app = spawn_app().await;
    let analyst = analyst(&app).await;
    app.create_category("electronics").await;
    app.create_category("kitchen").await;
    let hot = app.create_product(json!({"name": "Electric Kettle"})).await;
    let cold = app
        .create_product(json!({"name": "Desk Lamp", "category": "kitchen"}))
        .await;
    let (hot_id, cold_id) = (
        hot["id"].as_str().expect("id").to_owned(),
        cold["id"].as_str().expect("id").to_owned(),
    );
    let sale = app
        .admin(Method::POST, &format!("/api/products/{cold_id}/sales"))
        .json(&json!({"quantity": 5}))
        .send()
        .await
        .expect("sale");
    assert_eq!(sale.status(), 200);
    let position = cold["position"].as_u64().expect("position") + 1;
    for _ in 0..3 {
        let response = app
            .get(&format!("/api/products/{hot_id}"))
            .header("X-Min-Position", position.to_string())
            .send()
            .await
            .expect("view");
        assert_eq!(response.status(), 200);
    }
    app.get(&format!("/api/products/{cold_id}"))
        .send()
        .await
        .expect("view");
    for query in ["Kettle", "  kettle ", "chocolate teapot"] {
        let response = app
            .get(&format!("/api/search?q={query}"))
            .header("X-Min-Position", position.to_string())
            .send()
            .await
            .expect("search");
        assert_eq!(response.status(), 200);
    }
    // Capture is asynchronous: poll until the view has counted everything.
    let mut trending = Value::Null;
    for _ in 0..50 {
        trending = app
            .get("/api/analytics/trending?window=1h")
            .bearer_auth(&analyst)
            .send()
            .await
            .expect("trending")
            .json()
            .await
            .expect("json");
        if trending["by_views"][0]["views"] == 3 && trending["by_views"][1]["views"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(trending["window"], "1h");
    assert_eq!(trending["by_views"][0]["product_id"], hot_id);
    assert_eq!(trending["by_views"][0]["views"], 3);
    assert_eq!(trending["by_views"][1]["product_id"], cold_id);
    assert_eq!(trending["by_sales"][0]["product_id"], cold_id);
    assert_eq!(trending["by_sales"][0]["units_sold"], 5);
    let kitchen: Value = app
        .get("/api/analytics/trending?window=7d&category=kitchen")
        .bearer_auth(&analyst)
        .send()
        .await
        .expect("trending")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = kitchen["by_views"]
        .as_array()
        .expect("by_views")
        .iter()
        .filter_map(|item| item["product_id"].as_str())
        .collect();
    assert_eq!(ids, vec![cold_id.as_str()]);
    let searches: Value = app
        .get("/api/analytics/searches?window=24h")
        .bearer_auth(&analyst)
        .send()
        .await
        .expect("searches")
        .json()
        .await
        .expect("json");
    assert_eq!(searches["top"][0], json!({"query": "kettle", "count": 2}));
    assert_eq!(
        searches["zero_results"],
        json!([{"query": "chocolate teapot", "count": 1}])
    );
    for bad in [
        "/api/analytics/trending?window=2h",
        "/api/analytics/trending?category=Not_A_Slug",
        "/api/analytics/searches?limit=0",
        "/api/analytics/searches?window=",
    ] {
        let response = app
            .get(bad)
            .bearer_auth(&analyst)
            .send()
            .await
            .expect("send");
        if bad.ends_with("window=") {
            // An empty value counts as not given (the default window).
            assert_eq!(response.status(), 200);
        } else {
            assert_problem(response, 400).await;
        }
    }
}

#[tokio::test]
async fn stored_version_1_price_changes_read_as_version_2_and_keep_their_wire_version() {
    use command_api::sqlite::SqliteDatabase;
    use events::store::{EventStore, StreamAppend};
    use events::{EventMetadata, NewEvent};

    let dir = tempfile::tempdir().expect("dir");
    let app = catalog_tests::spawn_app_in(dir.path()).await;
    app.create_category("electronics").await;
    let created = app.create_product(json!({"price_cents": 1000})).await;
    let id: uuid::Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    app.stop().await;

    // An event as an older release wrote it: PriceChanged version 1.
    {
        let database = SqliteDatabase::open(&dir.path().join("catalog.db"))
            .await
            .expect("open store");
        let store = database.event_store();
        let event = NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "PriceChanged".into(),
            schema_version: 1,
            aggregate_id: id,
            aggregate_version: 2,
            occurred_at: chrono::Utc::now(),
            metadata: EventMetadata::default(),
            data: json!({"price_cents": 4242, "currency": "USD"}),
        };
        store
            .append(vec![StreamAppend {
                aggregate_id: id,
                expected_version: 1,
                events: vec![event],
                unique_claims: Vec::new(),
            }])
            .await
            .expect("append v1");
    }

    let app = catalog_tests::spawn_app_in(dir.path()).await;
    let analyst = analyst(&app).await;
    let product: Value = app
        .get(&format!("/api/products/{id}"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        product["price_cents"], 4242,
        "the projection read the v1 event"
    );
    assert_eq!(product["version"], 2);
    // The next price change is written as version 2 with the previous price, which the
    // aggregate took from the upcast v1 event.
    let changed: Value = app
        .admin(Method::PUT, &format!("/api/products/{id}/price"))
        .json(&json!({"price_cents": 3900, "currency": "USD"}))
        .send()
        .await
        .expect("price")
        .json()
        .await
        .expect("json");
    assert_eq!(changed["version"], 3);
    let events: Value = app
        .get(&format!("/api/events?after={}", created["position"]))
        .bearer_auth(&analyst)
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let items = events["items"].as_array().expect("items");
    let prices: Vec<(Value, Value)> = items
        .iter()
        .filter(|item| item["event_type"] == "PriceChanged")
        .map(|item| (item["schema_version"].clone(), item["data"].clone()))
        .collect();
    assert_eq!(
        prices,
        vec![
            (json!(1), json!({"price_cents": 4242, "currency": "USD"})),
            (
                json!(2),
                json!({"price_cents": 3900, "currency": "USD", "previous_price_cents": 4242})
            ),
        ]
    );
}
