//! The analytics view in Redis against the local Redis and the test script's Redis Cluster,
//! each case under a key prefix of its own: the same suite as the memory view.

use std::sync::Arc;

use projectors::analytics::{conformance, AnalyticsProjection, RedisAnalytics};
use redis_client::{RedisConfig, RedisConnection};

async fn view(url: String) -> Arc<dyn AnalyticsProjection> {
    let config = Arc::new(RedisConfig::from_url(&url).expect("url"));
    let connection = RedisConnection::connect(&config).await.expect("connect");
    Arc::new(RedisAnalytics::new(config, connection, "analytics"))
}

#[tokio::test]
async fn the_redis_analytics_view_passes_the_analytics_suite() {
    conformance::run(|| view(testkit::redis_url())).await;
}

#[tokio::test]
async fn the_redis_analytics_view_passes_the_suite_on_a_redis_cluster() {
    conformance::run(|| view(testkit::redis_cluster_url())).await;
}
