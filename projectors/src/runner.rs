//! Drives a projection: catch up from the event store, then follow the bus.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::bus::EventBus;
use events::store::EventStore;
use futures::StreamExt;
use parking_lot::RwLock;
use serde::Serialize;

use crate::{Projection, ProjectionError};

const CATCH_UP_BATCH: usize = 2000;
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// What `GET /api/admin/projections` reports of one projector.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectorStatus {
    pub name: String,
    /// `starting`, `catching-up`, `live` or `failing`.
    pub state: String,
    pub position: u64,
    /// When the last applied event occurred.
    pub last_event_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A running (or about to run) projector: its projection and its status.
#[derive(Clone)]
pub struct Projector {
    projection: Arc<dyn Projection>,
    status: Arc<RwLock<ProjectorStatus>>,
}

impl Projector {
    pub fn new(projection: Arc<dyn Projection>) -> Self {
        let status = ProjectorStatus {
            name: projection.name().to_owned(),
            state: "starting".to_owned(),
            position: 0,
            last_event_at: None,
            last_error: None,
        };
        Projector {
            projection,
            status: Arc::new(RwLock::new(status)),
        }
    }

    pub fn status(&self) -> ProjectorStatus {
        self.status.read().clone()
    }

    fn set_state(&self, state: &str) {
        self.status.write().state = state.to_owned();
    }

    /// Applies one envelope, retrying until it is applied: an event is never skipped.
    async fn apply(&self, envelope: &events::Envelope) {
        let name = self.projection.name().to_owned();
        loop {
            match self.projection.apply(envelope).await {
                Ok(()) => {
                    let mut status = self.status.write();
                    status.position = status.position.max(envelope.position);
                    status.last_event_at = Some(envelope.occurred_at);
                    status.last_error = None;
                    metrics::counter!("catalog_projection_applied_total", "projector" => name.clone()).increment(1);
                    metrics::gauge!("catalog_projection_position", "projector" => name)
                        .set(status.position as f64);
                    return;
                }
                Err(error) => {
                    metrics::counter!("catalog_projection_errors_total", "projector" => name.clone()).increment(1);
                    if matches!(error, ProjectionError::Invalid { .. }) {
                        tracing::error!(projector = %name, %error, "projection is stuck on an event");
                    } else {
                        tracing::warn!(projector = %name, %error, "projection failed; retrying");
                    }
                    {
                        let mut status = self.status.write();
                        status.state = "failing".to_owned();
                        status.last_error = Some(error.to_string());
                    }
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Reads the store from the projection's checkpoint to its head and applies everything:
    /// the rebuild at start. Returns the position reached.
    pub async fn catch_up(&self, store: &dyn EventStore) -> Result<u64, events::store::StoreError> {
        self.set_state("catching-up");
        let mut position = self.projection.checkpoint().await.unwrap_or(0);
        self.status.write().position = position;
        loop {
            let batch = store.read_all(position, CATCH_UP_BATCH).await?;
            let Some(last) = batch.last() else {
                return Ok(position);
            };
            position = last.position;
            for envelope in &batch {
                self.apply(envelope).await;
            }
        }
    }

    /// Follows the bus from the projection's checkpoint until the task is dropped.
    pub async fn run(self, bus: Arc<dyn EventBus>) {
        let name = self.projection.name().to_owned();
        loop {
            let after = match self.projection.checkpoint().await {
                Ok(position) => position,
                Err(error) => {
                    tracing::warn!(projector = %name, %error, "cannot read checkpoint");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            let mut stream = match bus.subscribe(&name, after).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(projector = %name, %error, "cannot subscribe; retrying");
                    self.set_state("failing");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            self.set_state("live");
            while let Some(item) = stream.next().await {
                match item {
                    Ok(envelope) => {
                        self.apply(&envelope).await;
                        if self.status.read().state != "live" {
                            self.set_state("live");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(projector = %name, %error, "bus error");
                        self.status.write().last_error = Some(error.to_string());
                    }
                }
            }
            tracing::warn!(projector = %name, "subscription ended; resubscribing");
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
}
