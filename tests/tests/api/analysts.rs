//! The analysts' API end to end: `/api/events`, its SSE stream (resume, keep-alive, roles, a
//! client that stops reading), `/api/analytics/*`, and stored version 1 events read as
//! version 2.

use std::time::Duration;

use catalog::config::ServeConfig;
use catalog_tests::sse::Stream;
use catalog_tests::{assert_problem, json_body, send, spawn_app, spawn_configured, TestApp};
use serde_json::{json, Value};

/// GET `path` with `token`; the JSON body.
async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    app.get_json(path, token).await.1
}

async fn analyst(app: &TestApp) -> String {
    app.user_token("analyst@example.com", "analyst").await
}

/// Creates the category and `count` products; returns the last write's position.
async fn write_products(app: &TestApp, count: usize) -> u64 {
    app.create_category("electronics").await;
    let mut last = 0;
    for _ in 0..count {
        last = app.create_product(json!({})).await.position;
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
        assert_problem(app.fetch(path).await, 401).await;
        assert_problem(app.fetch_as("not-a-token", path).await, 401).await;
        assert_problem(app.fetch_as(&shopper, path).await, 403).await;
        for token in [&analyst, &app.admin_token] {
            let response = app.fetch_as(token, path).await;
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
        let path = format!("/api/events{query}");
        let analyst = &analyst;
        let app = &app;
        async move { app.fetch_as(analyst, &path).await }
    };
    let first = json_body(page("?limit=2").await).await;
    let items = first["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["position"], 1);
    assert_eq!(items[0]["event_type"], "CategoryCreated");
    assert_eq!(items[1]["position"], 2);
    assert_eq!(items[1]["event_type"], "ProductCreated");
    assert_eq!(first["next_after"], 2);
    let rest = get_json(
        &app,
        &format!("/api/events?after={}&limit=1000", first["next_after"]),
        &analyst,
    )
    .await;
    let positions: Vec<u64> = rest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions, (3..=last).collect::<Vec<_>>());
    assert_eq!(rest["next_after"], last);
    // Past the end: an empty page that keeps `after`.
    let empty: Value = get_json(&app, &format!("/api/events?after={last}"), &analyst).await;
    assert_eq!(empty, json!({"items": [], "next_after": last}));
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
        "?after=-1",
        "?after=abc",
        "?since=3",
    ] {
        assert_problem(page(bad).await, 400).await;
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
        last = app.create_product(json!({})).await.position;
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
    let newest = app.create_product(json!({})).await.position;
    let event = resumed.next_envelope().await.expect("live event");
    assert_eq!(event.id, Some(newest.to_string()));
    // A malformed Last-Event-ID is a 400.
    let response = send(
        app.get("/api/events/stream")
            .bearer_auth(&analyst)
            .header("Last-Event-ID", "yesterday"),
    )
    .await;
    assert_problem(response, 400).await;
    // So is a malformed `after`, even beside a Last-Event-ID that would take precedence.
    let response = send(
        app.get("/api/events/stream?after=AAA")
            .bearer_auth(&analyst)
            .header("Last-Event-ID", "0"),
    )
    .await;
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
    let (hot_id, cold_id) = (hot.id, cold.id);
    let sale = app.sell(&cold_id, 5).await;
    assert_eq!(sale.status(), 200);
    let position = cold.position + 1;
    for _ in 0..3 {
        let response = app
            .read_after(&format!("/api/products/{hot_id}"), position)
            .await;
        assert_eq!(response.status(), 200);
    }
    app.fetch(&format!("/api/products/{cold_id}")).await;
    for query in ["Kettle", "  kettle ", "chocolate teapot"] {
        let response = app
            .read_after(&format!("/api/search?q={query}"), position)
            .await;
        assert_eq!(response.status(), 200);
    }
    // Capture is asynchronous: poll until the view has counted everything.
    let trending = app
        .poll_json(
            &analyst,
            "/api/analytics/trending?window=1h",
            50,
            |_, trending| {
                trending["by_views"][0]["views"] == 3 && trending["by_views"][1]["views"] == 1
            },
        )
        .await;
    assert_eq!(trending["window"], "1h");
    assert_eq!(trending["by_views"][0]["product_id"], hot_id);
    assert_eq!(trending["by_views"][0]["views"], 3);
    assert_eq!(trending["by_views"][1]["product_id"], cold_id);
    assert_eq!(trending["by_sales"][0]["product_id"], cold_id);
    assert_eq!(trending["by_sales"][0]["units_sold"], 5);
    let kitchen: Value = get_json(
        &app,
        "/api/analytics/trending?window=7d&category=kitchen",
        &analyst,
    )
    .await;
    let ids: Vec<&str> = kitchen["by_views"]
        .as_array()
        .expect("by_views")
        .iter()
        .filter_map(|item| item["product_id"].as_str())
        .collect();
    assert_eq!(ids, vec![cold_id.as_str()]);
    let searches: Value = get_json(&app, "/api/analytics/searches?window=24h", &analyst).await;
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
        let response = app.fetch_as(&analyst, bad).await;
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
    use event_store::sqlite::SqliteDatabase;
    use events::store::{EventStore, StreamAppend};
    use events::{EventMetadata, NewEvent};

    let dir = tempfile::tempdir().expect("dir");
    let app = catalog_tests::spawn_app_in(dir.path()).await;
    app.create_category("electronics").await;
    let created = app.create_product(json!({"price_cents": 1000})).await;
    let id: uuid::Uuid = created.id.parse().expect("uuid");
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
                snapshot: None,
            }])
            .await
            .expect("append v1");
    }

    let app = catalog_tests::spawn_app_in(dir.path()).await;
    let analyst = analyst(&app).await;
    let product = app.fetch_json(&format!("/api/products/{id}")).await;
    assert_eq!(
        product["price_cents"], 4242,
        "the projection read the v1 event"
    );
    assert_eq!(product["version"], 2);
    // The next price change is written as version 2 with the previous price, which the
    // aggregate took from the upcast v1 event.
    let changed = json_body(app.change_price(&id.to_string(), 3900, "USD").await).await;
    assert_eq!(changed["version"], 3);
    let events: Value = get_json(
        &app,
        &format!("/api/events?after={}", created.position),
        &analyst,
    )
    .await;
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
