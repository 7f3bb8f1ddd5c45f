//! The admin console's cookie session (`/api/auth/session`): the refresh token only in an
//! `HttpOnly; Secure; SameSite=Strict` cookie, every call guarded by `X-Catalog-CSRF: 1`.

use catalog_tests::{
    assert_problem, json_body, send, spawn_app, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD,
};
use reqwest::Method;
use serde_json::json;

fn session_call(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = app.request(method, path).header("x-catalog-csrf", "1");
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("catalog_refresh={cookie}"));
    }
    request
}

/// The `catalog_refresh` value a response sets, and the whole `Set-Cookie` line.
fn set_cookie(response: &reqwest::Response) -> (String, String) {
    let line = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .expect("a Set-Cookie header")
        .to_owned();
    let value = line
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("catalog_refresh="))
        .expect("the catalog_refresh cookie")
        .to_owned();
    (value, line)
}

/// `POST /api/auth/session/refresh` with the CSRF header and, when given, the cookie.
async fn refresh(app: &TestApp, cookie: Option<&str>) -> reqwest::Response {
    send(session_call(
        app,
        Method::POST,
        "/api/auth/session/refresh",
        cookie,
    ))
    .await
}

async fn start(app: &TestApp) -> reqwest::Response {
    send(
        session_call(app, Method::POST, "/api/auth/session", None)
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
    )
    .await
}

#[tokio::test]
async fn a_console_login_keeps_the_refresh_token_in_a_strict_http_only_cookie_only() {
    let app = spawn_app().await;
    let response = start(&app).await;
    assert_eq!(response.status(), 200);
    let (cookie, line) = set_cookie(&response);
    for part in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/api/auth/session",
    ] {
        assert!(line.contains(part), "{line} lacks {part}");
    }
    let body = json_body(response).await;
    assert!(
        body.get("refresh_token").is_none(),
        "the body must not carry the refresh token: {body}"
    );
    let access = body["access_token"].as_str().expect("an access token");
    let me = json_body(app.fetch_as(access, "/api/auth/me").await).await;
    assert_eq!(me["email"], ADMIN_EMAIL);
    // The cookie's token is a real session: it refreshes, rotating the cookie.
    let refreshed = refresh(&app, Some(&cookie)).await;
    assert_eq!(refreshed.status(), 200);
    let (rotated, _) = set_cookie(&refreshed);
    assert_ne!(rotated, cookie);
    assert!(json_body(refreshed).await["access_token"]
        .as_str()
        .is_some());
    // The old cookie replayed revokes the session (refresh-token reuse).
    let replayed = refresh(&app, Some(&cookie)).await;
    let (cleared, _) = set_cookie(&replayed);
    assert!(cleared.is_empty(), "a dead session's cookie is cleared");
    assert_problem(replayed, 401).await;
    let after_reuse = refresh(&app, Some(&rotated)).await;
    assert_problem(after_reuse, 401).await;
}

#[tokio::test]
async fn session_calls_without_the_csrf_header_or_a_cookie_are_refused() {
    let app = spawn_app().await;
    let response = start(&app).await;
    let (cookie, _) = set_cookie(&response);
    // A cross-site form post cannot add the header: without it the cookie is not used.
    let forged = send(
        app.request(Method::POST, "/api/auth/session/refresh")
            .header("cookie", format!("catalog_refresh={cookie}")),
    )
    .await;
    assert_problem(forged, 403).await;
    let forged_login = send(
        app.request(Method::POST, "/api/auth/session")
            .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
    )
    .await;
    assert_problem(forged_login, 403).await;
    let no_cookie = refresh(&app, None).await;
    // No cookie: no session to refresh, said without an error (the console asks at each load).
    assert_eq!(no_cookie.status(), 204);
    assert!(no_cookie.headers().get("set-cookie").is_none());
    let wrong = send(
        session_call(&app, Method::POST, "/api/auth/session", None)
            .json(&json!({"email": ADMIN_EMAIL, "password": "wrong password"})),
    )
    .await;
    assert_problem(wrong, 401).await;
    // The cookie still works: none of the refused calls touched it.
    let refreshed = refresh(&app, Some(&cookie)).await;
    assert_eq!(refreshed.status(), 200);
}

#[tokio::test]
async fn logging_out_of_the_console_clears_the_cookie_and_ends_the_session() {
    let app = spawn_app().await;
    let (cookie, _) = set_cookie(&start(&app).await);
    let ended = send(session_call(
        &app,
        Method::DELETE,
        "/api/auth/session",
        Some(&cookie),
    ))
    .await;
    assert_eq!(ended.status(), 204);
    let (cleared, line) = set_cookie(&ended);
    assert!(cleared.is_empty() && line.contains("Max-Age=0"), "{line}");
    let after = refresh(&app, Some(&cookie)).await;
    assert_problem(after, 401).await;
}
