//! End-to-end helpers: start the real all-in-one server on a random port and talk HTTP to it.

mod alone;
pub mod sse;
mod telemetry;

use alone::AppSlot;
pub use telemetry::DEFAULT_FILTER;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use catalog::startup::{Application, ServeConfig};
use reqwest::{Client, Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A running catalog and a client for it.
///
/// The apps' logs: quiet by default (their tracing output goes to a sink); run the tests with
/// `TEST_LOG=1` to have it on stdout, filtered by `RUST_LOG` when set or else by
/// [`DEFAULT_FILTER`], e.g. `TEST_LOG=1 RUST_LOG=debug cargo test -p catalog-tests --test api
/// -- --nocapture commands` (one process installs one subscriber: the first app's wins).
pub struct TestApp {
    pub address: SocketAddr,
    pub client: Client,
    pub admin_token: String,
    pub data_dir: PathBuf,
    /// Keeps the temporary data dir alive (absent when the caller owns the dir).
    _temp_dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    /// Released once the app is dropped (after `stop`, or with the test).
    _slot: AppSlot,
}

/// Starts a fresh catalog with an empty store in a new temporary data dir.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let mut app = spawn_app_in(&path).await;
    app._temp_dir = Some(dir);
    app
}

/// Starts a catalog on `data_dir` (for restart tests: same dir, new process state).
pub async fn spawn_app_in(data_dir: &Path) -> TestApp {
    let config = ServeConfig::embedded(data_dir.to_path_buf(), "127.0.0.1:0");
    spawn_configured(config).await
}

/// Starts the all-in-one catalog on the distributed engines of `engines`, in this process,
/// with a data dir of its own (for the token key).
pub async fn spawn_distributed(engines: catalog::startup::EngineConfig) -> TestApp {
    spawn_distributed_in_slot(engines, AppSlot::shared().await).await
}

/// [`spawn_distributed`], but with no other test's app running beside it while it runs: for a
/// test that counts a process-wide metric (see the `alone` module). One app per such test.
pub async fn spawn_distributed_alone(engines: catalog::startup::EngineConfig) -> TestApp {
    spawn_distributed_in_slot(engines, AppSlot::alone().await).await
}

async fn spawn_distributed_in_slot(
    engines: catalog::startup::EngineConfig,
    slot: AppSlot,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServeConfig::embedded(dir.path().to_path_buf(), "127.0.0.1:0");
    config.engines = engines;
    let mut app = spawn_in_slot(config, slot).await;
    app._temp_dir = Some(dir);
    app
}

/// Starts a catalog with `config` (its admin is [`ADMIN_EMAIL`]), in this process.
pub async fn spawn_configured(config: ServeConfig) -> TestApp {
    spawn_in_slot(config, AppSlot::shared().await).await
}

async fn spawn_in_slot(mut config: ServeConfig, slot: AppSlot) -> TestApp {
    telemetry::init_test_tracing();
    let data_dir = config.data_dir.clone();
    let data_dir = data_dir.as_path();
    config.admin_email = Some(ADMIN_EMAIL.to_owned());
    config.admin_password = Some(SecretString::from(ADMIN_PASSWORD));
    let application = Application::build(config).await.expect("the app builds");
    let address = application.address();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut app = TestApp {
        address,
        client,
        admin_token: String::new(),
        data_dir: data_dir.to_path_buf(),
        _temp_dir: None,
        stop: Some(stop),
        server: Some(server),
        _slot: slot,
    };
    app.admin_token = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A request with the admin's token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(&self.admin_token)
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self
            .request(Method::POST, "/api/auth/login")
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(response.status(), 200, "login of {email} failed");
        let body: Value = response.json().await.expect("json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Creates a user with `role` and returns its access token.
    pub async fn user_token(&self, email: &str, role: &str) -> String {
        let response = self
            .admin(Method::POST, "/api/auth/users")
            .json(&json!({"email": email, "password": "a long password", "role": role}))
            .send()
            .await
            .expect("create user");
        assert_eq!(response.status(), 201);
        self.login(email, "a long password").await
    }

    pub async fn create_category(&self, slug: &str) -> Value {
        let response = self
            .admin(Method::POST, "/api/categories")
            .json(&json!({"slug": slug, "name": slug.to_uppercase()}))
            .send()
            .await
            .expect("create category");
        assert_eq!(response.status(), 201, "create category {slug}");
        response.json().await.expect("json")
    }

    /// Creates a product from `overrides` on top of a valid published body; returns the
    /// `{"id","version","position"}` answer.
    pub async fn create_product(&self, overrides: Value) -> Value {
        let response = self
            .admin(Method::POST, "/api/products")
            .json(&product_body(overrides))
            .send()
            .await
            .expect("create product");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "create product: {body}");
        body
    }

    /// Reads with `X-Min-Position`, so the answer reflects the write at `position`.
    /// The Prometheus text of /metrics.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// GET `path` with `token`, read as JSON (a problem body too).
    pub async fn get_json(&self, path: &str, token: &str) -> (reqwest::StatusCode, Value) {
        let response = self
            .get(path)
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = response.status();
        (status, response.json().await.expect("json"))
    }

    pub async fn read_after(&self, path: &str, position: &Value) -> Response {
        self.get(path)
            .header("X-Min-Position", position.to_string())
            .send()
            .await
            .expect("read")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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
