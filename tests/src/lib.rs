//! End-to-end helpers: start the real all-in-one server on a random port and talk HTTP to it.

mod alone;
mod requests;
pub mod sse;
mod telemetry;

use alone::AppSlot;
pub use requests::{
    assert_problem, json_body, position_header, product_body, send, skus, Created, USER_PASSWORD,
};
pub use telemetry::DEFAULT_FILTER;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use catalog::config::ServeConfig;
use catalog::startup::Application;
use reqwest::{Client, Method, RequestBuilder};
use secrecy::SecretString;
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
    spawn_fresh(None, |_| {}, AppSlot::shared().await).await
}

/// [`spawn_app`], with no other test's app running beside it (see the `alone` module): for a
/// test that counts a process-wide metric.
pub async fn spawn_app_alone() -> TestApp {
    spawn_fresh(None, |_| {}, AppSlot::alone().await).await
}

/// Starts a fresh catalog (as [`spawn_app`]) with the `electronics` category and one product
/// made of `overrides` on [`product_body`]; returns it with the product's id.
pub async fn spawn_app_with_product(overrides: serde_json::Value) -> (TestApp, String) {
    let app = spawn_app().await;
    app.create_category("electronics").await;
    let id = app.create_product(overrides).await.id;
    (app, id)
}

/// A fresh embedded catalog (as [`spawn_app`]) whose settings `change` adjusts first: limits,
/// trusted proxies, timeouts.
pub async fn spawn_app_with(change: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServeConfig::embedded(dir.path().to_path_buf(), "127.0.0.1:0");
    change(&mut config);
    let mut app = spawn_configured(config).await;
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
pub async fn spawn_distributed(engines: catalog::config::EngineConfig) -> TestApp {
    spawn_fresh(Some(engines), |_| {}, AppSlot::shared().await).await
}

/// [`spawn_distributed`], but with no other test's app running beside it while it runs: for a
/// test that counts a process-wide metric (see the `alone` module). One app per such test.
pub async fn spawn_distributed_alone(engines: catalog::config::EngineConfig) -> TestApp {
    spawn_distributed_alone_with(engines, |_| {}).await
}

/// [`spawn_distributed_alone`], with settings `change` adjusts first (limits, say).
pub async fn spawn_distributed_alone_with(
    engines: catalog::config::EngineConfig,
    change: impl FnOnce(&mut ServeConfig),
) -> TestApp {
    spawn_fresh(Some(engines), change, AppSlot::alone().await).await
}

/// A catalog in a new temporary data dir, on the embedded engines or on `engines`.
async fn spawn_fresh(
    engines: Option<catalog::config::EngineConfig>,
    change: impl FnOnce(&mut ServeConfig),
    slot: AppSlot,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServeConfig::embedded(dir.path().to_path_buf(), "127.0.0.1:0");
    if let Some(engines) = engines {
        config.engines = engines;
    }
    change(&mut config);
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
