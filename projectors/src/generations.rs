//! Blue/green generations: a view rebuilt from the event store beside the one readers see,
//! then switched to atomically.
//!
//! A view that can be rebuilt implements [`Generations`] (and returns it from
//! [`crate::Projection::generations`]). The runner ([`crate::runner::Projector::rebuild`])
//! drives a rebuild:
//! 1. [`Generations::prepare`] creates generation N+1, empty, beside N, and returns the
//!    projection that writes it;
//! 2. the whole log is read from the store in batches and applied with
//!    [`crate::Projection::apply_batch`] (not event by event through the bus), while N keeps
//!    serving readers and following the bus;
//! 3. [`Generations::sealed`] finishes what is cheaper to build once (secondary indexes);
//! 4. with the live projector held between two deliveries, the tail up to the store's head is
//!    applied and [`Generations::switch`] makes N+1 the one readers see and the live
//!    projection writes. Its checkpoint is then the head, at or past N's, so a reader waiting
//!    with `X-Min-Position` never sees the new generation behind the old one;
//! 5. after [`GRACE`], [`Generations::drop_previous`] drops N (readers that began on it have
//!    finished).
//!
//! A view also declares a [`Generations::version`]: when a deploy raises it above the version
//! the live generation was built with, the projector rebuilds the view at start, next to the
//! old one (Marten's projection versions).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Projection, ProjectionError};

/// How long the previous generation stays after a switch.
pub const GRACE: Duration = Duration::from_secs(10);

/// What a view's generations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// The generation readers see: 1 before any rebuild.
    pub generation: u64,
    /// The view version it was built with (1 for a generation built before versions were
    /// recorded).
    pub version: u64,
}

/// A view that can build a new generation beside the live one; see the module documentation.
#[async_trait]
pub trait Generations: Send + Sync {
    /// The version of the view this code builds: raised when a change of the projection
    /// needs the view rebuilt (a new field, a new index, a fixed projection bug).
    fn version(&self) -> u64;

    /// The live generation and the version it was built with.
    async fn live(&self) -> Result<Live, ProjectionError>;

    /// Creates the next generation, empty, beside the live one (clearing what an interrupted
    /// rebuild left), and returns the projection that writes it.
    async fn prepare(&self) -> Result<Arc<dyn Projection>, ProjectionError>;

    /// The prepared generation holds the bulk of the history: build what is cheaper to build
    /// once than to keep up event by event.
    async fn sealed(&self) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Makes the prepared generation the one readers see and the live projection writes, in
    /// one step readers cannot observe half-done, recording [`Generations::version`] as its
    /// version. Returns the new generation.
    async fn switch(&self) -> Result<u64, ProjectionError>;

    /// Drops the generation before the live one (after [`GRACE`]).
    async fn drop_previous(&self) -> Result<(), ProjectionError>;
}
