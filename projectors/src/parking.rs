//! Poison events, parked: an event a view cannot apply after [`PARK_AFTER_TRIES`] tries is
//! recorded durably and passed over, so every other product keeps flowing.
//!
//! Parking is sequenced per aggregate (as Axon's dead-letter queue is): once one of a
//! product's events is parked, its later events wait behind it (parked as `waiting`, not
//! applied), so the view never shows a product with a change missing in the middle. An
//! operator then decides, with `catalog projections retry|skip` or the admin HTTP routes:
//! - **retry**: the running projector applies the event again (after a fix, say); when it
//!   applies, the product's waiting events follow in order;
//! - **skip**: the decision is recorded, the view takes the event as a change of nothing (the
//!   product's version moves on), and the waiting events follow.
//!
//! Records stay after the decision (`applied`, `skipped`): what was decided, when and by whom.
//! A view rebuilt from the log (the embedded read model at every start) meets the same events
//! again and finds their records: held ones are passed over, skipped ones taken as nothing.
//!
//! Only [`crate::ProjectionError::Invalid`] parks: an unavailable engine (Redis down) is retried
//! until it is back, since parking would skip events that are fine.

mod sql;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use uuid::Uuid;

pub use sql::{PostgresParking, SqliteParking};

/// How many times an event that cannot be applied is tried before it is parked.
pub const PARK_AFTER_TRIES: u32 = 5;
/// The wait after the first failed try; it doubles after each (100 + 200 + 400 + 800 ms).
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Where a parked event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParkedState {
    /// The view could not apply it.
    Failed,
    /// Behind an earlier parked event of the same aggregate; not tried.
    Waiting,
    /// Applied later (on a retry, or released after the one ahead of it).
    Applied,
    /// Passed over by an operator's decision.
    Skipped,
}

impl ParkedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkedState::Failed => "failed",
            ParkedState::Waiting => "waiting",
            ParkedState::Applied => "applied",
            ParkedState::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<ParkedState> {
        Some(match text {
            "failed" => ParkedState::Failed,
            "waiting" => ParkedState::Waiting,
            "applied" => ParkedState::Applied,
            "skipped" => ParkedState::Skipped,
            _ => return None,
        })
    }

    /// Still held back from the view: failed or waiting.
    pub fn is_held(self) -> bool {
        matches!(self, ParkedState::Failed | ParkedState::Waiting)
    }
}

/// What an operator asks of a held event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParkedAction {
    Retry,
    Skip,
}

impl ParkedAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkedAction::Retry => "retry",
            ParkedAction::Skip => "skip",
        }
    }

    pub fn parse(text: &str) -> Option<ParkedAction> {
        match text {
            "retry" => Some(ParkedAction::Retry),
            "skip" => Some(ParkedAction::Skip),
            _ => None,
        }
    }
}

/// What an operator asks of a whole view (`catalog projections rebuild|pause|resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ViewAction {
    /// Build the next generation from the store beside the live one, then switch readers.
    Rebuild,
    /// Stop applying deliveries (they wait on the bus) until resumed.
    Pause,
    Resume,
}

impl ViewAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewAction::Rebuild => "rebuild",
            ViewAction::Pause => "pause",
            ViewAction::Resume => "resume",
        }
    }

    pub fn parse(text: &str) -> Option<ViewAction> {
        match text {
            "rebuild" => Some(ViewAction::Rebuild),
            "pause" => Some(ViewAction::Pause),
            "resume" => Some(ViewAction::Resume),
            _ => None,
        }
    }
}

/// A request for a view, as its projector takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRequest {
    pub action: ViewAction,
    pub requested_by: String,
}

/// One parked event of one view: the durable dead-letter record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ParkedEvent {
    pub view: String,
    pub position: u64,
    pub aggregate_id: Uuid,
    pub event_type: String,
    pub state: ParkedState,
    /// The last error (none for a waiting event).
    pub error: Option<String>,
    /// How many times the view tried it.
    pub attempts: u32,
    pub first_attempt_at: DateTime<Utc>,
    pub last_attempt_at: DateTime<Utc>,
    /// An operator's request the projector has not acted on yet.
    pub requested: Option<ParkedAction>,
    /// Who asked for the last decision, and when.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    #[error("the parked-event store is unavailable: {0}")]
    Unavailable(String),
}

/// The durable records of parked events (SQLite in the embedded mode, PostgreSQL in the
/// distributed one; [`MemoryParking`] in tests).
#[async_trait]
pub trait ParkingStore: Send + Sync + 'static {
    /// Inserts or replaces the record of `(view, position)`.
    async fn save(&self, record: &ParkedEvent) -> Result<(), ParkingError>;
    /// Every record of `view`, by position.
    async fn list(&self, view: &str) -> Result<Vec<ParkedEvent>, ParkingError>;
    /// How many events each view holds back (failed or waiting), by view name.
    async fn held_counts(&self) -> Result<BTreeMap<String, u64>, ParkingError>;
    /// Asks the projector of `view` to retry or skip the failed event at `position`; `false`
    /// when no event failed there (a waiting one follows the one it waits behind). The running
    /// projector acts on it within a second.
    async fn request(
        &self,
        view: &str,
        position: u64,
        action: ParkedAction,
        by: &str,
    ) -> Result<bool, ParkingError>;
    /// Asks the projector of `view` to rebuild, pause or resume it; the running projector
    /// acts within a second.
    async fn request_view(
        &self,
        view: &str,
        action: ViewAction,
        by: &str,
    ) -> Result<(), ParkingError>;
    /// Removes and returns the requests for `view`, oldest first.
    async fn take_view_requests(&self, view: &str) -> Result<Vec<ViewRequest>, ParkingError>;
}

/// Records in memory: for tests, and for a process without a database.
#[derive(Default)]
pub struct MemoryParking {
    records: Mutex<BTreeMap<(String, u64), ParkedEvent>>,
    view_requests: Mutex<Vec<(String, ViewRequest)>>,
}

#[async_trait]
impl ParkingStore for MemoryParking {
    async fn save(&self, record: &ParkedEvent) -> Result<(), ParkingError> {
        self.records
            .lock()
            .insert((record.view.clone(), record.position), record.clone());
        Ok(())
    }

    async fn list(&self, view: &str) -> Result<Vec<ParkedEvent>, ParkingError> {
        Ok(self
            .records
            .lock()
            .values()
            .filter(|record| record.view == view)
            .cloned()
            .collect())
    }

    async fn held_counts(&self) -> Result<BTreeMap<String, u64>, ParkingError> {
        let mut counts = BTreeMap::new();
        for record in self.records.lock().values() {
            if record.state.is_held() {
                *counts.entry(record.view.clone()).or_default() += 1;
            }
        }
        Ok(counts)
    }

    async fn request(
        &self,
        view: &str,
        position: u64,
        action: ParkedAction,
        by: &str,
    ) -> Result<bool, ParkingError> {
        let mut records = self.records.lock();
        match records.get_mut(&(view.to_owned(), position)) {
            Some(record) if record.state == ParkedState::Failed => {
                record.requested = Some(action);
                record.decided_by = Some(by.to_owned());
                record.decided_at = Some(Utc::now());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn request_view(
        &self,
        view: &str,
        action: ViewAction,
        by: &str,
    ) -> Result<(), ParkingError> {
        self.view_requests.lock().push((
            view.to_owned(),
            ViewRequest {
                action,
                requested_by: by.to_owned(),
            },
        ));
        Ok(())
    }

    async fn take_view_requests(&self, view: &str) -> Result<Vec<ViewRequest>, ParkingError> {
        let mut requests = self.view_requests.lock();
        let (taken, kept) = std::mem::take(&mut *requests)
            .into_iter()
            .partition(|(name, _)| name == view);
        *requests = kept;
        Ok(taken.into_iter().map(|(_, request)| request).collect())
    }
}
