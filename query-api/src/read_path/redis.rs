//! The Redis layer: the views the Redis projector keeps, asked before PostgreSQL.
//!
//! A Redis view that lost its data (a restart without persistence) is not asked until the
//! projector rebuilt it; one behind the required position is waited for briefly, then
//! skipped. A filter too selective for its indexes is answered by PostgreSQL, not logged.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use projectors::read_model::{CatalogReadModel, ReadModelError};
use projectors::redis::RedisReadModel;
use redis_client::RedisConfig;

use super::breaker::{Breaker, BreakerConfig, BreakerError};
use super::invalidations::WatchedL1;
use super::l1::{record, Cached};

pub(super) struct RedisLayer {
    pub model: Arc<RedisReadModel>,
    pub config: Arc<RedisConfig>,
    breaker: Breaker,
}

impl RedisLayer {
    pub fn new(config: Arc<RedisConfig>, model: Arc<RedisReadModel>) -> Self {
        RedisLayer {
            model,
            config,
            breaker: Breaker::new("redis", BreakerConfig::default()),
        }
    }

    /// Runs `read` on the Redis view when it can answer at `required`; `None` sends the
    /// caller on to PostgreSQL.
    pub async fn read<T, F, Fut>(
        &self,
        required: u64,
        cache: &WatchedL1,
        position_wait: Duration,
        timeout: Duration,
        read: &F,
    ) -> Option<Cached<T>>
    where
        F: Fn(Arc<dyn CatalogReadModel>) -> Fut,
        Fut: Future<Output = Result<T, ReadModelError>>,
    {
        if !self.model.is_intact() {
            record("redis", "incomplete");
            return None;
        }
        if self.model.position() < required && !self.model.wait_for(required, position_wait).await {
            return None;
        }
        let start = cache.load_start();
        let position = self.model.position().max(start.floor());
        match self.breaker.call(timeout, read(self.model.clone())).await {
            Ok(value) => {
                record("redis", "hit");
                Some(Cached {
                    value,
                    position,
                    watched: cache.watched_since(&start),
                    loaded_at: std::time::Instant::now(),
                    generation: start.generation(),
                })
            }
            Err(error) => {
                record("redis", "error");
                if !matches!(error, BreakerError::Failed(ReadModelError::TooCostly)) {
                    tracing::debug!(%error, "Redis view unavailable; reading PostgreSQL");
                }
                None
            }
        }
    }
}
