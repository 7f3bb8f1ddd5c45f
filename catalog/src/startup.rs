//! Builds the application for one role (or all of them) and runs it. Tests spawn it on port 0
//! (`Application::build` binds; `port()` tells where).
//!
//! The build is wiring only: settings come parsed ([`crate::config`]), engines are opened by
//! [`crate::engines`], each role mounts its own routes, checks and tasks ([`crate::roles`]),
//! and this module puts them behind the shared HTTP layers and a listener.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use query_api::events_api::EventFeed;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use web::ops::Readiness;

pub use crate::config::{AnalystConfig, EngineConfig, ServeConfig};
use crate::engines::Engines;
use crate::roles::{self, Mounted, Parts};
pub use crate::roles::{ANALYTICS, ANALYTICS_EVENTS, PROJECTORS, READ_MODEL, REDIS_VIEWS, SEARCH};

/// A built, bound, ready-to-run catalog.
pub struct Application {
    listener: TcpListener,
    router: Router,
    connections: web::server::ConnectionLimits,
    /// Set on shutdown, `drain_delay` before the listener closes (`/readyz` says `draining`).
    draining: web::ops::Draining,
    drain_delay: std::time::Duration,
    address: SocketAddr,
    engines: Engines,
    background: Vec<JoinHandle<()>>,
    /// Event streams to end when the server shuts down (graceful shutdown waits for every
    /// open connection, and a stream would never end by itself).
    feeds: Vec<Arc<EventFeed>>,
    /// Directories that live as long as the process (a query role's own search index).
    _temporary_dirs: Vec<tempfile::TempDir>,
}

impl Application {
    /// Opens the engines of `config.role`, catches projections up, binds the listener.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        // Install the recorder before anything records.
        web::telemetry::metrics_handle();
        let parts = Parts::of(&config)?;
        let engines = Engines::open(&config.data_dir, &config.engines).await?;
        roles::verify_bus(&engines, &config, parts).await?;
        let mut mounted = Mounted {
            checks: crate::readiness::engine_checks(&engines),
            ..Mounted::default()
        };
        let mut verifier = None;
        if parts.command {
            let (command, signer_verifier) = roles::command::mount(&config, &engines).await?;
            mounted.merge(command);
            verifier = Some(signer_verifier);
        }
        let views = match engines.postgres() {
            None => {
                let views = roles::query::embedded_views(&config, &engines, &mut mounted).await?;
                if let Some(database) = engines.sqlite() {
                    // For `catalog projections status|rebuild` run beside this process.
                    let report = projectors::status::report_sqlite(
                        database.writer().clone(),
                        mounted.projectors.clone(),
                    );
                    mounted.background.push(tokio::spawn(report));
                }
                Some(views)
            }
            Some(database) => {
                if parts.projectors {
                    mounted.merge(roles::projectors::mount(&config, &engines, database).await?);
                }
                match parts.query {
                    true => Some(
                        roles::query::distributed_views(&config, &engines, database, &mut mounted)
                            .await?,
                    ),
                    false => None,
                }
            }
        };
        if let (true, Some(views)) = (parts.query, views) {
            let query = roles::query::mount(&config, &engines, views, verifier.clone()).await;
            mounted.merge(query);
        }
        if parts.command {
            let verifier = match verifier.clone() {
                Some(verifier) => verifier,
                None => Arc::new(crate::keys::load_verifier(&config).await?),
            };
            let admin = roles::admin::mount(&engines, verifier, &mounted.projectors);
            mounted.merge(admin);
        }
        let policy = http_policy(&config, &engines, parts.command, verifier.clone());
        if let Some(limiter) = &policy.limiter {
            let buckets = limiter.local.clone();
            let forget = buckets.forget_idle_every(std::time::Duration::from_secs(60));
            mounted.background.push(tokio::spawn(forget));
        }
        let draining = web::ops::Draining::default();
        let router = web::middleware::with_http_layers(
            mounted
                .router
                .merge(operations_routes(mounted.checks, draining.clone()))
                .merge(crate::ui::routes(
                    crate::ui::Pages {
                        storefront: parts.query,
                        admin: parts.command,
                    },
                    engines.images.clone(),
                )),
            policy,
        );
        let listener = bind(&config.listen, config.reuse_port)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            router,
            connections: config.limits.connections.clone(),
            draining,
            drain_delay: config.limits.drain_delay,
            address,
            engines,
            background: mounted.background,
            feeds: mounted.feeds,
            _temporary_dirs: mounted.temporary_dirs,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until `shutdown` resolves, then reports `draining` on `/readyz` while it still
    /// serves for the drain delay, then stops accepting, lets in-flight requests finish and
    /// stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!("listening on {}", self.address);
        let feeds = self.feeds.clone();
        let (draining, drain_delay) = (self.draining.clone(), self.drain_delay);
        let shutdown = async move {
            shutdown.await;
            draining.start();
            if !drain_delay.is_zero() {
                tracing::info!(
                    seconds = drain_delay.as_secs_f64(),
                    "draining: /readyz answers 503 while requests are still served"
                );
                tokio::time::sleep(drain_delay).await;
            }
            for feed in &feeds {
                feed.close();
            }
        };
        let served =
            web::server::serve(self.listener, self.router, self.connections, shutdown).await;
        for task in &self.background {
            task.abort();
        }
        // Wait until the aborted tasks are gone, so what they held (a search index's lock)
        // is released when this returns.
        for task in self.background {
            let _ = task.await;
        }
        self.engines.close().await;
        served.context("the server failed")
    }
}

/// The shared layers' policy: trusted proxies, and the rate limits, with the auth and write
/// buckets in Redis when the command role has one (so its replicas enforce one limit), and
/// authenticated clients named by their token's subject where this process verifies tokens.
fn http_policy(
    config: &ServeConfig,
    engines: &Engines,
    command: bool,
    verifier: Option<Arc<auth::TokenVerifier>>,
) -> web::guard::HttpPolicy {
    use web::rate_limit::{Limiter, RateLimitBackend, RouteClass};
    let mut limiter = Limiter::local(config.limits.rates);
    if let (true, Some((redis_config, connection))) = (command, &engines.redis) {
        let shared: Arc<dyn RateLimitBackend> =
            Arc::new(command_api::accounts::redis_throttle::RedisRateLimits::new(
                redis_config.clone(),
                connection.clone(),
                config.limits.rates,
                limiter.local.clone(),
            ));
        limiter.shared = vec![
            (RouteClass::Auth, shared.clone()),
            (RouteClass::Writes, shared),
        ];
    }
    if let Some(verifier) = verifier {
        limiter.subject = Some(Arc::new(move |headers: &axum::http::HeaderMap| {
            auth::extract::verified_subject(headers, &verifier)
        }));
    }
    web::guard::HttpPolicy {
        proxies: config.limits.trusted_proxies.clone(),
        limiter: Some(limiter),
    }
}

/// Binds `address`; with `reuse_port`, with `SO_REUSEPORT`, so several processes (query-api
/// replicas on one machine) can listen on one port and the kernel spreads connections
/// between them, as a load balancer would.
async fn bind(address: &str, reuse_port: bool) -> anyhow::Result<TcpListener> {
    if !reuse_port {
        return Ok(TcpListener::bind(address).await?);
    }
    let address: SocketAddr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{address} resolves to nothing"))?;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    Ok(socket.listen(4096)?)
}

/// Resolves on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // SIGTERM's handler is installed here, when called, not when first polled: a SIGTERM that
    // arrives right after `listening on` is logged must stop the server gracefully, not kill
    // it with the default action.
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let interrupt = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
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
}

/// `/healthz`, `/readyz` (with `checks`), `/metrics`, the OpenAPI document and its reference
/// page: the routes every role serves.
fn operations_routes(
    checks: Vec<Arc<dyn web::ops::ReadinessCheck>>,
    draining: web::ops::Draining,
) -> Router {
    let openapi = Arc::new(crate::openapi::document());
    Router::new()
        .merge(web::ops::ops_router(Readiness::new(checks, draining)))
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .merge(crate::docs::routes())
}
