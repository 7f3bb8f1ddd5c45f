//! The Auth section of API.md.

use auth::TokenVerifier;
use catalog_tests::{
    assert_problem, json_body, send, spawn_app, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD, USER_PASSWORD,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    send(
        app.request(Method::POST, "/api/auth/refresh")
            .json(&json!({"refresh_token": token})),
    )
    .await
}

/// The admin's token pair, from a fresh login.
async fn admin_pair(app: &TestApp) -> Value {
    json_body(app.login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await).await
}

#[tokio::test]
async fn login_gives_a_token_pair_verified_by_the_published_jwks() {
    let app = spawn_app().await;
    let response = app
        .login_response("Admin@Example.com", ADMIN_PASSWORD)
        .await;
    assert_eq!(response.status(), 200);
    let pair = json_body(response).await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    assert!(pair["refresh_token"].as_str().unwrap().len() >= 32);
    let jwks = app.fetch_json("/.well-known/jwks.json").await;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let claims = TokenVerifier::from_jwks(&jwks)
        .unwrap()
        .verify(pair["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.email, ADMIN_EMAIL);
    let access_token = pair["access_token"].as_str().unwrap();
    let me = json_body(app.fetch_as(access_token, "/api/auth/me").await).await;
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["id"], claims.sub.to_string());
}

#[tokio::test]
async fn wrong_credentials_are_401_missing_fields_422_and_me_needs_a_token() {
    let app = spawn_app().await;
    let wrong = app.login_response(ADMIN_EMAIL, "wrong password").await;
    assert_problem(wrong, 401).await;
    let nobody = app
        .login_response("nobody@example.com", ADMIN_PASSWORD)
        .await;
    assert_problem(nobody, 401).await;
    let missing = send(
        app.request(Method::POST, "/api/auth/login")
            .json(&json!({"email": ADMIN_EMAIL})),
    )
    .await;
    let problem = assert_problem(missing, 422).await;
    assert!(problem["errors"]["password"].is_array());
    assert_problem(app.fetch("/api/auth/me").await, 401).await;
    assert_problem(app.fetch_as("garbage", "/api/auth/me").await, 401).await;
    let basic = send(app.get("/api/auth/me").header("authorization", "Basic abc")).await;
    assert_problem(basic, 401).await;
}

#[tokio::test]
async fn failed_logins_back_off_per_account_and_address() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let wrong = app.login_response(ADMIN_EMAIL, "wrong password").await;
        assert_eq!(wrong.status(), 401);
    }
    let limited = app.login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_problem(limited, 429).await;
}

#[tokio::test]
async fn refresh_rotates_and_reusing_an_old_token_revokes_the_session() {
    let app = spawn_app().await;
    let first = admin_pair(&app).await;
    let old = first["refresh_token"].as_str().unwrap();
    let rotated = refresh(&app, old).await;
    assert_eq!(rotated.status(), 200);
    let second = json_body(rotated).await;
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    let access_token = second["access_token"].as_str().unwrap();
    assert_eq!(
        app.fetch_as(access_token, "/api/auth/me").await.status(),
        200
    );
    // The old token is replayed (stolen?): the whole session ends, the new token too.
    assert_problem(refresh(&app, old).await, 401).await;
    assert_problem(refresh(&app, new).await, 401).await;
    assert_problem(refresh(&app, "never-issued").await, 401).await;
    let empty = send(
        app.request(Method::POST, "/api/auth/refresh")
            .json(&json!({})),
    )
    .await;
    assert_problem(empty, 422).await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let pair = admin_pair(&app).await;
    let token = pair["refresh_token"].as_str().unwrap();
    let response = send(
        app.request(Method::POST, "/api/auth/logout")
            .json(&json!({"refresh_token": token})),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_problem(refresh(&app, token).await, 401).await;
}

#[tokio::test]
async fn admins_create_users_with_roles() {
    let app = spawn_app().await;
    let created = app
        .create_user("Ana@Example.com", USER_PASSWORD, "analyst")
        .await;
    assert_eq!(created.status(), 201);
    let user = json_body(created).await;
    assert_eq!(
        (user["email"].as_str(), user["role"].as_str()),
        (Some("ana@example.com"), Some("analyst"))
    );
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    let duplicate = app
        .create_user("ana@example.com", USER_PASSWORD, "shopper")
        .await;
    assert_problem(duplicate, 409).await;
    let bad_role = app
        .create_user("x@example.com", USER_PASSWORD, "root")
        .await;
    let problem = assert_problem(bad_role, 422).await;
    assert!(problem["errors"]["role"].is_array());
    let weak = app.create_user("not-an-email", "short", "shopper").await;
    let problem = assert_problem(weak, 422).await;
    assert_eq!(problem["errors"].as_object().unwrap().len(), 2);
    let analyst = app.login("ana@example.com", USER_PASSWORD).await;
    let new_admin = json!({"email": "y@example.com", "password": USER_PASSWORD, "role": "admin"});
    let users = || {
        app.request(Method::POST, "/api/auth/users")
            .json(&new_admin)
    };
    assert_problem(send(users().bearer_auth(&analyst)).await, 403).await;
    assert_problem(send(users()).await, 401).await;
}
