//! The projectors role of the distributed mode: the PostgreSQL read model always; with Redis
//! the Redis views and the shared analytics view (plus, with a bus, the counter of the shoppers'
//! analytics stream); with `CATALOG_SEARCH` the OpenSearch index. Each projection catches up
//! with the store before the process is ready, then follows the bus; heartbeats go to
//! PostgreSQL for `/api/admin/projections`.

use std::sync::Arc;

use anyhow::Context;
use event_store::postgres::PostgresDatabase;
use projectors::analytics::RedisAnalytics;
use projectors::read_model::postgres::PostgresReadModelProjection;
use projectors::redis::RedisProjection;
use projectors::Projection;
use search::opensearch::OpenSearchIndex;
use search::projection::SearchProjection;

use super::{analytics, Mounted, ANALYTICS, ANALYTICS_EVENTS, READ_MODEL, REDIS_VIEWS, SEARCH};
use crate::config::ServeConfig;
use crate::engines::Engines;
use crate::readiness::{BusReadiness, SearchReadiness};

pub async fn mount(
    config: &ServeConfig,
    engines: &Engines,
    database: &PostgresDatabase,
) -> anyhow::Result<Mounted> {
    let mut mounted = Mounted::default();
    let mut projections: Vec<Arc<dyn Projection>> = vec![Arc::new(
        PostgresReadModelProjection::new(database.pool().clone(), READ_MODEL),
    )];
    if let Some((redis_config, connection)) = &engines.redis {
        projections.push(Arc::new(RedisProjection::new(
            redis_config.clone(),
            connection.clone(),
            REDIS_VIEWS,
        )));
        // The shared analytics view: sales from the catalog stream, and with a bus the
        // shoppers' views and searches from their own stream.
        let view = Arc::new(RedisAnalytics::new(
            redis_config.clone(),
            connection.clone(),
            ANALYTICS,
        ));
        if let Some(configured) = &engines.configured_bus {
            let consumer = configured
                .analytics_consumer(ANALYTICS_EVENTS)
                .await
                .context("CATALOG_BUS")?;
            mounted
                .background
                .push(tokio::spawn(analytics::count_analytics_events(
                    consumer,
                    view.clone(),
                )));
        }
        projections.push(view);
    }
    if let Some(url) = &config.engines.search_url {
        let index = opensearch_index(url).await?;
        mounted
            .checks
            .push(Arc::new(SearchReadiness(index.clone())));
        projections.push(Arc::new(SearchProjection::with_generations(index, SEARCH)));
    }
    for projection in projections {
        mounted
            .start_projector(
                projection,
                engines,
                engines.store.clone(),
                engines.bus.clone(),
            )
            .await?;
    }
    mounted
        .background
        .push(tokio::spawn(projectors::status::report(
            database.pool().clone(),
            mounted.projectors.clone(),
        )));
    if engines.configured_bus.is_some() {
        mounted
            .checks
            .push(Arc::new(BusReadiness(engines.bus.clone())));
    }
    Ok(mounted)
}

/// The OpenSearch index behind its alias (created when missing), flushed in the background.
async fn opensearch_index(url: &str) -> anyhow::Result<Arc<OpenSearchIndex>> {
    let index = OpenSearchIndex::connect(url)?;
    index.setup().await.context("CATALOG_SEARCH")?;
    index.start_flushing();
    Ok(index)
}
