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
