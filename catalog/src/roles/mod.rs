//! The roles a process runs (`--role all|command|query|projectors`), one module each. Each
//! returns what it mounts ([`Mounted`]: routes, readiness checks, background tasks) and the
//! startup merges them; none reaches into another's state.
//!
//! - [`command`]: the write API, the first admin, demo data, the outbox relay.
//! - [`projectors`]: the projections of the distributed mode (PostgreSQL read model, Redis views,
//!   analytics, OpenSearch) and the counter of the shoppers' analytics stream.
//! - [`query`]: the views a query process reads (its own in the embedded mode) and the read API.
//! - [`analytics`]: where the shoppers' analytics observations go.
//! - [`admin`]: `GET /api/admin/projections` (with the command role).

pub mod admin;
pub mod analytics;
pub mod command;
pub mod projectors;
pub mod query;

use std::sync::Arc;
use std::time::Instant;

use ::projectors::runner::Projector;
use ::projectors::Projection;
use anyhow::Context;
use axum::Router;
use events::bus::EventBus;
use events::store::EventStore;
use query_api::events_api::EventFeed;
use tokio::task::JoinHandle;
use web::ops::ReadinessCheck;

use crate::config::{Role, ServeConfig};
use crate::engines::Engines;

/// The projectors this build can run, by name (the consumer group / queue of each).
pub const PROJECTORS: [&str; 4] = [READ_MODEL, REDIS_VIEWS, SEARCH, ANALYTICS];
pub const READ_MODEL: &str = "read-model";
pub const REDIS_VIEWS: &str = "redis";
pub const SEARCH: &str = "search";
/// The analytics view in Redis (sales and categories from the catalog stream).
pub const ANALYTICS: &str = "analytics";
/// The consumer counting the shopper analytics stream into that view: Kafka consumer group
/// `catalog.analytics-events` (a group of its own, as it reads another topic), SQS queue
/// `<queue_prefix>analytics-events`.
pub const ANALYTICS_EVENTS: &str = "analytics-events";

/// Which parts of the catalog this process runs.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub command: bool,
    pub query: bool,
    pub projectors: bool,
}

impl Parts {
    /// The parts of `config.role`; a split role needs the distributed engines.
    pub fn of(config: &ServeConfig) -> anyhow::Result<Self> {
        if !config.engines.is_distributed() && config.role != Role::All {
            anyhow::bail!(
                "--role {} needs DATABASE_URL (and CATALOG_BUS to use Kafka or SNS/SQS); \
                 without them only --role all runs",
                config.role.name()
            );
        }
        Ok(Parts {
            command: matches!(config.role, Role::All | Role::Command),
            query: matches!(config.role, Role::All | Role::Query),
            projectors: matches!(config.role, Role::All | Role::Projectors),
        })
    }

    /// The projectors (consumer groups / queues) this process subscribes to the bus with.
    pub fn subscribers(&self, engines: &Engines, config: &ServeConfig) -> Vec<&'static str> {
        if !self.projectors {
            return Vec::new();
        }
        let mut names = vec![READ_MODEL];
        if engines.redis.is_some() {
            names.push(REDIS_VIEWS);
            names.push(ANALYTICS);
        }
        if config.engines.search_url.is_some() {
            names.push(SEARCH);
        }
        names
    }
}

/// Refuses to start when the configured bus lacks what this process's roles use (a topic, a
/// queue of one of its projectors): `catalog bus setup` creates them.
pub async fn verify_bus(
    engines: &Engines,
    config: &ServeConfig,
    parts: Parts,
) -> anyhow::Result<()> {
    let Some(configured) = &engines.configured_bus else {
        return Ok(());
    };
    if !(parts.command || parts.projectors) {
        return Ok(());
    }
    configured
        .verify(&parts.subscribers(engines, config))
        .await
        .context("CATALOG_BUS")
}

/// What a role adds to the process.
#[derive(Default)]
pub struct Mounted {
    pub router: Router,
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
    pub background: Vec<JoinHandle<()>>,
    /// The projectors running in this process (their status is served locally when there is
    /// no PostgreSQL to report it to).
    pub projectors: Vec<Projector>,
    /// Event streams to end when the server shuts down (graceful shutdown waits for every
    /// open connection, and a stream would never end by itself).
    pub feeds: Vec<Arc<EventFeed>>,
    /// Directories that live as long as the process (a query role's own search index).
    pub temporary_dirs: Vec<tempfile::TempDir>,
}

impl Mounted {
    /// Adds everything `other` mounts.
    pub fn merge(&mut self, other: Mounted) {
        self.router = std::mem::take(&mut self.router).merge(other.router);
        self.checks.extend(other.checks);
        self.background.extend(other.background);
        self.projectors.extend(other.projectors);
        self.feeds.extend(other.feeds);
        self.temporary_dirs.extend(other.temporary_dirs);
    }

    /// Starts a projection the one way every view starts: catch up with the store (so the
    /// process is not ready before its views are), then follow `bus` in the background,
    /// parking what the view cannot apply in `engines`' database.
    pub async fn start_projector(
        &mut self,
        projection: Arc<dyn Projection>,
        engines: &Engines,
        store: Arc<dyn EventStore>,
        bus: Arc<dyn EventBus>,
    ) -> anyhow::Result<()> {
        let projector = Projector::new(projection, store).with_parking(engines.parking());
        catch_up(&projector).await?;
        self.background
            .push(tokio::spawn(projector.clone().run(bus)));
        self.projectors.push(projector);
        Ok(())
    }
}

async fn catch_up(projector: &Projector) -> anyhow::Result<()> {
    let started = Instant::now();
    let position = projector
        .catch_up()
        .await
        .with_context(|| format!("cannot catch up projector {}", projector.name()))?;
    tracing::info!(
        projector = projector.name(),
        position,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "projection caught up with the store"
    );
    Ok(())
}
