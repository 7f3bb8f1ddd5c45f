//! Projections: the views the query side reads, built from the event stream.
//!
//! - [`Projection`]: the trait every view implements (idempotent apply, checkpoint).
//! - [`runner`]: catch-up from the store, then live from the bus; status and metrics.
//! - [`read_model`]: the catalog read model port ([`read_model::CatalogReadModel`]), its
//!   embedded in-memory adapter ([`read_model::MemoryReadModel`]) and the PostgreSQL one
//!   (`read_model/postgres/{projection,reader}.rs`); its conformance suite behind the
//!   `testsuite` feature (`read_model_conformance_suite!`).
//! - [`redis`]: the Redis views (`redis/{layout,projection,reader}.rs`) that the query side's
//!   layered read path asks before PostgreSQL.
//! - [`analytics`]: shopper analytics views; [`status`]: projector heartbeats.
//! - [`generations`]: blue/green rebuilds of a view beside the live one; [`parking`]: poison
//!   events parked.

pub mod analytics;
pub mod generations;
pub mod parking;
pub mod read_model;
pub mod redis;
pub mod runner;
pub mod status;

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

impl ProjectionError {
    /// Another projector worker changed the same aggregate in between (possible for a moment
    /// during a consumer-group rebalance): the write was refused, and a retry finds the
    /// aggregate applied. `what` says what the other worker did ("updated the product").
    pub fn concurrent_write(what: &str) -> ProjectionError {
        ProjectionError::Unavailable(format!("a concurrent projector {what}; retrying"))
    }

    /// [`Applied::Applied`] when a guarded write changed something (`written` rows or script
    /// results above 0), else [`ProjectionError::concurrent_write`].
    pub fn unless_concurrent(written: u64, what: &str) -> Result<Applied, ProjectionError> {
        if written == 0 {
            return Err(ProjectionError::concurrent_write(what));
        }
        Ok(Applied::Applied)
    }
}

/// What [`Projection::apply`] did with an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The view changed to reflect it.
    Applied,
    /// The view already held this version (or a later one) of the aggregate: nothing changed.
    Duplicate,
    /// The view holds `applied_version` of the aggregate, and the envelope is further ahead
    /// than the next version: nothing changed; the runner applies the missing versions from
    /// the event store first.
    Gap { applied_version: u64 },
}

/// Decodes the event of `envelope` for a projection: `None` for a type this version does not
/// know (a newer writer's: logged; not ours to interpret, and the projection's checkpoint
/// still moves on), [`ProjectionError::Invalid`] for a body that is not what its type says.
pub fn decode_event(envelope: &Envelope) -> Result<Option<events::CatalogEvent>, ProjectionError> {
    match envelope.decode() {
        Ok(event) => Ok(Some(event)),
        Err(events::catalog_events::DecodeError::UnknownType {
            event_type,
            schema_version,
        }) => {
            tracing::warn!(%event_type, schema_version, "skipping an event type this version does not know");
            Ok(None)
        }
        Err(error) => Err(ProjectionError::Invalid {
            position: envelope.position,
            message: error.to_string(),
        }),
    }
}

/// Decodes the event of `envelope` for a projection that follows products only: `None` for a
/// category's event or the search settings' (`SynonymsChanged`) as for an unknown type (see
/// [`decode_event`]), so the caller only moves its checkpoint.
pub fn decode_product_event(
    envelope: &Envelope,
) -> Result<Option<events::CatalogEvent>, ProjectionError> {
    Ok(decode_event(envelope)?.filter(is_product_event))
}

/// Whether `event` is about a product (not a category, not the search settings).
pub fn is_product_event(event: &events::CatalogEvent) -> bool {
    !matches!(
        event,
        events::CatalogEvent::CategoryCreated(_) | events::CatalogEvent::SynonymsChanged(_)
    )
}

/// A view built from envelopes.
///
/// Contract:
/// - `apply` is idempotent: an envelope whose `aggregate_version` is not above the version
///   the view already holds for that aggregate changes nothing ([`Applied::Duplicate`]), so
///   duplicates and replays of at-least-once delivery are harmless. An envelope more than one
///   version ahead changes nothing either ([`Applied::Gap`]): a view applies each aggregate's
///   versions in order, one by one.
/// - `apply` records `checkpoint` (never lowering it) atomically with the change it makes, or
///   alone when it changes nothing. The runner passes the contiguous low watermark: every
///   position up to it has been applied, whatever order a partitioned bus delivered them in.
/// - `checkpoint` reads it back: a restarted projector catches up from the store after it, and
///   `X-Min-Position` compares against it.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// A stable name (the subscriber / consumer group name).
    fn name(&self) -> &str;
    async fn apply(&self, envelope: &Envelope, checkpoint: u64)
        -> Result<Applied, ProjectionError>;
    async fn checkpoint(&self) -> Result<u64, ProjectionError>;

    /// Whether the view still holds what it applied. A view in an engine that can lose its
    /// data (a Redis without persistence that restarted) answers `false` once that happened;
    /// the runner then rebuilds it from the store and calls [`Projection::mark_intact`].
    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        Ok(true)
    }

    /// Records `checkpoint` (never lowering it) without a change: the runner passed over an
    /// event it parked ([`parking`]), so readers waiting for that position (`X-Min-Position`)
    /// are answered. The default records nothing: the next applied event moves the checkpoint.
    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        let _ = checkpoint;
        Ok(())
    }

    /// Applies `envelopes` (in position order, from a rebuild reading the store: no gaps, no
    /// duplicates within the batch) and records `checkpoint`. A view that can write a batch in
    /// fewer round trips than one per event overrides it; the default applies them one by one.
    async fn apply_batch(
        &self,
        envelopes: &[Envelope],
        checkpoint: u64,
    ) -> Result<(), ProjectionError> {
        for envelope in envelopes {
            self.apply(envelope, envelope.position.min(checkpoint))
                .await?;
        }
        self.advance(checkpoint).await
    }

    /// The view's blue/green generations, when it can be rebuilt beside itself.
    fn generations(&self) -> Option<&dyn generations::Generations> {
        None
    }

    /// Records that the view is complete up to its checkpoint (after a catch-up). After
    /// [`Projection::begin_fill`], a view that lost its data again meanwhile refuses (and
    /// stays not intact, so the runner fills it again).
    async fn mark_intact(&self) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Called before the runner fills a view that is not intact from the start of the store:
    /// a view that can lose its data records that the fill began, so that a loss during the
    /// fill is not taken for a complete view by [`Projection::mark_intact`].
    async fn begin_fill(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}
