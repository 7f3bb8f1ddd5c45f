//! What the tests that run the binary share.

use std::time::Duration;

use reqwest::Client;
use serde_json::{json, Value};

/// Logs in at `url` (the login route), retrying while the process starts; the access token.
pub async fn login(client: &Client, url: &str, email: &str, password: &str) -> String {
    for _ in 0..100 {
        if let Ok(response) = client
            .post(url)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
        {
            if response.status() == 200 {
                let body: Value = response.json().await.expect("json");
                return body["access_token"].as_str().expect("token").to_owned();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cannot log in");
}

/// Waits until `url` answers `X-Min-Position: position` with 200, for up to `within`; the
/// panic says `what` (and whatever `context` adds, such as a process's log).
#[allow(dead_code)] // not every test binary that shares this module waits for a position
pub async fn wait_for_position(
    client: &Client,
    url: &str,
    position: u64,
    within: Duration,
    context: impl Fn() -> String,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let response = client
            .get(url)
            .header("X-Min-Position", position.to_string())
            .send()
            .await;
        if matches!(&response, Ok(r) if r.status() == 200) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never reached position {position}{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates category `tools` ("Tools") at `url` (the categories route) as the admin of `token`.
#[allow(dead_code)] // not every test binary that shares this module creates one
pub async fn create_tools_category(client: &Client, url: &str, token: &str) {
    let category = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"slug": "tools", "name": "Tools"}))
        .send()
        .await
        .expect("category");
    assert_eq!(category.status(), 201, "creating category tools");
}
