//! The readiness checks (`/readyz`) of the engines a process depends on: each answers whether
//! its engine takes a request now.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use events::bus::EventBus;
use events::store::EventStore;
use search::opensearch::OpenSearchIndex;
use sqlx::postgres::PgPool;
use web::ops::ReadinessCheck;

use crate::engines::Engines;

/// What a check returns: the error's text when the engine does not answer.
type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// The checks every role starts with: the event store, and Redis when configured.
pub fn engine_checks(engines: &Engines) -> Vec<Arc<dyn ReadinessCheck>> {
    let mut checks: Vec<Arc<dyn ReadinessCheck>> =
        vec![Arc::new(StoreReadiness(engines.store.clone()))];
    if let Some((_, connection)) = &engines.redis {
        checks.push(Arc::new(RedisReadiness(connection.clone())));
    }
    checks
}

/// The event store answers a ping.
pub struct StoreReadiness(pub Arc<dyn EventStore>);

impl ReadinessCheck for StoreReadiness {
    fn name(&self) -> &str {
        "event-store"
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move { self.0.ping().await.map_err(|error| error.to_string()) })
    }
}

/// A PostgreSQL pool (the read replica) answers `SELECT 1`.
pub struct PoolReadiness(pub &'static str, pub PgPool);

impl ReadinessCheck for PoolReadiness {
    fn name(&self) -> &str {
        self.0
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.1)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

/// Redis answers `PING`.
pub struct RedisReadiness(pub redis_client::RedisConnection);

impl ReadinessCheck for RedisReadiness {
    fn name(&self) -> &str {
        "redis"
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let mut connection = self.0.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
    }
}

/// The bus answers a ping (broker metadata, the topic exists).
pub struct BusReadiness(pub Arc<dyn EventBus>);

impl ReadinessCheck for BusReadiness {
    fn name(&self) -> &str {
        "bus"
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move { self.0.ping().await.map_err(|error| error.to_string()) })
    }
}

/// OpenSearch takes searches: its cluster health is not red and the alias exists (the query
/// and projectors roles with `CATALOG_SEARCH`).
pub struct SearchReadiness(pub Arc<OpenSearchIndex>);

impl ReadinessCheck for SearchReadiness {
    fn name(&self) -> &str {
        "opensearch"
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move { self.0.ready().await.map_err(|error| error.to_string()) })
    }
}
