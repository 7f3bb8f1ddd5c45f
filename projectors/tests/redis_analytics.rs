//! The analytics view in Redis against the local Redis and the test script's Redis Cluster,
//! each case under a key prefix of its own: the same suite as the memory view, one test per
//! case.

use std::sync::Arc;

use projectors::analytics::{AnalyticsProjection, RedisAnalytics};
use redis_client::{RedisConfig, RedisConnection};

async fn view(url: String) -> Arc<dyn AnalyticsProjection> {
    let config = Arc::new(RedisConfig::from_url(&url).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    Arc::new(RedisAnalytics::new(config, connection, "analytics"))
}

async fn on_redis() -> Arc<dyn AnalyticsProjection> {
    view(testkit::redis_url()).await
}

async fn on_a_redis_cluster() -> Arc<dyn AnalyticsProjection> {
    view(testkit::redis_cluster_url()).await
}

projectors::analytics_view_suite!(the_redis_analytics_view_passes, on_redis);
projectors::analytics_view_suite!(
    the_redis_analytics_view_passes_on_a_cluster,
    on_a_redis_cluster
);
