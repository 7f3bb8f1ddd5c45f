//! The runner's side of [`crate::parking`]: passing held events over, parking, and acting on
//! an operator's retry or skip.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use events::Envelope;
use uuid::Uuid;

use super::{Projector, RETRY_DELAY};
use crate::parking::{ParkedAction, ParkedEvent, ParkedState};
use crate::{Applied, ProjectionError};

/// This view's parked events, as the runner keeps them in memory beside the store.
#[derive(Debug, Default)]
pub struct Held {
    records: BTreeMap<u64, ParkedEvent>,
    /// How many held (failed or waiting) events each aggregate has.
    per_aggregate: HashMap<Uuid, usize>,
}

impl Held {
    fn from_records(records: Vec<ParkedEvent>) -> Held {
        let mut held = Held::default();
        for record in records {
            held.put(record);
        }
        held
    }

    fn put(&mut self, record: ParkedEvent) {
        if let Some(old) = self.records.remove(&record.position) {
            self.forget(&old);
        }
        if record.state.is_held() {
            *self.per_aggregate.entry(record.aggregate_id).or_default() += 1;
        }
        self.records.insert(record.position, record);
    }

    fn forget(&mut self, record: &ParkedEvent) {
        if !record.state.is_held() {
            return;
        }
        if let Some(count) = self.per_aggregate.get_mut(&record.aggregate_id) {
            *count -= 1;
            if *count == 0 {
                self.per_aggregate.remove(&record.aggregate_id);
            }
        }
    }

    fn is_blocked(&self, aggregate_id: Uuid) -> bool {
        self.per_aggregate.contains_key(&aggregate_id)
    }

    /// How many events are held back.
    pub fn count(&self) -> u64 {
        self.per_aggregate.values().sum::<usize>() as u64
    }

    fn waiting_behind(&self, aggregate_id: Uuid) -> Vec<ParkedEvent> {
        self.records
            .values()
            .filter(|record| {
                record.aggregate_id == aggregate_id && record.state == ParkedState::Waiting
            })
            .cloned()
            .collect()
    }
}

impl Projector {
    /// Reads this view's parked events from the store (before a catch-up, so a rebuilt view
    /// meets them again as they were left).
    pub(super) async fn load_parked(&self) {
        loop {
            match self.parking.list(self.name()).await {
                Ok(records) => {
                    *self.held.lock() = Held::from_records(records);
                    self.held_changed();
                    return;
                }
                Err(error) => {
                    tracing::warn!(projector = self.name(), %error, "cannot read the parked events; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Whether `envelope` is not for the view now: parked and held (passed over), skipped
    /// (taken as nothing), or of an aggregate with an event held (parked as waiting).
    pub(super) async fn pass_parked(&self, envelope: &Envelope) -> bool {
        let (state, blocked) = {
            let held = self.held.lock();
            let state = held.records.get(&envelope.position).map(|r| r.state);
            (state, held.is_blocked(envelope.aggregate_id))
        };
        match state {
            Some(ParkedState::Failed | ParkedState::Waiting) => {
                self.pass_over(envelope).await;
                true
            }
            Some(ParkedState::Skipped) => {
                self.apply_as_nothing(envelope).await;
                true
            }
            Some(ParkedState::Applied) => false,
            None if blocked => {
                self.park(envelope, ParkedState::Waiting, None, 0).await;
                true
            }
            None => false,
        }
    }

    /// Parks an envelope the projection refused `tries` times.
    pub(super) async fn park_failed(
        &self,
        envelope: &Envelope,
        error: &ProjectionError,
        tries: u32,
    ) {
        tracing::error!(
            projector = self.name(),
            position = envelope.position,
            aggregate_id = %envelope.aggregate_id,
            %error,
            "parked an event the view cannot apply; later events of its aggregate wait behind it (catalog projections parked)"
        );
        self.park(
            envelope,
            ParkedState::Failed,
            Some(error.to_string()),
            tries,
        )
        .await;
    }

    async fn park(
        &self,
        envelope: &Envelope,
        state: ParkedState,
        error: Option<String>,
        tries: u32,
    ) {
        let now = Utc::now();
        let existing = self.held.lock().records.get(&envelope.position).cloned();
        let record = ParkedEvent {
            view: self.name().to_owned(),
            position: envelope.position,
            aggregate_id: envelope.aggregate_id,
            event_type: envelope.event_type.clone(),
            state,
            error,
            attempts: existing.as_ref().map_or(0, |r| r.attempts) + tries,
            first_attempt_at: existing.as_ref().map_or(now, |r| r.first_attempt_at),
            last_attempt_at: now,
            requested: None,
            decided_by: existing.as_ref().and_then(|r| r.decided_by.clone()),
            decided_at: existing.and_then(|r| r.decided_at),
        };
        self.save(&record).await;
        self.pass_over(envelope).await;
    }

    /// Stores `record` (retrying until the store takes it: a parked event is never lost) and
    /// keeps it in memory.
    async fn save(&self, record: &ParkedEvent) {
        while let Err(error) = self.parking.save(record).await {
            tracing::warn!(projector = self.name(), %error, "cannot record a parked event; retrying");
            tokio::time::sleep(RETRY_DELAY).await;
        }
        self.held.lock().put(record.clone());
        self.held_changed();
    }

    fn held_changed(&self) {
        let count = self.held.lock().count();
        self.status.write().parked = count;
        metrics::gauge!("catalog_projection_parked", "projector" => self.name().to_owned())
            .set(count as f64);
    }

    /// The position is handled (so the checkpoint moves on) without the view changing.
    async fn pass_over(&self, envelope: &Envelope) {
        let low = {
            let mut watermark = self.watermark.lock();
            watermark.add(envelope.position);
            watermark.low()
        };
        self.status.write().position = low;
        if let Err(error) = self.projection.advance(low).await {
            // The next applied event records it.
            tracing::warn!(projector = self.name(), %error, "cannot record the checkpoint past a parked event");
        }
    }

    /// A skipped product event is applied as a change of nothing, so the product's version
    /// moves on and its later events apply; other aggregates' events are passed over.
    async fn apply_as_nothing(&self, envelope: &Envelope) {
        let Some(nothing) = super::rebuild::as_nothing(envelope) else {
            self.pass_over(envelope).await;
            return;
        };
        loop {
            let checkpoint = self.watermark.lock().with(envelope.position);
            match self.projection.apply(&nothing, checkpoint).await {
                Ok(applied) => {
                    self.handled(envelope, applied);
                    return;
                }
                Err(ProjectionError::Invalid { .. }) => {
                    self.pass_over(envelope).await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(projector = self.name(), %error, "cannot pass a skipped event over; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }

    /// Acts on the retries and skips operators asked for (from any process: the store is
    /// read again), then lets the waiting events of each released aggregate follow.
    pub(super) async fn act_on_requests(&self) {
        // A request is only ever for a failed event, and one this process never parked has
        // nothing to release here: with nothing held, the store is not asked (every 500 ms
        // per view otherwise).
        if self.held.lock().count() == 0 {
            return;
        }
        let records = match self.parking.list(self.name()).await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(projector = self.name(), %error, "cannot read the parked events");
                return;
            }
        };
        for record in records {
            let mine = self
                .held
                .lock()
                .records
                .get(&record.position)
                .map(|r| r.state);
            let action = match (record.requested, record.state, mine) {
                (Some(action), ParkedState::Failed, _) => action,
                // Decided and acted on by another process with this view (a query replica's
                // own index): this one follows.
                (None, ParkedState::Skipped, Some(ParkedState::Failed)) => ParkedAction::Skip,
                (None, ParkedState::Applied, Some(ParkedState::Failed)) => ParkedAction::Retry,
                _ => continue,
            };
            let Some(envelope) = self.read_at(record.position).await else {
                continue;
            };
            self.held.lock().put(record.clone());
            let released = match action {
                ParkedAction::Retry => self.retry(&envelope, record).await,
                ParkedAction::Skip => {
                    tracing::warn!(projector = self.name(), position = record.position, by = ?record.decided_by, "skipping a parked event");
                    self.save(&ParkedEvent {
                        state: ParkedState::Skipped,
                        requested: None,
                        ..record
                    })
                    .await;
                    self.apply_as_nothing(&envelope).await;
                    true
                }
            };
            if released {
                self.release(envelope.aggregate_id).await;
            }
        }
    }

    /// Tries a parked event again: `true` when the view took it.
    async fn retry(&self, envelope: &Envelope, record: ParkedEvent) -> bool {
        // `apply_once` goes to the view whatever is held (only `apply` asks `pass_parked`).
        match self.apply_once(envelope).await {
            Some(Applied::Applied | Applied::Duplicate) => {
                tracing::info!(
                    projector = self.name(),
                    position = envelope.position,
                    "a parked event applied on retry"
                );
                self.save(&ParkedEvent {
                    state: ParkedState::Applied,
                    requested: None,
                    error: None,
                    last_attempt_at: Utc::now(),
                    ..record
                })
                .await;
                true
            }
            Some(Applied::Gap { applied_version }) => {
                self.save(&ParkedEvent {
                    requested: None,
                    error: Some(format!(
                        "the view holds version {applied_version} of the aggregate, more than one behind this event"
                    )),
                    ..record
                })
                .await;
                false
            }
            // Parked again, with the new error and attempts.
            None => false,
        }
    }

    /// Applies, in order, the events of `aggregate_id` that waited behind a released one,
    /// until one of them fails (it is then the one parked, the rest wait behind it).
    async fn release(&self, aggregate_id: Uuid) {
        let waiting = self.held.lock().waiting_behind(aggregate_id);
        for record in waiting {
            let Some(envelope) = self.read_at(record.position).await else {
                continue;
            };
            match self.apply_once(&envelope).await {
                Some(_) => {
                    self.save(&ParkedEvent {
                        state: ParkedState::Applied,
                        last_attempt_at: Utc::now(),
                        ..record
                    })
                    .await;
                }
                None => {
                    // Parked as failed (apply_once did); the later records are still waiting.
                    tracing::warn!(projector = self.name(), %aggregate_id, position = envelope.position, "a released event failed; the aggregate's later events wait behind it");
                    return;
                }
            }
        }
    }

    /// The envelope at `position`, from the store.
    async fn read_at(&self, position: u64) -> Option<Envelope> {
        loop {
            match self.store.read_all(position.saturating_sub(1), 1).await {
                Ok(batch) => return batch.into_iter().find(|e| e.position == position),
                Err(error) => {
                    tracing::warn!(projector = self.name(), %error, "cannot read a parked event from the store; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    }
}
