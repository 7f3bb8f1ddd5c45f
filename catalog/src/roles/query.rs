//! The query role: the views a query process reads, and the read API over them.
//!
//! - Embedded: the process projects its own views from the store (an in-memory read model, a
//!   tantivy index under the data dir, an in-memory analytics view).
//! - Distributed: the read model through the layered read path (in-process cache, Redis views,
//!   the read replica, the primary as fallback when allowed); the search index of OpenSearch, or
//!   without it a tantivy index of its own in a temporary directory; the shared analytics view
//!   in Redis, or without Redis one of its own. Views it keeps itself follow the event store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use auth::TokenVerifier;
use event_store::postgres::PostgresDatabase;
use events::bus::{EventBus, InProcessBus};
use events::store::EventStore;
use projectors::analytics::{AnalyticsView, MemoryAnalytics, RedisAnalytics};
use projectors::read_model::postgres::PostgresReadModel;
use projectors::read_model::{CatalogReadModel, MemoryReadModel};
use query_api::analytics::Capture;
use query_api::edge::EdgePurger;
use query_api::events_api::{EventFeed, FeedConfig};
use query_api::QueryState;
use search::opensearch::OpenSearchIndex;
use search::projection::SearchProjection;
use search::tantivy::TantivyGenerations;
use search::SearchIndex;

use super::{analytics, Mounted, ANALYTICS, READ_MODEL, SEARCH};
use crate::config::ServeConfig;
use crate::engines::Engines;
use crate::readiness::{PoolReadiness, SearchReadiness};

/// What the read API of a process reads.
pub struct Views {
    pub read_model: Arc<dyn CatalogReadModel>,
    pub search: Arc<dyn SearchIndex>,
    pub analytics: Arc<dyn AnalyticsView>,
    /// Whether `analytics` is the Redis view the projectors role keeps.
    pub shared_analytics: bool,
    /// The event store analysts read (`/api/events*`): the replica when there is one.
    pub feed_store: Arc<dyn EventStore>,
}

/// The embedded mode's views, projected by this process from its own store.
pub async fn embedded_views(
    config: &ServeConfig,
    engines: &Engines,
    mounted: &mut Mounted,
) -> anyhow::Result<Views> {
    let (store, bus) = (engines.store.clone(), engines.bus.clone());
    let read_model = Arc::new(MemoryReadModel::new());
    if let Some(edge) = edge_purger(config)? {
        // The edge may hold pages of a previous run.
        edge.purge_everything();
        read_model.on_change(Box::new(move |changed| edge.purge_changed(changed)));
    }
    mounted
        .start_projector(read_model.clone(), engines, store.clone(), bus.clone())
        .await?;
    let index = TantivyGenerations::open(&config.data_dir.join("search-index"))?;
    let projection = Arc::new(SearchProjection::with_generations(index.clone(), SEARCH));
    mounted
        .start_projector(projection, engines, store.clone(), bus.clone())
        .await?;
    let analytics = Arc::new(MemoryAnalytics::new());
    mounted
        .start_projector(analytics.clone(), engines, store.clone(), bus)
        .await?;
    Ok(Views {
        read_model,
        search: index,
        analytics,
        shared_analytics: false,
        feed_store: store,
    })
}

/// A distributed query process's views.
pub async fn distributed_views(
    config: &ServeConfig,
    engines: &Engines,
    database: &PostgresDatabase,
    mounted: &mut Mounted,
) -> anyhow::Result<Views> {
    let (replica_pool, feed_store) = match &config.engines.database_read_url {
        Some(url) => {
            let replica = PostgresDatabase::connect(url, config.engines.database_pool_size)
                .await
                .context("DATABASE_READ_URL")?;
            crate::engines::check_connection_budget(
                "DATABASE_READ_URL",
                &replica,
                config.engines.database_pool_size,
            )
            .await;
            let store: Arc<dyn EventStore> = Arc::new(replica.event_store(false));
            let sampler = sample_replica_lag(replica.pool().clone());
            mounted.background.push(tokio::spawn(sampler));
            (replica.pool().clone(), store)
        }
        None => (database.pool().clone(), engines.store.clone()),
    };
    mounted.checks.push(Arc::new(PoolReadiness(
        "read-replica",
        replica_pool.clone(),
    )));
    // The views this process keeps itself follow the event store.
    let store_bus: Arc<dyn EventBus> = Arc::new(InProcessBus::with_poll_interval(
        engines.store.clone(),
        Duration::from_millis(100),
    ));
    let search = search_index(config, engines, &store_bus, mounted).await?;
    let (analytics, shared_analytics) = match &engines.redis {
        // The view the projectors role keeps in Redis, shared by every replica.
        Some((redis_config, connection)) => {
            let view: Arc<dyn AnalyticsView> = Arc::new(RedisAnalytics::new(
                redis_config.clone(),
                connection.clone(),
                ANALYTICS,
            ));
            (view, true)
        }
        // No Redis: this process's shoppers, with sales from the store.
        None => {
            let view = Arc::new(MemoryAnalytics::new());
            mounted
                .start_projector(view.clone(), engines, engines.store.clone(), store_bus)
                .await?;
            let view: Arc<dyn AnalyticsView> = view;
            (view, false)
        }
    };
    Ok(Views {
        read_model: layered_read_model(config, engines, database, replica_pool)?,
        search,
        analytics,
        shared_analytics,
        feed_store,
    })
}

/// Every 5 s, `catalog_replica_lag_seconds`: how far the replica's replay is behind, 0 when it
/// has replayed everything the primary sent (`pg_last_xact_replay_timestamp` alone would grow
/// on an idle primary). Not set while the replica does not answer (`/readyz` says so).
async fn sample_replica_lag(pool: sqlx::PgPool) {
    const QUERY: &str = "SELECT CASE WHEN NOT pg_is_in_recovery() \
        OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
        ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) \
        END::float8";
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        match sqlx::query_scalar::<_, f64>(QUERY).fetch_one(&pool).await {
            Ok(lag) => metrics::gauge!("catalog_replica_lag_seconds").set(lag.max(0.0)),
            Err(error) => tracing::debug!(%error, "cannot measure the replica's lag"),
        }
    }
}

/// The read model through the layered read path: in-process cache, Redis views, the replica,
/// and the primary while the replica is down when `CATALOG_READ_FALLBACK=primary`.
fn layered_read_model(
    config: &ServeConfig,
    engines: &Engines,
    database: &PostgresDatabase,
    replica_pool: sqlx::PgPool,
) -> anyhow::Result<Arc<dyn CatalogReadModel>> {
    let replica: Arc<dyn CatalogReadModel> =
        Arc::new(PostgresReadModel::new(replica_pool, READ_MODEL));
    let primary: Option<Arc<dyn CatalogReadModel>> =
        config.engines.read_fallback_to_primary.then(|| {
            let primary: Arc<dyn CatalogReadModel> =
                Arc::new(PostgresReadModel::new(database.pool().clone(), READ_MODEL));
            primary
        });
    let redis = engines.redis.as_ref().map(|(redis_config, connection)| {
        (
            redis_config.clone(),
            Arc::new(projectors::redis::RedisReadModel::new(
                redis_config.clone(),
                connection.clone(),
            )),
        )
    });
    let edge = edge_purger(config)?;
    if edge.is_some() && redis.is_none() {
        anyhow::bail!(
            "--edge-purge-url needs REDIS_URL in a query process: the purges follow the Redis \
             projector's invalidations"
        );
    }
    Ok(query_api::read_path::LayeredReadModel::new(
        query_api::read_path::LayerConfig {
            edge,
            ..Default::default()
        },
        replica,
        primary,
        redis,
    ))
}

/// The edge purger of `--edge-purge-url`, when given; each URL checked.
fn edge_purger(config: &ServeConfig) -> anyhow::Result<Option<Arc<EdgePurger>>> {
    if config.edge_purge_urls.is_empty() {
        return Ok(None);
    }
    for url in &config.edge_purge_urls {
        let parsed = reqwest::Url::parse(url)
            .with_context(|| format!("--edge-purge-url {url:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
            "--edge-purge-url {url:?} must be an http:// or https:// base URL of an edge cache"
        );
    }
    Ok(Some(EdgePurger::start(config.edge_purge_urls.clone())))
}

/// OpenSearch when configured; otherwise a tantivy index of this process's own, built from the
/// event store at start and following it.
async fn search_index(
    config: &ServeConfig,
    engines: &Engines,
    store_bus: &Arc<dyn EventBus>,
    mounted: &mut Mounted,
) -> anyhow::Result<Arc<dyn SearchIndex>> {
    if let Some(url) = &config.engines.search_url {
        let index = OpenSearchIndex::connect(url)?;
        index.start_following();
        mounted
            .checks
            .push(Arc::new(SearchReadiness(index.clone())));
        return Ok(index);
    }
    let directory = tempfile::Builder::new()
        .prefix("catalog-search-")
        .tempdir()
        .context("cannot create a directory for the search index")?;
    let index = TantivyGenerations::open(&directory.path().join("search-index"))?;
    mounted.temporary_dirs.push(directory);
    let projection = Arc::new(SearchProjection::with_generations(index.clone(), SEARCH));
    mounted
        .start_projector(
            projection,
            engines,
            engines.store.clone(),
            store_bus.clone(),
        )
        .await?;
    Ok(index)
}

/// The read API over `views`: product pages, listings, search, the analysts' event feed and
/// analytics. `verifier` lets admins read drafts; without one, keys are looked up (a query
/// role on its own reads them from `CATALOG_JWKS_URL` or the key file).
pub async fn mount(
    config: &ServeConfig,
    engines: &Engines,
    views: Views,
    verifier: Option<Arc<TokenVerifier>>,
) -> Mounted {
    let verifier = match verifier {
        Some(verifier) => Some(verifier),
        None => crate::keys::query_verifier(config).await,
    };
    let mut mounted = Mounted::default();
    let feed = EventFeed::new(
        views.feed_store,
        FeedConfig {
            ring: config.analysts.sse_ring,
            keep_alive: config.analysts.sse_keep_alive,
            streams_per_user: config.analysts.sse_streams_per_user,
            ..FeedConfig::default()
        },
    );
    mounted.background.push(tokio::spawn(feed.clone().follow()));
    mounted.feeds.push(feed.clone());
    let capture = config.analysts.capture.then(|| {
        let sink = analytics::sink(
            views.analytics.clone(),
            views.shared_analytics,
            engines.configured_bus.as_ref(),
        );
        Capture::start(sink, config.analysts.capture_queue)
    });
    let state = QueryState::new(views.read_model)
        .with_verifier(verifier)
        .with_search(views.search)
        .with_events(feed)
        .with_analytics(views.analytics, capture);
    mounted.router = query_api::router(state);
    mounted
}
