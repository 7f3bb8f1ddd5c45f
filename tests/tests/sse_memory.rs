//! A stream client that stops reading costs the server no more than its bounded ring: its own
//! test binary, so the heap it counts holds nothing from other tests.

use std::time::Duration;

use catalog::config::ServeConfig;
use catalog_tests::sse::Stream;
use catalog_tests::{spawn_configured, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts what this test binary (the server included) holds on the heap, so the test sees
/// what a stalled stream costs the server apart from file-backed pages and allocator slack.
#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Live heap bytes, once every view of `app` has applied `head` (so the projections' work is
/// not counted in the next phase).
async fn live_heap(app: &TestApp, head: u64) -> isize {
    for path in ["/api/products?limit=1", "/api/search?q=lorem&limit=1"] {
        loop {
            let response = app.read_after(path, head).await;
            if response.status() == 200 {
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The least of five samples 200 ms apart: the search index merges segments in the
    // background after its commits, and a merge in flight holds megabytes for a moment (a
    // single sample once caught one, 7.5 MB over a 6.75 MB bound, where the settled heap of
    // the same phases differs by 2–4 MB).
    let mut least = isize::MAX;
    for _ in 0..5 {
        let stats = ALLOCATOR.stats();
        let live = stats.bytes_allocated as isize - stats.bytes_deallocated as isize
            + stats.bytes_reallocated;
        least = least.min(live);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    least
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
                    snapshot: None,
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
    config.analysts.sse_streams_per_user = STALLED;
    let app = spawn_configured(config).await;
    let analyst = analyst(&app).await;
    let database = event_store::sqlite::SqliteDatabase::open(&app.data_dir.join("catalog.db"))
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

    // Phase B: clients with a tiny receive window read the response head and stop. Several, so
    // that buffering for them (at least `written` each) stands far above the noise of the
    // heap's growth in phase A (which the projections' views dominate: about 140 MB, ±8 MB
    // between runs); the first one reads on afterwards.
    let mut stalled_clients = Vec::new();
    for _ in 0..STALLED {
        stalled_clients.push(stalled_stream(&app, &analyst, head_a).await);
    }
    let mut stalled = stalled_clients.remove(0);
    let before_b = live_heap(&app, head_a).await;
    let head_b = append_big_events(&store, EVENTS).await;
    let growth_b = live_heap(&app, head_b).await - before_b;
    let written = (EVENTS * 9_000) as isize;
    eprintln!(
        "heap growth writing {EVENTS} events of ~9 KB ({written} bytes): {growth_a} bytes \
         without a stream, {growth_b} bytes with {STALLED} stalled stream clients"
    );
    // Buffering the stalled clients' events would hold at least `STALLED × written` more
    // bytes; the ring (64 events, about 0.6 MB) and each connection's write buffer are all the
    // server may keep for them. The bound, two clients' worth, is half of what buffering would
    // add, and above the noise (one stalled client measured 0.6–8 MB over phase A).
    assert!(
        growth_b < growth_a.max(0) + 2 * written,
        "{STALLED} stalled clients grew the server's heap by {growth_b} bytes against \
         {growth_a} without them (buffering would add {} bytes)",
        STALLED as isize * written
    );
    drop(stalled_clients);

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
    let metrics = app.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("catalog_sse_clients_dropped_total")
                && !line.ends_with(" 0")),
        "the drop is counted"
    );
}

/// Stalled stream clients in phase B.
const STALLED: usize = 4;

/// A stream from `after` on a socket with a 4 KiB receive buffer, read up to the end of the
/// response head and no further.
async fn stalled_stream(app: &TestApp, analyst: &str, after: u64) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stalled = socket.connect(app.address).await.expect("connect");
    let request = format!(
        "GET /api/events/stream?after={after} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {analyst}\r\n\r\n",
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
    stalled
}

async fn analyst(app: &TestApp) -> String {
    app.user_token("analyst@example.com", "analyst").await
}
