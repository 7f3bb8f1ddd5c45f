//! The Auth section of API.md.

use auth::TokenVerifier;
use catalog_tests::{assert_problem, spawn_app, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

async fn login(app: &catalog_tests::TestApp, email: &str, password: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/auth/login")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn refresh(app: &catalog_tests::TestApp, token: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/auth/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_gives_a_token_pair_verified_by_the_published_jwks() {
    let app = spawn_app().await;
    let response = login(&app, "Admin@Example.com", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let pair: Value = response.json().await.unwrap();
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    assert!(pair["refresh_token"].as_str().unwrap().len() >= 32);
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let claims = TokenVerifier::from_jwks(&jwks)
        .unwrap()
        .verify(pair["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.email, ADMIN_EMAIL);
    let me: Value = app
        .get("/api/auth/me")
        .bearer_auth(pair["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["id"], claims.sub.to_string());
}

#[tokio::test]
async fn wrong_credentials_are_401_missing_fields_422_and_me_needs_a_token() {
    let app = spawn_app().await;
    assert_problem(login(&app, ADMIN_EMAIL, "wrong password").await, 401).await;
    assert_problem(login(&app, "nobody@example.com", ADMIN_PASSWORD).await, 401).await;
    let missing = app
        .request(Method::POST, "/api/auth/login")
        .json(&json!({"email": ADMIN_EMAIL}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(missing, 422).await;
    assert!(problem["errors"]["password"].is_array());
    assert_problem(app.get("/api/auth/me").send().await.unwrap(), 401).await;
    assert_problem(
        app.get("/api/auth/me")
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_problem(
        app.get("/api/auth/me")
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_account() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(
            login(&app, ADMIN_EMAIL, "wrong password").await.status(),
            401
        );
    }
    let limited = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
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
    let first: Value = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let old = first["refresh_token"].as_str().unwrap();
    let rotated = refresh(&app, old).await;
    assert_eq!(rotated.status(), 200);
    let second: Value = rotated.json().await.unwrap();
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        app.get("/api/auth/me")
            .bearer_auth(second["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The old token is replayed (stolen?): the whole session ends, the new token too.
    assert_problem(refresh(&app, old).await, 401).await;
    assert_problem(refresh(&app, new).await, 401).await;
    assert_problem(refresh(&app, "never-issued").await, 401).await;
    assert_problem(
        app.request(Method::POST, "/api/auth/refresh")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let pair: Value = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = pair["refresh_token"].as_str().unwrap();
    let response = app
        .request(Method::POST, "/api/auth/logout")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_problem(refresh(&app, token).await, 401).await;
}

#[tokio::test]
async fn admins_create_users_with_roles() {
    let app = spawn_app().await;
    let created = app
        .admin(Method::POST, "/api/auth/users")
        .json(
            &json!({"email": "Ana@Example.com", "password": "a long password", "role": "analyst"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let user: Value = created.json().await.unwrap();
    assert_eq!(
        (user["email"].as_str(), user["role"].as_str()),
        (Some("ana@example.com"), Some("analyst"))
    );
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    let duplicate = app
        .admin(Method::POST, "/api/auth/users")
        .json(
            &json!({"email": "ana@example.com", "password": "a long password", "role": "shopper"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(duplicate, 409).await;
    let bad_role = app
        .admin(Method::POST, "/api/auth/users")
        .json(&json!({"email": "x@example.com", "password": "a long password", "role": "root"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad_role, 422).await;
    assert!(problem["errors"]["role"].is_array());
    let weak = app
        .admin(Method::POST, "/api/auth/users")
        .json(&json!({"email": "not-an-email", "password": "short", "role": "shopper"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(weak, 422).await;
    assert_eq!(problem["errors"].as_object().unwrap().len(), 2);
    let analyst = app.login("ana@example.com", "a long password").await;
    let forbidden = app
        .request(Method::POST, "/api/auth/users")
        .bearer_auth(&analyst)
        .json(&json!({"email": "y@example.com", "password": "a long password", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_problem(forbidden, 403).await;
    let anonymous = app
        .request(Method::POST, "/api/auth/users")
        .json(&json!({"email": "y@example.com", "password": "a long password", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401).await;
}
