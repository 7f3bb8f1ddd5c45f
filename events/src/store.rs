//! The event store port.

use async_trait::async_trait;
use uuid::Uuid;

use crate::envelope::{Envelope, NewEvent};

/// What can go wrong with the event store, by kind.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the aggregate is no longer at the expected version.
    #[error("aggregate {aggregate_id} is not at version {expected_version}")]
    Conflict {
        aggregate_id: Uuid,
        expected_version: u64,
    },
    /// A unique claim (such as a SKU) is already held by another aggregate.
    #[error("{scope} {value:?} is already taken")]
    UniqueViolation { scope: String, value: String },
    /// The append itself is malformed (a bug in the caller, not a race).
    #[error("invalid append: {0}")]
    Invalid(String),
    /// The store cannot be reached or is overloaded; retrying later may succeed.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// Anything else, such as a row that cannot be decoded.
    #[error("unexpected event store error: {0}")]
    Unexpected(String),
}

/// A value that at most one aggregate may hold, such as a product's SKU. Claims are written in
/// the same transaction as the events, so two concurrent creates cannot both take one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueClaim {
    pub scope: String,
    pub value: String,
}

/// The events of one aggregate to append, with the version the caller saw.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub aggregate_id: Uuid,
    /// The aggregate's version the caller decided on: 0 for a new aggregate.
    pub expected_version: u64,
    /// At least one event, with `aggregate_version` = `expected_version + 1, + 2, …`.
    pub events: Vec<NewEvent>,
    pub unique_claims: Vec<UniqueClaim>,
}

/// An append-only log of envelopes with a dense global position.
///
/// Contract, method by method, checked by the suite in `conformance::store` (feature `testsuite`):
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends every stream of `streams` in one transaction, all or nothing, and returns the
    /// stored envelopes in the order given.
    ///
    /// - Positions are dense (no gaps, first is 1) and commit-ordered: once a reader has seen
    ///   position `n`, every position below `n` is already readable.
    /// - [`StoreError::Conflict`] when an aggregate's current version is not its
    ///   `expected_version`; at most one of any number of concurrent appenders of the same
    ///   aggregate version wins.
    /// - [`StoreError::UniqueViolation`] when a claim is held by another aggregate (claims held
    ///   by the same aggregate are accepted again).
    /// - [`StoreError::Invalid`] for an empty stream or versions that do not follow on.
    async fn append(&self, streams: Vec<StreamAppend>) -> Result<Vec<Envelope>, StoreError>;

    /// Every event of one aggregate in version order; empty when it has none.
    async fn read_aggregate(&self, aggregate_id: Uuid) -> Result<Vec<Envelope>, StoreError>;

    /// Up to `limit` events with a position above `after`, in position order.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError>;

    /// The highest committed position, 0 for an empty store.
    async fn head(&self) -> Result<u64, StoreError>;

    /// Answers when the store can serve reads and writes (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Checks that a batch is well-formed before any adapter touches its engine.
pub fn validate_streams(streams: &[StreamAppend]) -> Result<(), StoreError> {
    if streams.is_empty() {
        return Err(StoreError::Invalid("no streams to append".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for stream in streams {
        if !seen.insert(stream.aggregate_id) {
            return Err(StoreError::Invalid(format!(
                "aggregate {} appears twice in one append",
                stream.aggregate_id
            )));
        }
        if stream.events.is_empty() {
            return Err(StoreError::Invalid(format!(
                "no events for aggregate {}",
                stream.aggregate_id
            )));
        }
        for (offset, event) in stream.events.iter().enumerate() {
            let wanted = stream.expected_version + offset as u64 + 1;
            if event.aggregate_id != stream.aggregate_id || event.aggregate_version != wanted {
                return Err(StoreError::Invalid(format!(
                    "event {offset} of aggregate {} should be version {wanted} of that aggregate",
                    stream.aggregate_id
                )));
            }
        }
    }
    Ok(())
}
