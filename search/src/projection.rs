//! Keeps a search index in step with the events: each product's document, whatever its status
//! (only published ones are found), idempotent per `aggregate_version`.

use std::sync::Arc;

use async_trait::async_trait;
use events::Envelope;
use projectors::read_model::{evolve, Evolved};
use projectors::{Applied, Projection, ProjectionError};

use crate::{SearchError, SearchWriter};

/// The search projection over any [`SearchWriter`].
pub struct SearchProjection {
    writer: Arc<dyn SearchWriter>,
    name: String,
}

impl SearchProjection {
    pub fn new(writer: Arc<dyn SearchWriter>, name: &str) -> Self {
        SearchProjection {
            writer,
            name: name.to_owned(),
        }
    }
}

fn failed(error: SearchError) -> ProjectionError {
    ProjectionError::Unavailable(error.to_string())
}

#[async_trait]
impl Projection for SearchProjection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        // Categories are not searched (products carry their slug).
        let Some(event) = projectors::decode_product_event(envelope)? else {
            self.writer.advance(checkpoint).await.map_err(failed)?;
            return Ok(Applied::Duplicate);
        };
        let current = self
            .writer
            .current(envelope.aggregate_id)
            .await
            .map_err(failed)?;
        match evolve(current.as_ref(), envelope, event) {
            Evolved::Changed(product) => {
                self.writer
                    .put(*product, checkpoint)
                    .await
                    .map_err(failed)?;
                Ok(Applied::Applied)
            }
            Evolved::Unchanged(Applied::Duplicate) => {
                self.writer.advance(checkpoint).await.map_err(failed)?;
                Ok(Applied::Duplicate)
            }
            Evolved::Unchanged(other) => Ok(other),
        }
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        self.writer.checkpoint().await.map_err(failed)
    }
}
