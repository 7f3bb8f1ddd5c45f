//! Drives a projection: catch up from the event store, then follow the bus.
//!
//! The runner owns three guarantees a projection alone cannot give:
//! - **Order per aggregate.** A projection applies an aggregate's versions one by one; when an
//!   envelope is ahead of the next one ([`Applied::Gap`]), the runner reads the missing
//!   versions from the event store and applies them first.
//! - **A contiguous checkpoint.** A partitioned bus (Kafka, SQS FIFO) delivers positions out of
//!   global order. The runner tracks which positions it has handled and passes the projection
//!   the low watermark (every position up to it handled), never the highest position seen.
//! - **No stuck holes.** A position below the highest one handled that stays missing for
//!   [`HOLE_GRACE`] (an event lost before a restart whose offset was already committed, say)
//!   is read from the store and applied, so the watermark always moves on.
//! - **No lost tail.** When nothing above the watermark has arrived for [`TAIL_GRACE`] and the
//!   store's head is past it (the last events of a burst lost on the bus, with nothing after
//!   them to show the hole), the rest is read from the store too; both count in
//!   `catalog_projection_holes_repaired_total`.
//!
//! Only after the projection applied an envelope (or parked it: [`crate::parking`]) does the
//! runner acknowledge its delivery.

mod parked;
mod rebuild;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use events::bus::EventBus;
use events::store::EventStore;
use events::Envelope;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tracing::Instrument;

use crate::parking::{MemoryParking, ParkingStore, FIRST_RETRY_DELAY, PARK_AFTER_TRIES};
use crate::{Applied, Projection, ProjectionError};

pub use parked::Held;
pub use rebuild::{RebuildError, RebuildProgress, BULK_CATCH_UP_FROM, REBUILD_BATCH};

const CATCH_UP_BATCH: usize = 2000;
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long a hole below the highest handled position may stay open before the runner reads
/// it from the event store.
pub const HOLE_GRACE: Duration = Duration::from_secs(2);
const HOLE_REPAIR_BATCH: usize = 1000;
/// How long the watermark may stand still, with nothing handled above it, before the runner
/// asks the store whether events past it were lost on the way (longer than a bus delivers
/// in, so a healthy bus never triggers it; a store read at most once per period while idle).
pub const TAIL_GRACE: Duration = Duration::from_secs(5);

/// What `GET /api/admin/projections` reports of one projector.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectorStatus {
    pub name: String,
    /// `starting`, `catching-up`, `live`, `paused` or `failing`.
    pub state: String,
    /// The generation readers see (1 until the view is first rebuilt).
    pub generation: u64,
    /// A rebuild in progress.
    pub rebuild: Option<RebuildProgress>,
    /// Every position up to this one has been applied.
    pub position: u64,
    /// When the last applied event occurred.
    pub last_event_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Events parked and held back from the view (failed, or waiting behind one).
    pub parked: u64,
}

/// The positions handled: everything up to `low`, plus the ones in `above`.
#[derive(Debug, Default)]
pub struct Watermark {
    low: u64,
    above: BTreeSet<u64>,
    /// The hole at `low + 1` and since when it has been open.
    hole_since: Option<(u64, Instant)>,
    /// When the watermark last moved, or the store was last asked about the tail.
    still_since: Option<Instant>,
}

impl Watermark {
    pub fn starting_at(low: u64) -> Self {
        Watermark {
            low,
            ..Default::default()
        }
    }

    pub fn low(&self) -> u64 {
        self.low
    }

    /// The watermark once `position` is handled too.
    pub fn with(&self, position: u64) -> u64 {
        if position != self.low + 1 {
            return self.low;
        }
        let mut low = position;
        while self.above.contains(&(low + 1)) {
            low += 1;
        }
        low
    }

    pub fn add(&mut self, position: u64) {
        if position <= self.low {
            return;
        }
        self.above.insert(position);
        while self.above.remove(&(self.low + 1)) {
            self.low += 1;
            self.still_since = Some(Instant::now());
        }
    }

    /// The watermark, when it has stood still for `grace` with nothing handled above it: the
    /// moment to ask the store whether events after it were lost. Asking restarts the wait.
    pub fn stale_tail(&mut self, grace: Duration) -> Option<u64> {
        if !self.above.is_empty() {
            return None;
        }
        let since = *self.still_since.get_or_insert_with(Instant::now);
        if since.elapsed() < grace {
            return None;
        }
        self.still_since = Some(Instant::now());
        Some(self.low)
    }

    /// The positions missing below the lowest handled one above the watermark, once they
    /// have been missing for `grace`: `(after, count)`.
    pub fn stale_hole(&mut self, grace: Duration) -> Option<(u64, u64)> {
        let first_above = *self.above.first()?;
        match self.hole_since {
            Some((low, since)) if low == self.low => {
                (since.elapsed() >= grace).then_some((self.low, first_above - self.low - 1))
            }
            _ => {
                self.hole_since = Some((self.low, Instant::now()));
                None
            }
        }
    }
}

/// A running (or about to run) projector: its projection and its status.
#[derive(Clone)]
pub struct Projector {
    projection: Arc<dyn Projection>,
    store: Arc<dyn EventStore>,
    status: Arc<RwLock<ProjectorStatus>>,
    watermark: Arc<Mutex<Watermark>>,
    parking: Arc<dyn ParkingStore>,
    held: Arc<Mutex<Held>>,
    /// Held while the live projector applies anything; a rebuild takes it for its tail and
    /// switch.
    gate: Arc<tokio::sync::Mutex<()>>,
    paused: Arc<tokio::sync::watch::Sender<bool>>,
    rebuilding: Arc<AtomicBool>,
    /// The generation whose lag gauges [`Projector::record_lag`] set last.
    lag_generation: Arc<AtomicU64>,
}

impl Projector {
    /// `store` is where missing versions and holes are read from.
    pub fn new(projection: Arc<dyn Projection>, store: Arc<dyn EventStore>) -> Self {
        let status = ProjectorStatus {
            name: projection.name().to_owned(),
            state: "starting".to_owned(),
            generation: 1,
            rebuild: None,
            position: 0,
            last_event_at: None,
            last_error: None,
            parked: 0,
        };
        Projector {
            projection,
            store,
            status: Arc::new(RwLock::new(status)),
            watermark: Arc::new(Mutex::new(Watermark::default())),
            parking: Arc::new(MemoryParking::default()),
            held: Arc::new(Mutex::new(Held::default())),
            gate: Arc::new(tokio::sync::Mutex::new(())),
            paused: Arc::new(tokio::sync::watch::channel(false).0),
            rebuilding: Arc::new(AtomicBool::new(false)),
            lag_generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Keeps parked events in `parking` (durable) instead of in memory.
    pub fn with_parking(mut self, parking: Arc<dyn ParkingStore>) -> Self {
        self.parking = parking;
        self
    }

    pub fn name(&self) -> &str {
        self.projection.name()
    }

    pub fn status(&self) -> ProjectorStatus {
        self.status.read().clone()
    }

    /// The head of the store this projector reads from.
    pub async fn store_head(&self) -> Result<u64, events::store::StoreError> {
        self.store.head().await
    }

    /// Sets the lag gauges an operator alerts on: `catalog_projection_lag_events` (the
    /// store's head minus this view's position) and `catalog_projection_lag_age_seconds` (how
    /// long ago the oldest event this view has not applied was accepted; 0 when caught up),
    /// both by projector and live generation, against the store's `head`. One primary-key
    /// read of the store when the view is behind.
    pub async fn record_lag(&self, head: u64) -> Result<(), events::store::StoreError> {
        let status = self.status();
        let behind = head.saturating_sub(status.position);
        let age = match behind {
            0 => 0.0,
            _ => self
                .store
                .read_all(status.position, 1)
                .await?
                .first()
                .map(|next| {
                    let age = chrono::Utc::now().signed_duration_since(next.occurred_at);
                    age.num_milliseconds().max(0) as f64 / 1000.0
                })
                .unwrap_or(0.0),
        };
        let labels = |generation: u64| {
            [
                ("projector", status.name.clone()),
                ("generation", generation.to_string()),
            ]
        };
        let previous = self
            .lag_generation
            .swap(status.generation, Ordering::Relaxed);
        if previous != 0 && previous != status.generation {
            // The switched-out generation no longer lags: its series stay at 0, not at
            // the last value they had (an alert would fire on them forever).
            metrics::gauge!("catalog_projection_lag_events", &labels(previous)).set(0.0);
            metrics::gauge!("catalog_projection_lag_age_seconds", &labels(previous)).set(0.0);
        }
        let labels = labels(status.generation);
        metrics::gauge!("catalog_projection_lag_events", &labels).set(behind as f64);
        metrics::gauge!("catalog_projection_lag_age_seconds", &labels).set(age);
        Ok(())
    }

    fn set_state(&self, state: &str) {
        self.status.write().state = state.to_owned();
    }

    /// Applies one envelope. An engine that is unavailable is retried until it is back; an
    /// envelope the projection refuses ([`ProjectionError::Invalid`]) is tried
    /// [`PARK_AFTER_TRIES`] times with a doubling delay, then parked: `None`.
    async fn apply_once(&self, envelope: &Envelope) -> Option<Applied> {
        let name = self.projection.name().to_owned();
        let mut tries = 0;
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            let checkpoint = self.watermark.lock().with(envelope.position);
            match self.projection.apply(envelope, checkpoint).await {
                Ok(applied) => {
                    if !matches!(applied, Applied::Gap { .. }) {
                        self.handled(envelope, applied);
                    }
                    return Some(applied);
                }
                Err(error) => {
                    metrics::counter!("catalog_projection_errors_total", "projector" => name.clone()).increment(1);
                    {
                        let mut status = self.status.write();
                        status.state = "failing".to_owned();
                        status.last_error = Some(error.to_string());
                    }
                    if !matches!(error, ProjectionError::Invalid { .. }) {
                        tracing::warn!(projector = %name, %error, "projection failed; retrying");
                        tokio::time::sleep(RETRY_DELAY).await;
                        continue;
                    }
                    tries += 1;
                    if tries >= PARK_AFTER_TRIES {
                        self.park_failed(envelope, &error, tries).await;
                        return None;
                    }
                    tracing::warn!(projector = %name, %error, tries, "projection cannot apply an event; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    fn handled(&self, envelope: &Envelope, applied: Applied) {
        let name = self.projection.name().to_owned();
        let low = {
            let mut watermark = self.watermark.lock();
            watermark.add(envelope.position);
            watermark.low()
        };
        let counter = match applied {
            Applied::Applied => "catalog_projection_applied_total",
            _ => "catalog_projection_duplicates_total",
        };
        metrics::counter!(counter, "projector" => name.clone()).increment(1);
        if applied == Applied::Applied {
            // From the command's acceptance to this view applying it.
            let lag = chrono::Utc::now().signed_duration_since(envelope.occurred_at);
            metrics::histogram!("catalog_projection_lag_seconds", "projector" => name.clone())
                .record(lag.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
        }
        metrics::gauge!("catalog_projection_position", "projector" => name).set(low as f64);
        let mut status = self.status.write();
        status.position = low;
        status.last_event_at = Some(envelope.occurred_at);
        status.last_error = None;
    }

    /// Applies `envelope`, first applying from the store any versions of its aggregate the
    /// projection is missing.
    pub async fn apply(&self, envelope: &Envelope) {
        if self.pass_parked(envelope).await {
            return;
        }
        let Some(Applied::Gap { applied_version }) = self.apply_once(envelope).await else {
            return;
        };
        let name = self.projection.name().to_owned();
        metrics::counter!("catalog_projection_gaps_repaired_total", "projector" => name.clone())
            .increment(1);
        tracing::info!(
            projector = %name,
            aggregate_id = %envelope.aggregate_id,
            from = applied_version + 1,
            to = envelope.aggregate_version,
            "repairing a gap from the event store"
        );
        loop {
            match self.store.read_aggregate(envelope.aggregate_id).await {
                Ok(history) => {
                    for missing in history.iter().filter(|e| {
                        e.aggregate_version > applied_version
                            && e.aggregate_version <= envelope.aggregate_version
                    }) {
                        if self.pass_parked(missing).await {
                            continue;
                        }
                        if let Some(Applied::Gap { .. }) = self.apply_once(missing).await {
                            tracing::error!(projector = %name, position = missing.position, "the store's history of an aggregate has a gap");
                        }
                    }
                    return;
                }
                Err(error) => {
                    tracing::warn!(projector = %name, %error, "cannot read the store to repair a gap; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Reads the store from the projection's checkpoint to its head and applies everything:
    /// the rebuild at start. Returns the position reached.
    pub async fn catch_up(&self) -> Result<u64, events::store::StoreError> {
        // A view that lost its data starts again from the beginning: its checkpoint may have
        // moved since (a delivery applied to the emptied Redis before the loss was noticed),
        // and nothing before it is there any more.
        match self.projection.is_intact().await {
            Ok(false) => self.fill().await,
            _ => {
                let from = self.projection.checkpoint().await.unwrap_or(0);
                self.catch_up_from(from).await
            }
        }
    }

    /// Catches a view that is not intact up from the start of the store, recording first that
    /// the fill began (a loss during it leaves the view not intact, to be filled again).
    async fn fill(&self) -> Result<u64, events::store::StoreError> {
        if let Err(error) = self.projection.begin_fill().await {
            return Err(events::store::StoreError::Unavailable(error.to_string()));
        }
        self.catch_up_from(0).await
    }

    /// [`Self::catch_up`] from `position` (0: the whole store, as a rebuild when it is long).
    async fn catch_up_from(&self, mut position: u64) -> Result<u64, events::store::StoreError> {
        self.set_state("catching-up");
        self.load_parked().await;
        if position == 0 {
            if let Some(reached) = self.bulk_catch_up().await {
                position = reached;
            }
            self.set_state("catching-up");
        }
        self.reset_watermark(position);
        loop {
            let batch = self.store.read_all(position, CATCH_UP_BATCH).await?;
            let Some(last) = batch.last() else {
                break;
            };
            position = last.position;
            for envelope in &batch {
                self.apply(envelope).await;
            }
        }
        if let Err(error) = self.projection.mark_intact().await {
            tracing::warn!(projector = self.name(), %error, "cannot mark the view complete");
        }
        Ok(position)
    }

    /// Rebuilds the view from the store when it lost its data (see
    /// [`Projection::is_intact`]).
    async fn rebuild_if_lost(&self) {
        let name = self.projection.name().to_owned();
        if !matches!(self.projection.is_intact().await, Ok(false)) {
            return;
        }
        tracing::warn!(projector = %name, "the view lost its data; rebuilding it from the event store");
        metrics::counter!("catalog_projection_rebuilds_total", "projector" => name.clone())
            .increment(1);
        *self.watermark.lock() = Watermark::starting_at(0);
        self.status.write().position = 0;
        match self.fill().await {
            Ok(position) => {
                tracing::info!(projector = %name, position, "rebuilt the view");
                self.set_state("live");
            }
            Err(error) => {
                tracing::warn!(projector = %name, %error, "rebuild interrupted; retrying")
            }
        }
    }

    /// `(after, count)` of the events past a watermark that stood still for [`TAIL_GRACE`]
    /// while the store went on.
    async fn lost_tail(&self) -> Option<(u64, u64)> {
        let low = self.watermark.lock().stale_tail(TAIL_GRACE)?;
        match self.store.head().await {
            Ok(head) if head > low => Some((low, head - low)),
            Ok(_) => None,
            Err(error) => {
                let name = self.projection.name();
                tracing::warn!(projector = %name, %error, "cannot read the store's head");
                None
            }
        }
    }

    fn reset_watermark(&self, low: u64) {
        let mut watermark = self.watermark.lock();
        if watermark.low() < low {
            *watermark = Watermark::starting_at(low);
        }
        self.status.write().position = watermark.low();
    }

    /// Applies, from the store, positions that have been missing for longer than
    /// [`HOLE_GRACE`], or past a watermark that stood still for [`TAIL_GRACE`].
    async fn repair_holes(&self) {
        let hole = self.watermark.lock().stale_hole(HOLE_GRACE);
        let Some((after, count)) = (match hole {
            Some(hole) => Some(hole),
            None => self.lost_tail().await,
        }) else {
            return;
        };
        let name = self.projection.name().to_owned();
        tracing::info!(projector = %name, after, count, "reading a hole in the delivered positions from the store");
        metrics::counter!("catalog_projection_holes_repaired_total", "projector" => name.clone())
            .increment(1);
        match self
            .store
            .read_all(after, (count as usize).min(HOLE_REPAIR_BATCH))
            .await
        {
            Ok(batch) => {
                for envelope in &batch {
                    self.apply(envelope).await;
                }
            }
            Err(error) => {
                tracing::warn!(projector = %name, %error, "cannot read the store to fill a hole")
            }
        }
    }

    /// Follows the bus until the task is dropped: applies each delivery, then acknowledges it.
    pub async fn run(self, bus: Arc<dyn EventBus>) {
        let name = self.projection.name().to_owned();
        self.rebuild_if_outdated().await;
        let mut paused = self.paused.subscribe();
        loop {
            let after = match self.projection.checkpoint().await {
                Ok(position) => position,
                Err(error) => {
                    tracing::warn!(projector = %name, %error, "cannot read checkpoint");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            self.reset_watermark(after);
            let mut stream = match bus.subscribe(&name, after).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(projector = %name, %error, "cannot subscribe; retrying");
                    {
                        let mut status = self.status.write();
                        status.state = "failing".to_owned();
                        status.last_error = Some(error.to_string());
                    }
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            self.set_state(if *paused.borrow() { "paused" } else { "live" });
            let mut repair_tick = tokio::time::interval(Duration::from_millis(500));
            repair_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let is_paused = *paused.borrow_and_update();
                let item = tokio::select! {
                    item = stream.next(), if !is_paused => item,
                    _ = paused.changed() => continue,
                    _ = repair_tick.tick() => {
                        self.act_on_view_requests().await;
                        if is_paused {
                            continue;
                        }
                        let _held = self.gate.lock().await;
                        self.rebuild_if_lost().await;
                        self.repair_holes().await;
                        self.act_on_requests().await;
                        continue;
                    }
                };
                let Some(item) = item else { break };
                match item {
                    Ok(delivery) => {
                        {
                            let _held = self.gate.lock().await;
                            let span = apply_span(&name, &delivery);
                            self.apply(&delivery.envelope).instrument(span).await;
                        }
                        if let Err(error) = delivery.ack().await {
                            // Not acknowledged means delivered again: a harmless duplicate.
                            tracing::warn!(projector = %name, %error, "cannot acknowledge a delivery");
                        }
                        if self.status.read().state != "live" && !*paused.borrow() {
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

/// The span of `projector` applying a delivery: a child of the relay's publish when the
/// message carried its trace context.
fn apply_span(projector: &str, delivery: &events::bus::Delivery) -> tracing::Span {
    let span = tracing::debug_span!(
        "projection.apply",
        otel.kind = "consumer",
        projector,
        position = delivery.envelope.position,
        event_type = %delivery.envelope.event_type,
    );
    events::trace::follow(&span, delivery.traceparent.as_deref());
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_moves_only_over_contiguous_positions() {
        let mut watermark = Watermark::starting_at(10);
        assert_eq!(watermark.with(12), 10);
        watermark.add(12);
        watermark.add(13);
        assert_eq!(watermark.low(), 10);
        assert_eq!(watermark.with(11), 13);
        watermark.add(11);
        assert_eq!(watermark.low(), 13);
        watermark.add(5);
        assert_eq!(watermark.low(), 13);
        assert_eq!(watermark.with(14), 14);
    }

    #[test]
    fn a_hole_is_reported_only_after_the_grace_period() {
        let mut watermark = Watermark::starting_at(0);
        assert_eq!(watermark.stale_hole(Duration::ZERO), None);
        watermark.add(4);
        // First sight starts the clock.
        assert_eq!(watermark.stale_hole(Duration::from_secs(60)), None);
        assert_eq!(watermark.stale_hole(Duration::from_secs(60)), None);
        assert_eq!(watermark.stale_hole(Duration::ZERO), Some((0, 3)));
        watermark.add(1);
        // The hole moved: the clock starts again.
        assert_eq!(watermark.stale_hole(Duration::ZERO), None);
        assert_eq!(watermark.stale_hole(Duration::ZERO), Some((1, 2)));
    }

    #[test]
    fn a_tail_is_asked_about_only_when_the_watermark_stood_still_with_nothing_above() {
        let mut watermark = Watermark::starting_at(3);
        // First sight starts the clock.
        assert_eq!(watermark.stale_tail(Duration::from_secs(60)), None);
        assert_eq!(watermark.stale_tail(Duration::ZERO), Some(3));
        watermark.add(5);
        assert_eq!(
            watermark.stale_tail(Duration::ZERO),
            None,
            "a hole, not a tail"
        );
        watermark.add(4);
        assert_eq!(
            watermark.stale_tail(Duration::from_secs(60)),
            None,
            "it just moved"
        );
        assert_eq!(watermark.stale_tail(Duration::ZERO), Some(5));
    }
}
