//! Builds the all-in-one application: engines, projectors, routes, listener. Tests spawn it
//! on port 0 (`Application::build` binds; `port()` tells where).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use auth::limiter::FailedLoginLimiter;
use auth::{Role, TokenSigner};
use axum::routing::get;
use axum::Router;
use command_api::service::CommandService;
use command_api::sqlite::SqliteDatabase;
use command_api::CommandState;
use events::bus::{EventBus, InProcessBus};
use events::store::EventStore;
use events::EventMetadata;
use projectors::read_model::MemoryReadModel;
use projectors::runner::Projector;
use query_api::QueryState;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use utoipa::OpenApi;
use utoipa_scalar::{Scalar, Servable};
use web::ops::{Readiness, ReadinessCheck};

use crate::admin::{self, AdminState};
use crate::demo;
use crate::openapi::ApiDoc;

/// What `serve` needs, already parsed.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub demo_products: Option<usize>,
    pub jwt_key_file: Option<PathBuf>,
    pub admin_email: Option<String>,
    pub admin_password: Option<SecretString>,
    pub access_token_ttl_seconds: i64,
}

impl ServeConfig {
    /// Embedded defaults under `data_dir`, listening on `listen`.
    pub fn embedded(data_dir: PathBuf, listen: &str) -> Self {
        ServeConfig {
            listen: listen.to_owned(),
            data_dir,
            demo_products: None,
            jwt_key_file: None,
            admin_email: None,
            admin_password: None,
            access_token_ttl_seconds: 900,
        }
    }
}

/// The engines of the embedded mode, opened from the data dir.
pub struct Engines {
    pub database: SqliteDatabase,
    pub store: Arc<dyn EventStore>,
    pub bus: Arc<dyn EventBus>,
    pub commands: Arc<CommandService>,
}

impl Engines {
    pub async fn open(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        let path = data_dir.join("catalog.db");
        let database = SqliteDatabase::open(&path)
            .await
            .with_context(|| format!("cannot open the event store at {}", path.display()))?;
        let store: Arc<dyn EventStore> = Arc::new(database.event_store());
        let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(store.clone()));
        let commands = Arc::new(CommandService::new(store.clone(), bus.clone()));
        Ok(Engines {
            database,
            store,
            bus,
            commands,
        })
    }
}

/// The metadata of events the binary writes itself (demo data, seeding).
pub fn system_metadata(purpose: &str) -> EventMetadata {
    EventMetadata {
        actor: Some("system".to_owned()),
        correlation_id: Some(purpose.to_owned()),
        causation_id: None,
    }
}

/// Creates the demo categories that do not exist yet.
pub async fn ensure_demo_categories(commands: &CommandService) -> anyhow::Result<()> {
    for category in demo::categories() {
        match commands
            .create_category(category, system_metadata("demo-categories"))
            .await
        {
            Ok(_) | Err(command_api::service::CommandError::DuplicateCategory(_)) => {}
            Err(error) => return Err(error).context("cannot create the demo categories"),
        }
    }
    Ok(())
}

/// Appends `count` generated products in batches, calling `progress` after each batch.
pub async fn seed_products(
    commands: &CommandService,
    seed: u64,
    count: usize,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<()> {
    ensure_demo_categories(commands).await?;
    let products = demo::products(seed, count);
    for batch in products.chunks(1000) {
        commands
            .create_products(batch.to_vec(), system_metadata("seed"))
            .await
            .context("cannot append generated products")?;
        progress(batch.len());
    }
    Ok(())
}

struct StoreReadiness(Arc<dyn EventStore>);

impl ReadinessCheck for StoreReadiness {
    fn name(&self) -> &str {
        "event-store"
    }

    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.ping().await.map_err(|error| error.to_string()) })
    }
}

async fn ensure_first_admin(config: &ServeConfig, state: &CommandState) -> anyhow::Result<()> {
    let (email, password, generated) = match (&config.admin_email, &config.admin_password) {
        (Some(email), Some(password)) => (
            email.trim().to_lowercase(),
            password.expose_secret().to_owned(),
            false,
        ),
        (None, None) => (
            "admin@localhost".to_owned(),
            auth::tokens::new_password(),
            true,
        ),
        _ => bail!("set both CATALOG_ADMIN_EMAIL and CATALOG_ADMIN_PASSWORD, or neither"),
    };
    if state.users.by_email(&email).await?.is_some() {
        return Ok(());
    }
    if !generated {
        command_api::routes::auth::check_email(&email)
            .map_err(|message| anyhow::anyhow!("CATALOG_ADMIN_EMAIL {message}"))?;
        command_api::routes::auth::check_password(&password)
            .map_err(|message| anyhow::anyhow!("CATALOG_ADMIN_PASSWORD {message}"))?;
    }
    command_api::routes::auth::create_account(state.users.as_ref(), &email, &password, Role::Admin)
        .await
        .map_err(|problem| anyhow::anyhow!("cannot create the first admin: {problem}"))?;
    if generated {
        tracing::warn!(
            email = %email,
            password = %password,
            "created the first admin with a generated password; it is shown only this once"
        );
    } else {
        tracing::info!(email = %email, "created the first admin");
    }
    Ok(())
}

/// A built, bound, ready-to-run catalog.
pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    database: SqliteDatabase,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Opens the engines, rebuilds the read model, binds the listener.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        // Install the recorder before anything records.
        web::telemetry::metrics_handle();
        let engines = Engines::open(&config.data_dir).await?;
        let signer = match &config.jwt_key_file {
            Some(path) => TokenSigner::load_or_create(path, false, config.access_token_ttl_seconds)
                .with_context(|| format!("cannot read CATALOG_JWT_KEY_FILE {}", path.display()))?,
            None => TokenSigner::load_or_create(
                &config.data_dir.join("jwt-ed25519.pem"),
                true,
                config.access_token_ttl_seconds,
            )
            .context("cannot load or create the token signing key")?,
        };
        let verifier = Arc::new(signer.verifier());
        let command_state = CommandState {
            commands: engines.commands.clone(),
            users: Arc::new(engines.database.user_store()),
            sessions: Arc::new(engines.database.session_store()),
            idempotency: Arc::new(engines.database.idempotency_store()),
            signer: Arc::new(signer),
            verifier: verifier.clone(),
            login_limiter: Arc::new(FailedLoginLimiter::new(5, Duration::from_secs(15 * 60))),
        };
        ensure_first_admin(&config, &command_state).await?;

        if let Some(count) = config.demo_products {
            if engines.store.head().await? == 0 {
                tracing::info!(products = count, "loading demo data into the empty store");
                seed_products(&engines.commands, 2026, count, |_| {}).await?;
            }
        }

        let read_model = Arc::new(MemoryReadModel::new());
        let projector = Projector::new(read_model.clone(), engines.store.clone());
        let started = std::time::Instant::now();
        let position = projector.catch_up().await?;
        tracing::info!(
            position,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read model rebuilt from the store"
        );
        let mut background = vec![tokio::spawn(projector.clone().run(engines.bus.clone()))];
        background.push(tokio::spawn(purge_idempotency_keys(
            command_state.idempotency.clone(),
        )));

        let readiness = Readiness::new(vec![Arc::new(StoreReadiness(engines.store.clone()))]);
        let admin_state = AdminState {
            projectors: vec![projector],
            store: engines.store.clone(),
            verifier,
        };
        let openapi = Arc::new(ApiDoc::openapi());
        let routes = Router::new()
            .merge(command_api::router(command_state))
            .merge(query_api::router(QueryState::new(read_model)))
            .merge(web::ops::ops_router(readiness))
            .route(
                "/api/admin/projections",
                get(admin::projections).with_state(admin_state),
            )
            .route(
                "/api/openapi.json",
                get(move || {
                    let openapi = openapi.clone();
                    async move { axum::Json(openapi.as_ref().clone()) }
                }),
            )
            .merge(Scalar::with_url("/api/docs", ApiDoc::openapi()));
        let router = web::middleware::with_http_layers(routes);

        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            router,
            address,
            database: engines.database,
            background,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests and stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!("listening on {}", self.address);
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        for task in &self.background {
            task.abort();
        }
        self.database.close().await;
        served.context("the server failed")
    }
}

async fn purge_idempotency_keys(store: Arc<dyn command_api::idempotency::IdempotencyStore>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60 * 60));
    loop {
        interval.tick().await;
        let lifetime = chrono::Duration::from_std(command_api::idempotency::KEY_LIFETIME)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        match store.purge(chrono::Utc::now() - lifetime).await {
            Ok(removed) if removed > 0 => {
                tracing::info!(removed, "forgot expired idempotency keys")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot purge idempotency keys"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
