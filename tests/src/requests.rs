//! The request chains the end-to-end tests repeat, each once: a method sends one request of
//! API.md and hands back the response (for the test to assert on) or, where every caller wants
//! the same thing of it, that thing (a token, an id, a JSON body). A transport error (the server
//! not answering at all) fails the test in each of them.

use std::fmt::Display;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

use crate::TestApp;

/// The password of every user the tests create besides the admin.
pub const USER_PASSWORD: &str = "a long password";

/// What creating a product answered (201): the `{"id","version","position"}` body, and its id
/// and position read out of it.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub position: u64,
    pub body: Value,
}

/// Sends `request` and returns the response, whatever its status.
pub async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("the server answers")
}

/// The JSON body of `response` (a problem body too).
pub async fn json_body(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// The `X-Position` header of `response`, as a number.
pub fn position_header(response: &Response) -> u64 {
    response.headers()["x-position"]
        .to_str()
        .expect("X-Position is text")
        .parse()
        .expect("X-Position is a number")
}

/// The SKUs of a listing or search page, in order.
pub fn skus(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["sku"].as_str().expect("sku").to_owned())
        .collect()
}

/// Reads.
impl TestApp {
    /// An anonymous GET of `path`.
    pub async fn fetch(&self, path: &str) -> Response {
        send(self.get(path)).await
    }

    /// An anonymous GET of `path`, its JSON body (whatever the status).
    pub async fn fetch_json(&self, path: &str) -> Value {
        json_body(self.fetch(path).await).await
    }

    /// An anonymous GET of `path`, its body as text (whatever the status).
    pub async fn fetch_text(&self, path: &str) -> String {
        self.fetch(path).await.text().await.expect("a text body")
    }

    /// A GET of `path` with `token`.
    pub async fn fetch_as(&self, token: &str, path: &str) -> Response {
        send(self.get(path).bearer_auth(token)).await
    }

    /// GET `path` with `token`, read as JSON (a problem body too).
    pub async fn get_json(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self.fetch_as(token, path).await;
        let status = response.status();
        (status, json_body(response).await)
    }

    /// GETs `path` with `token` every 100 ms, at most `attempts` times, until `done` holds of
    /// the status and JSON answer (for views that count asynchronously); the last answer.
    pub async fn poll_json(
        &self,
        token: &str,
        path: &str,
        attempts: usize,
        done: impl Fn(StatusCode, &Value) -> bool,
    ) -> Value {
        let mut answer = Value::Null;
        for _ in 0..attempts {
            let status;
            (status, answer) = self.get_json(path, token).await;
            if done(status, &answer) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        answer
    }

    /// Reads with `X-Min-Position`, so the answer reflects the write at `position`.
    pub async fn read_after(&self, path: &str, position: impl Display) -> Response {
        send(
            self.get(path)
                .header("X-Min-Position", position.to_string()),
        )
        .await
    }

    /// [`read_after`](Self::read_after), its JSON body (whatever the status).
    pub async fn read_json_after(&self, path: &str, position: impl Display) -> Value {
        json_body(self.read_after(path, position).await).await
    }

    /// A listing or search page read after `position`: asserts a 200 with an `X-Position`.
    pub async fn read_page_after(&self, path: &str, position: impl Display) -> Value {
        let response = self.read_after(path, position).await;
        assert_eq!(response.status(), 200, "GET {path}");
        assert!(response.headers().contains_key("x-position"), "GET {path}");
        json_body(response).await
    }

    /// The Prometheus text of /metrics.
    pub async fn metrics(&self) -> String {
        self.fetch_text("/metrics").await
    }

    /// The value on the first /metrics line that starts with `prefix` and contains `labels`
    /// (0 when there is none yet).
    pub async fn metric(&self, prefix: &str, labels: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|line| line.starts_with(prefix) && line.contains(labels))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }
}

/// Accounts.
impl TestApp {
    /// POST /api/auth/login with `email` and `password`.
    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        let body = json!({"email": email, "password": password});
        send(self.request(Method::POST, "/api/auth/login").json(&body)).await
    }

    /// Logs in (asserting a 200) and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self.login_response(email, password).await;
        assert_eq!(response.status(), 200, "login of {email} failed");
        let body = json_body(response).await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// The admin creates a user (POST /api/auth/users).
    pub async fn create_user(&self, email: &str, password: &str, role: &str) -> Response {
        let body = json!({"email": email, "password": password, "role": role});
        self.admin_json(Method::POST, "/api/auth/users", &body)
            .await
    }

    /// Creates a user with `role` and [`USER_PASSWORD`] (asserting a 201) and returns its
    /// access token.
    pub async fn user_token(&self, email: &str, role: &str) -> String {
        let response = self.create_user(email, USER_PASSWORD, role).await;
        assert_eq!(response.status(), 201);
        self.login(email, USER_PASSWORD).await
    }
}

/// Writes, as the admin.
impl TestApp {
    /// `method` on `path` with the admin's token and `body` as JSON.
    pub async fn admin_json(&self, method: Method, path: &str, body: &Value) -> Response {
        send(self.admin(method, path).json(body)).await
    }

    /// `method` on `path` with the admin's token and `body` sent as `content_type` (malformed
    /// or non-JSON bodies).
    pub async fn admin_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let request = self
            .admin(method, path)
            .header("content-type", content_type);
        send(request.body(body)).await
    }

    /// `method` on `path` with the admin's token and no body.
    pub async fn admin_send(&self, method: Method, path: &str) -> Response {
        send(self.admin(method, path)).await
    }

    /// Creates the category `slug` (asserting a 201); returns the answer.
    pub async fn create_category(&self, slug: &str) -> Value {
        let body = json!({"slug": slug, "name": slug.to_uppercase()});
        let response = self
            .admin_json(Method::POST, "/api/categories", &body)
            .await;
        assert_eq!(response.status(), 201, "create category {slug}");
        json_body(response).await
    }

    /// Creates a product from `overrides` on top of [`product_body`] (asserting a 201).
    pub async fn create_product(&self, overrides: Value) -> Created {
        let response = self
            .admin_json(Method::POST, "/api/products", &product_body(overrides))
            .await;
        let status = response.status();
        let body = json_body(response).await;
        assert_eq!(status, 201, "create product: {body}");
        Created {
            id: body["id"].as_str().expect("id").to_owned(),
            position: body["position"].as_u64().expect("position"),
            body,
        }
    }

    /// PUT /api/products/{id}/price, not sent yet (for a test to add `If-Match`).
    pub fn price_change(&self, id: &str, price_cents: i64, currency: &str) -> RequestBuilder {
        self.admin(Method::PUT, &format!("/api/products/{id}/price"))
            .json(&json!({"price_cents": price_cents, "currency": currency}))
    }

    /// PUT /api/products/{id}/price.
    pub async fn change_price(&self, id: &str, price_cents: i64, currency: &str) -> Response {
        send(self.price_change(id, price_cents, currency)).await
    }

    /// POST /api/products/{id}/stock with `delta` (and `reason` when given).
    pub async fn adjust_stock(&self, id: &str, delta: i64, reason: Option<&str>) -> Response {
        let mut body = json!({"delta": delta});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        self.admin_json(Method::POST, &format!("/api/products/{id}/stock"), &body)
            .await
    }

    /// POST /api/products/{id}/sales, not sent yet (for a test to add `Idempotency-Key`).
    pub fn sale(&self, id: &str, quantity: i64) -> RequestBuilder {
        self.admin(Method::POST, &format!("/api/products/{id}/sales"))
            .json(&json!({"quantity": quantity}))
    }

    /// POST /api/products/{id}/sales.
    pub async fn sell(&self, id: &str, quantity: i64) -> Response {
        send(self.sale(id, quantity)).await
    }
}

/// A valid published product body with `overrides` merged in (a `null` override removes
/// the field).
pub fn product_body(overrides: Value) -> Value {
    let mut body = json!({
        "sku": format!("SKU-{}", uuid::Uuid::new_v4().simple()),
        "name": "Wireless Headphones X2",
        "description": "Over-ear, noise cancelling.",
        "category": "electronics",
        "brand": "Acme",
        "price_cents": 12999,
        "currency": "USD",
        "stock": 42,
        "status": "published",
        "attributes": {"color": "black", "bluetooth": true, "weight_g": 250},
        "images": ["https://images.example.com/x2.jpg"]
    });
    if let (Some(target), Some(changes)) = (body.as_object_mut(), overrides.as_object()) {
        for (key, value) in changes {
            if value.is_null() {
                target.remove(key);
            } else {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    body
}

/// Asserts a problem+json response with `status` and returns its body.
pub async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem without {field}: {body}");
    }
    body
}
