//! The Redis views against the local Redis, each case under a key prefix of its own: the same
//! behaviour suite as the other read models.

use std::sync::Arc;

use cache::redis::{RedisConfig, RedisConnection};
use projectors::redis::{RedisProjection, RedisReadModel};

#[tokio::test]
async fn the_redis_read_model_passes_the_conformance_suite() {
    projectors::read_model::conformance::run(|| async {
        let config = Arc::new(RedisConfig::from_url(&testkit::redis_url()).expect("url"));
        let connection = RedisConnection::connect(&config).await.expect("connect");
        let projection = Arc::new(RedisProjection::new(
            config.clone(),
            connection.clone(),
            "redis",
        ));
        let model = Arc::new(RedisReadModel::new(config, connection));
        (projection as _, model as _)
    })
    .await;
}
