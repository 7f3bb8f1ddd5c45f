//! The PostgreSQL layer: the read model through the replica, and, when configured, the
//! primary while the replica is down.
//!
//! A database behind the required position is waited for (up to the configured wait), then
//! passed over for the next: an answer is never older than what the request needs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use projectors::read_model::{CatalogReadModel, ReadModelError};

use super::breaker::{Breaker, BreakerConfig};
use super::l1::{record, Cached};

pub(super) struct Database {
    pub model: Arc<dyn CatalogReadModel>,
    breaker: Breaker,
    name: &'static str,
}

impl Database {
    /// `name` is the breaker's and the metrics' (`read-replica`, `primary`).
    pub fn new(name: &'static str, model: Arc<dyn CatalogReadModel>) -> Self {
        Database {
            model,
            breaker: Breaker::new(name, BreakerConfig::default()),
            name,
        }
    }
}

/// Runs `read` on the first of `databases` (the replica, then the primary) that has reached
/// `required` and answers.
pub(super) async fn read_first<'a, T, F, Fut>(
    databases: impl Iterator<Item = &'a Database>,
    required: u64,
    position_wait: Duration,
    timeout: Duration,
    read: &F,
) -> Result<Cached<T>, ReadModelError>
where
    F: Fn(Arc<dyn CatalogReadModel>) -> Fut,
    Fut: Future<Output = Result<T, ReadModelError>>,
{
    let mut last_error = None;
    for database in databases {
        let model = database.model.clone();
        let reached = model.position() >= required || model.wait_for(required, position_wait).await;
        if !reached {
            last_error = Some(ReadModelError::Unavailable(format!(
                "the {} has not reached position {required}",
                database.name
            )));
            continue;
        }
        let position = model.position();
        match database.breaker.call(timeout, read(model)).await {
            Ok(value) => {
                record(database.name, "hit");
                return Ok(Cached {
                    value,
                    position,
                    watched: false,
                    loaded_at: std::time::Instant::now(),
                    generation: 0,
                });
            }
            Err(error) => {
                record(database.name, "error");
                tracing::warn!(database = database.name, %error, "read failed");
                last_error = Some(ReadModelError::Unavailable(error.to_string()));
            }
        }
    }
    Err(last_error
        .unwrap_or_else(|| ReadModelError::Unavailable("no read model can answer".to_owned())))
}
