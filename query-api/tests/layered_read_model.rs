//! The layered read path ([`LayeredReadModel`]) against the read-model conformance suite:
//! over the PostgreSQL read model read through the streaming replica (127.0.0.1:5433, see
//! `testkit::replica_url`), without Redis and with the Redis views and their invalidations.
//! Each case has a database (and a Redis key prefix) of its own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::Envelope;
use projectors::read_model::conformance::Pair;
use projectors::read_model::postgres::{migrate, PostgresReadModel, PostgresReadModelProjection};
use projectors::read_model::CatalogReadModel;
use projectors::redis::{RedisProjection, RedisReadModel};
use projectors::{Applied, Projection, ProjectionError};
use query_api::read_path::{LayerConfig, LayeredReadModel};
use redis_client::{RedisConfig, RedisConnection};
use sqlx::postgres::PgPoolOptions;
use testkit::TestDatabase;

/// The PostgreSQL read model on a fresh database: its projection (on the primary) and its
/// reader through the replica.
async fn postgres_through_the_replica(
    database: &TestDatabase,
) -> (Arc<PostgresReadModelProjection>, Arc<dyn CatalogReadModel>) {
    let primary = database.pool(4).await;
    migrate(&primary).await.expect("migrate");
    let replica = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&testkit::replica_url(database).await)
        .await
        .expect("connect to the replica");
    let projection = Arc::new(PostgresReadModelProjection::new(primary, "read-model"));
    let reader = Arc::new(PostgresReadModel::new(replica, "read-model"));
    (projection, reader)
}

/// The layered read path over the replica alone.
async fn layered_over_the_replica() -> (Pair, TestDatabase) {
    let database = TestDatabase::create().await;
    let (projection, replica) = postgres_through_the_replica(&database).await;
    let model = LayeredReadModel::new(LayerConfig::default(), replica, None, None);
    ((projection as _, model as _), database)
}

/// The layered read path over the Redis views and the replica, both written for every event.
async fn layered_over_redis_and_the_replica() -> (Pair, TestDatabase) {
    let database = TestDatabase::create().await;
    let (postgres, replica) = postgres_through_the_replica(&database).await;
    let config = Arc::new(RedisConfig::from_url(&testkit::redis_url()).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    let redis = Arc::new(RedisProjection::new(
        config.clone(),
        connection.clone(),
        "redis",
    ));
    // A fresh view is complete (the runner marks it so after its catch-up).
    redis.mark_intact().await.expect("mark");
    let reader = Arc::new(RedisReadModel::new(config.clone(), connection));
    let model = LayeredReadModel::new(
        LayerConfig::default(),
        replica,
        None,
        Some((config, reader)),
    );
    let projection = Arc::new(BothViews { postgres, redis });
    ((projection as _, model as _), database)
}

/// Applies every event to the PostgreSQL and the Redis views, as their two projectors would.
struct BothViews {
    postgres: Arc<PostgresReadModelProjection>,
    redis: Arc<RedisProjection>,
}

#[async_trait]
impl Projection for BothViews {
    fn name(&self) -> &str {
        "read-model"
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let in_postgres = self.postgres.apply(envelope, checkpoint).await?;
        let in_redis = self.redis.apply(envelope, checkpoint).await?;
        assert_eq!(
            in_postgres, in_redis,
            "the PostgreSQL and Redis views disagree on {envelope:?}"
        );
        Ok(in_postgres)
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        self.postgres.checkpoint().await
    }
}

mod over_the_replica {
    projectors::read_model_conformance_suite!(keeping super::layered_over_the_replica());
}

mod over_redis_and_the_replica {
    projectors::read_model_conformance_suite!(keeping super::layered_over_redis_and_the_replica());
}
