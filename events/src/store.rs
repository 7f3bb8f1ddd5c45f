//! The event store port.

use async_trait::async_trait;
use uuid::Uuid;

use crate::envelope::{Envelope, NewEvent};

/// What can go wrong with the event store, by kind.
#[derive(Debug, Clone, thiserror::Error)]
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

/// The scope of the claims idempotent requests take: a value in it is taken by one append
/// only, even of the same aggregate, so a request retried after its answer was lost (its
/// first attempt committed) cannot append again.
pub const REQUEST_CLAIM_SCOPE: &str = "request";

/// Who holds a claim: the aggregate, and the position of the last event of the append that
/// took it (`None` for a claim stored before positions were recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub aggregate_id: Uuid,
    pub position: Option<u64>,
}

/// An aggregate's state at one version, stored beside its events so that loading the
/// aggregate reads this plus the events after it instead of its whole history.
///
/// `state` is the aggregate's own encoding, tagged with `state_version`: a code change that
/// alters the state bumps that number, and snapshots of another number are ignored (and
/// replaced by the next one written).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub aggregate_id: Uuid,
    /// The version of the last event the state includes.
    pub aggregate_version: u64,
    /// The format of `state`.
    pub state_version: u32,
    pub state: serde_json::Value,
}

/// What loading an aggregate reads: its latest snapshot of the asked format, if any, and the
/// events after it (all of them without a snapshot), in version order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateRead {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<Envelope>,
}

/// The events of one aggregate to append, with the version the caller saw.
#[derive(Debug, Clone, Default)]
pub struct StreamAppend {
    pub aggregate_id: Uuid,
    /// The aggregate's version the caller decided on: 0 for a new aggregate.
    pub expected_version: u64,
    /// At least one event, with `aggregate_version` = `expected_version + 1, + 2, …`.
    pub events: Vec<NewEvent>,
    pub unique_claims: Vec<UniqueClaim>,
    /// The aggregate's state after these events, saved in the same transaction when given
    /// (its `aggregate_version` must be the last event's).
    pub snapshot: Option<Snapshot>,
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
    ///   by the same aggregate are accepted again, except in [`REQUEST_CLAIM_SCOPE`]).
    /// - [`StoreError::Invalid`] for an empty stream or versions that do not follow on.
    async fn append(&self, streams: Vec<StreamAppend>) -> Result<Vec<Envelope>, StoreError>;

    /// Every event of one aggregate in version order; empty when it has none.
    async fn read_aggregate(&self, aggregate_id: Uuid) -> Result<Vec<Envelope>, StoreError>;

    /// The events of one aggregate with a version above `after`, in version order: what a
    /// caller holding the state at version `after` needs to catch up (empty when it is
    /// current).
    async fn read_aggregate_after(
        &self,
        aggregate_id: Uuid,
        after: u64,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// The latest snapshot of `aggregate_id` in format `state_version`, if one was saved.
    async fn read_snapshot(
        &self,
        aggregate_id: Uuid,
        state_version: u32,
    ) -> Result<Option<Snapshot>, StoreError>;

    /// Saves a snapshot outside an append (when a load replayed many events). A snapshot never
    /// replaces a newer one of the same aggregate and format; [`StoreError::Invalid`] when
    /// the aggregate has no event at the snapshot's version.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;

    /// The latest snapshot in format `state_version` and the events after it.
    async fn read_aggregate_state(
        &self,
        aggregate_id: Uuid,
        state_version: u32,
    ) -> Result<AggregateRead, StoreError> {
        let snapshot = self.read_snapshot(aggregate_id, state_version).await?;
        let after = snapshot.as_ref().map_or(0, |s| s.aggregate_version);
        let events = self.read_aggregate_after(aggregate_id, after).await?;
        Ok(AggregateRead { snapshot, events })
    }

    /// Up to `limit` events with a position above `after`, in position order.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError>;

    /// The highest committed position, 0 for an empty store.
    async fn head(&self) -> Result<u64, StoreError>;

    /// Who holds the claim `(scope, value)`, if anyone.
    async fn claimed(&self, scope: &str, value: &str) -> Result<Option<Claimed>, StoreError>;

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
        if let Some(snapshot) = &stream.snapshot {
            let last = stream.expected_version + stream.events.len() as u64;
            if snapshot.aggregate_id != stream.aggregate_id || snapshot.aggregate_version != last {
                return Err(StoreError::Invalid(format!(
                    "the snapshot of aggregate {} should be of that aggregate at version {last}",
                    stream.aggregate_id
                )));
            }
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
