//! Projections: the views the query side reads, built from the event stream.
//!
//! - [`Projection`]: the trait every view implements (idempotent apply, checkpoint).
//! - [`runner`]: catch-up from the store, then live from the bus; status and metrics.
//! - [`read_model`]: the catalog read model port ([`read_model::CatalogReadModel`]) and its
//!   embedded in-memory adapter ([`read_model::MemoryReadModel`]).

pub mod read_model;
pub mod runner;

use async_trait::async_trait;
use events::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The envelope cannot be applied (malformed data): it is retried, and the projector
    /// reports itself as failing until someone acts.
    #[error("cannot apply event at position {position}: {message}")]
    Invalid { position: u64, message: String },
    #[error("projection store unavailable: {0}")]
    Unavailable(String),
}

/// A view built from envelopes.
///
/// Contract:
/// - `apply` is idempotent: an envelope whose `aggregate_version` is not above the version
///   the view already holds for that aggregate changes nothing (duplicates and replays of
///   at-least-once delivery are harmless).
/// - Envelopes of one aggregate arrive in `aggregate_version` order.
/// - `checkpoint` is the position up to which every envelope has been applied; a restarted
///   projector resumes after it.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// A stable name (the subscriber / consumer group name).
    fn name(&self) -> &str;
    async fn apply(&self, envelope: &Envelope) -> Result<(), ProjectionError>;
    async fn checkpoint(&self) -> Result<u64, ProjectionError>;
}
