//! Hostile traffic (the hostile-traffic issue): a login flood, rate limits per client behind a
//! trusted proxy, connection hygiene (header and idle timeouts, connection caps), bounded
//! labels and request ids, the security headers.

use std::time::{Duration, Instant};

use catalog_tests::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use web::rate_limit::Rate;

fn trusting_loopback(config: &mut catalog::config::ServeConfig) {
    config.limits.trusted_proxies =
        web::client::TrustedProxies::parse("127.0.0.0/8").expect("proxies");
}

async fn login_from(app: &TestApp, client: &str, password: &str) -> reqwest::Response {
    send(
        app.request(reqwest::Method::POST, "/api/auth/login")
            .header("x-forwarded-for", client)
            .json(&json!({"email": ADMIN_EMAIL, "password": password})),
    )
    .await
}

#[tokio::test]
async fn concurrent_wrong_guesses_are_counted_before_any_password_is_checked() {
    let app = spawn_app().await;
    let guesses = (0..40).map(|index| {
        let app = &app;
        async move {
            app.login_response(ADMIN_EMAIL, &format!("guess number {index}"))
                .await
        }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|answer| answer.status() == 401)
        .count();
    let refused = answers
        .iter()
        .filter(|answer| answer.status() == 429)
        .count();
    // Three free guesses per account and address; the rest were refused before Argon2 ran.
    assert_eq!((checked, refused), (3, 37));
    for answer in answers.into_iter().filter(|answer| answer.status() == 429) {
        let retry_after: u64 = answer.headers()["retry-after"]
            .to_str()
            .expect("text")
            .parse()
            .expect("seconds");
        assert!((1..=2).contains(&retry_after), "{retry_after}");
        assert_problem(answer, 429).await;
    }
}

#[tokio::test]
async fn a_guesser_backs_off_exponentially_and_does_not_lock_the_owner_out() {
    let app = spawn_app_with(trusting_loopback).await;
    for _ in 0..3 {
        let wrong = login_from(&app, "203.0.113.9", "wrong password").await;
        assert_eq!(wrong.status(), 401);
    }
    let limited = login_from(&app, "203.0.113.9", ADMIN_PASSWORD).await;
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_problem(limited, 429).await;
    // Wrong passwords from five more addresses do not lock the account.
    for index in 1..=5 {
        let wrong = login_from(&app, &format!("198.51.100.{index}"), "wrong password").await;
        assert_eq!(wrong.status(), 401);
    }
    let owner = login_from(&app, "192.0.2.10", ADMIN_PASSWORD).await;
    assert_eq!(owner.status(), 200);
    // The guesser may try again after the wait, and then waits twice as long.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = login_from(&app, "203.0.113.9", "wrong password").await;
    assert_eq!(again.status(), 401);
    let longer = login_from(&app, "203.0.113.9", "wrong password").await;
    assert_eq!(longer.headers()["retry-after"], "2");
}

#[tokio::test]
async fn an_email_over_254_characters_is_refused_before_anything_else() {
    let app = spawn_app().await;
    let long = format!("{}@example.com", "a".repeat(300));
    let answer = app.login_response(&long, "whatever password").await;
    let problem = assert_problem(answer, 422).await;
    assert!(problem["errors"]["email"].is_array(), "{problem}");
}

#[tokio::test]
async fn the_auth_class_is_limited_per_client_with_ratelimit_headers() {
    let app = spawn_app_with(|config| {
        trusting_loopback(config);
        config.limits.rates.auth = Rate::new(3, Duration::from_secs(60));
    })
    .await;
    // The test harness logged in once from 127.0.0.1; this client has its own bucket.
    for remaining in ["2", "1", "0"] {
        let answer = login_from(&app, "203.0.113.50", ADMIN_PASSWORD).await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["ratelimit-limit"], "3");
        assert_eq!(answer.headers()["ratelimit-remaining"], remaining);
    }
    let limited = login_from(&app, "203.0.113.50", ADMIN_PASSWORD).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.headers()["ratelimit-remaining"], "0");
    assert!(limited.headers().contains_key("ratelimit-reset"));
    assert_problem(limited, 429).await;
    // Another client behind the same proxy is not affected.
    assert_eq!(
        login_from(&app, "203.0.113.51", ADMIN_PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(|config| {
        config.limits.rates.reads = Rate::new(5, Duration::from_secs(60));
    })
    .await;
    // Five reads, each claiming another client: all are the TCP peer's.
    for index in 0..5 {
        let page = send(
            app.get("/api/categories")
                .header("x-forwarded-for", format!("203.0.113.{index}")),
        )
        .await;
        assert_eq!(page.status(), 200);
    }
    let limited = send(
        app.get("/api/categories")
            .header("x-forwarded-for", "203.0.113.99"),
    )
    .await;
    assert_eq!(limited.headers()["ratelimit-limit"], "5");
    assert_problem(limited, 429).await;
    // Health, readiness and metrics are never limited.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.fetch(path).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn writes_are_limited_per_token_subject_not_per_address() {
    let app = spawn_app_with(|config| {
        config.limits.rates.writes = Rate::new(2, Duration::from_secs(60));
    })
    .await;
    // Creating the second admin is the first of the two writes.
    let other = app.user_token("second@example.com", "admin").await;
    for slug in ["one"] {
        let created = app
            .admin_json(
                reqwest::Method::POST,
                "/api/categories",
                &json!({"slug": slug, "name": slug}),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    let limited = app
        .admin_json(
            reqwest::Method::POST,
            "/api/categories",
            &json!({"slug": "three", "name": "three"}),
        )
        .await;
    assert_problem(limited, 429).await;
    // Another admin from the same address has a bucket of its own.
    let created = send(
        app.request(reqwest::Method::POST, "/api/categories")
            .bearer_auth(&other)
            .json(&json!({"slug": "four", "name": "four"})),
    )
    .await;
    assert_eq!(created.status(), 201);
}

/// Reads what the server sends until it closes the connection or `within` passes; `None` if
/// it was still open then.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&received).into()),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test]
async fn unfinished_headers_and_idle_connections_are_closed() {
    let app = spawn_app_with(|config| {
        config.limits.connections.header_timeout = Duration::from_secs(1);
        config.limits.connections.idle_timeout = Duration::from_secs(2);
    })
    .await;
    // Slowloris: a head that never ends, a byte at a time.
    let mut slow = TcpStream::connect(app.address).await.expect("connect");
    slow.write_all(b"GET /api/categories HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = slow.write_all(b"X").await;
    }
    let closed = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a connection without a whole head stayed open"
    );
    // An idle keep-alive connection after a whole request.
    let mut idle = TcpStream::connect(app.address).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let answered = read_until_closed(&mut idle, Duration::from_secs(8)).await;
    let answered = answered.expect("the idle connection was closed");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

async fn connect_from(source: &str, target: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("address"))
        .expect("bind");
    socket.connect(target).await.expect("connect")
}

#[tokio::test]
async fn connections_over_the_caps_get_a_503_and_are_closed() {
    let app = spawn_app_with(|config| {
        config.limits.connections.max_connections = 6;
        config.limits.connections.per_address = 2;
    })
    .await;
    // The harness's client may hold a keep-alive connection of its own from 127.0.0.1; use
    // other loopback addresses.
    let _first = connect_from("127.0.0.21", app.address).await;
    let _second = connect_from("127.0.0.21", app.address).await;
    let mut third = connect_from("127.0.0.21", app.address).await;
    let refused = read_until_closed(&mut third, Duration::from_secs(3))
        .await
        .expect("refused at once");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    assert!(refused.contains("application/problem+json"), "{refused}");
    // Another address still gets in, until the process's cap.
    let mut held = Vec::new();
    let mut refusals = 0;
    for index in 0..6 {
        let mut stream = connect_from(&format!("127.0.0.{}", 30 + index), app.address).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut head))
            .await
            .expect("an answer")
            .unwrap_or(0);
        if head[..read].starts_with(b"HTTP/1.1 503") {
            refusals += 1;
        }
        held.push(stream);
    }
    assert!(refusals >= 1, "the process cap of 6 was never reached");
    drop(held);
    // Freed slots are taken again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let page = app.fetch("/healthz").await;
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/api/categories", "/api/nothing-here", "/api/openapi.json"] {
        let answer = app.fetch(path).await;
        let headers = answer.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        let policy = headers["content-security-policy"].to_str().expect("text");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
    }
}

#[tokio::test]
async fn request_ids_are_echoed_only_when_short_and_printable() {
    let app = spawn_app().await;
    let kept = send(
        app.get("/api/categories")
            .header("x-request-id", "trace-42"),
    )
    .await;
    assert_eq!(kept.headers()["x-request-id"], "trace-42");
    let long = "a".repeat(10_000);
    let replaced = send(app.get("/api/categories").header("x-request-id", &long)).await;
    let id = replaced.headers()["x-request-id"].to_str().expect("text");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    for scheme in ["BEARER", "bearer", "Bearer"] {
        let me = send(
            app.get("/api/auth/me")
                .header("authorization", format!("{scheme} {}", app.admin_token)),
        )
        .await;
        assert_eq!(me.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn a_refused_callers_answer_is_not_kept_under_its_idempotency_key() {
    let app = spawn_app().await;
    let shopper = app.user_token("shopper@example.com", "shopper").await;
    let keyed = |slug: &str| {
        send(
            app.request(reqwest::Method::POST, "/api/categories")
                .bearer_auth(&shopper)
                .header("idempotency-key", "k-1")
                .json(&json!({"slug": slug, "name": slug})),
        )
    };
    assert_problem(keyed("one").await, 403).await;
    // Had the 403 been stored, another body under the key would be a 409 conflict.
    assert_problem(keyed("two").await, 403).await;
}

#[tokio::test]
async fn weak_emails_and_passwords_are_refused() {
    let app = spawn_app().await;
    for (email, password, field) in [
        ("a@b", "a good long password", "email"),
        ("someone@example.com", "aaaaaaaa", "password"),
        ("someone@example.com", "12121212", "password"),
    ] {
        let answer = app.create_user(email, password, "analyst").await;
        let problem = assert_problem(answer, 422).await;
        assert!(
            problem["errors"][field].is_array(),
            "{email} {password}: {problem}"
        );
    }
    assert_eq!(
        app.create_user("ops@example.com", "five different", "analyst")
            .await
            .status(),
        201
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_the_store_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let mode = |path: std::path::PathBuf| {
        std::fs::metadata(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(app.data_dir.clone()), 0o700);
    assert_eq!(mode(app.data_dir.join("catalog.db")), 0o600);
}

#[tokio::test]
async fn made_up_methods_add_no_metric_labels() {
    let app = spawn_app().await;
    for method in ["FROB", "XYZZY", "PLUGH"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let answer = send(app.request(method, "/api/products")).await;
        assert_eq!(answer.status(), 405);
    }
    let metrics = app.metrics().await;
    for made_up in ["FROB", "XYZZY", "PLUGH"] {
        assert!(!metrics.contains(made_up), "{made_up} became a label");
    }
    assert!(
        metrics.contains("method=\"other\""),
        "unknown methods are counted as other"
    );
}

#[tokio::test]
async fn an_event_stream_ends_when_its_token_expires_and_streams_per_user_are_capped() {
    let app = spawn_app_with(|config| {
        config.access_token_ttl_seconds = 3;
        config.analysts.sse_keep_alive = Duration::from_secs(1);
    })
    .await;
    let analyst = app.user_token("analyst@example.com", "analyst").await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        streams.push(catalog_tests::sse::Stream::open(&app, &analyst, "", None).await);
    }
    let fifth = send(app.get("/api/events/stream").bearer_auth(&analyst)).await;
    assert_problem(fifth, 429).await;
    let mut first = streams.remove(0);
    let started = Instant::now();
    let last = loop {
        match first.next().await {
            Some(event) if event.event.as_deref() == Some("expired") => break event,
            Some(_) => continue,
            None => panic!("the stream closed without an `expired` event"),
        }
    };
    assert!(started.elapsed() < Duration::from_secs(8));
    let body: serde_json::Value = serde_json::from_str(&last.data).expect("json");
    assert!(body["resume_after"].is_u64(), "{body}");
    assert!(
        first.next().await.is_none(),
        "the stream went on after `expired`"
    );
}

/// Two all-in-one replicas on one PostgreSQL and one Redis: the limits are the replicas' one.
async fn two_replicas(
    database: &testkit::TestDatabase,
    writes: Option<Rate>,
) -> (TestApp, TestApp) {
    let engines = catalog::config::EngineConfig {
        database_url: Some(database.url.clone()),
        database_pool_size: 4,
        redis_url: Some(testkit::redis_url()),
        ..catalog::config::EngineConfig::default()
    };
    let configure = |engines: catalog::config::EngineConfig| {
        move |config: &mut catalog::config::ServeConfig| {
            config.engines = engines;
            config.limits.rates.writes = writes;
        }
    };
    let one = spawn_app_with(configure(engines.clone())).await;
    let other = spawn_app_with(configure(engines)).await;
    (one, other)
}

#[tokio::test]
async fn replicas_sharing_redis_share_the_login_throttle_and_the_write_limit() {
    let database = testkit::TestDatabase::create().await;
    let (one, other) = two_replicas(&database, Rate::new(4, Duration::from_secs(60))).await;
    // Wrong passwords sent to either replica count together: three, then both refuse.
    let mut statuses = Vec::new();
    for index in 0..6 {
        let app = if index % 2 == 0 { &one } else { &other };
        statuses.push(
            app.login_response(ADMIN_EMAIL, "wrong password")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    // The admin's writes count together too: four, then both refuse.
    let mut statuses = Vec::new();
    for index in 0..6 {
        let app = if index % 2 == 0 { &one } else { &other };
        let slug = format!("shared-{index}");
        let answer = app
            .admin_json(
                reqwest::Method::POST,
                "/api/categories",
                &json!({"slug": slug, "name": slug}),
            )
            .await;
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 201, 429, 429]);
}
