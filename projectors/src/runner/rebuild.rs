//! The runner's side of [`crate::generations`]: rebuilding a view beside the live one, pausing
//! and resuming it, and the operator's requests for them.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};
use events::Envelope;
use serde::{Deserialize, Serialize};

use super::{Projector, RETRY_DELAY};
use crate::generations::{Generations, GRACE};
use crate::parking::{ParkedState, ViewAction};
use crate::{Projection, ProjectionError};

/// Events read from the store and applied per batch by a rebuild.
pub const REBUILD_BATCH: usize = 5000;

/// A rebuild in progress, as `catalog projections status` and `/api/admin/projections` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RebuildProgress {
    /// The generation being built.
    pub generation: u64,
    /// Every event up to this position is in it.
    pub position: u64,
    /// The store's head when the rebuild began (the tail after it is applied at the switch).
    pub head: u64,
    /// Events applied per second so far.
    pub events_per_second: f64,
    /// Seconds left at that rate (to `head`).
    pub eta_seconds: f64,
    pub started_at: DateTime<Utc>,
}

/// Why a rebuild did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("view {0:?} cannot be rebuilt beside itself")]
    NotRebuildable(String),
    #[error("view {0:?} is being rebuilt already")]
    InProgress(String),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error(transparent)]
    Store(#[from] events::store::StoreError),
    /// A bulk catch-up met an event the view refuses (the catch-up then goes event by event,
    /// which parks it).
    #[error("the view refuses the event at position {0}")]
    Refused(u64),
}

/// A view whose checkpoint is 0 while the store holds at least this many events is caught up
/// as a rebuild (in batches, beside the empty generation) rather than event by event: a new
/// PostgreSQL read model of a million events took 70 minutes at 240 events/s before.
pub const BULK_CATCH_UP_FROM: u64 = 10_000;

/// How a rebuild runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Beside a live generation that follows the bus: the tail and the switch hold the live
    /// projector; an event the view refuses is left out with its product's later events (the
    /// live view parks them).
    Beside,
    /// The catch-up of an empty view, before the live projector runs (or while it is held):
    /// an event the view refuses stops the rebuild, and the catch-up goes event by event.
    CatchUp,
}

/// A product event recorded as skipped, applied as a change of nothing (its version moves on);
/// `None` for another aggregate's (its position is passed over).
pub(super) fn as_nothing(envelope: &Envelope) -> Option<Envelope> {
    if matches!(
        envelope.event_type.as_str(),
        "CategoryCreated" | "SynonymsChanged"
    ) {
        return None;
    }
    let mut nothing = envelope.clone();
    nothing.event_type = "ProductDetailsChanged".to_owned();
    nothing.schema_version = 1;
    nothing.data = serde_json::json!({});
    Some(nothing)
}

/// What a rebuild applies of the store's history: held events (parked, failed or waiting) are
/// left out as the live view leaves them out, skipped ones are nothing, and an aggregate with
/// an event this rebuild could not apply has its later events left out (they would be a gap).
struct Filter {
    parked: BTreeMap<u64, ParkedState>,
    blocked: HashSet<uuid::Uuid>,
    mode: Mode,
}

impl Filter {
    fn pass(&self, envelope: &Envelope) -> Option<Envelope> {
        if self.blocked.contains(&envelope.aggregate_id) {
            return None;
        }
        match self.parked.get(&envelope.position) {
            Some(ParkedState::Failed | ParkedState::Waiting) => None,
            Some(ParkedState::Skipped) => as_nothing(envelope),
            Some(ParkedState::Applied) | None => Some(envelope.clone()),
        }
    }
}

impl Projector {
    /// The rebuild in progress, if any.
    pub fn rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::SeqCst)
    }

    /// Stops applying deliveries (they wait on the bus) until [`Projector::resume`].
    pub fn pause(&self) {
        self.paused.send_replace(true);
        self.set_state("paused");
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
        self.set_state("live");
    }

    /// Rebuilds the view blue/green (see [`crate::generations`]) and returns the new
    /// generation. The live generation serves and follows the bus meanwhile; only the final
    /// tail and the switch hold the live projector, between two deliveries.
    pub async fn rebuild(&self) -> Result<u64, RebuildError> {
        {
            let mut status = self.status.write();
            if status
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("rebuild:"))
            {
                status.last_error = None;
            }
        }
        self.rebuild_alone(Mode::Beside).await
    }

    /// Catches an empty view up as a rebuild when the store is long (see
    /// [`BULK_CATCH_UP_FROM`]); the position reached, or `None` when the view is to be caught
    /// up event by event (the store is short, the view has no generations, or the rebuild
    /// stopped).
    pub(super) async fn bulk_catch_up(&self) -> Option<u64> {
        self.projection.generations()?;
        if self.store.head().await.ok()? < BULK_CATCH_UP_FROM {
            return None;
        }
        match self.rebuild_alone(Mode::CatchUp).await {
            Ok(_) => self.projection.checkpoint().await.ok(),
            Err(error) => {
                tracing::warn!(projector = self.name(), %error, "the bulk catch-up stopped; applying the store event by event");
                None
            }
        }
    }

    /// Runs a rebuild unless one runs already, and clears its progress after.
    async fn rebuild_alone(&self, mode: Mode) -> Result<u64, RebuildError> {
        let name = self.name().to_owned();
        let Some(generations) = self.projection.generations() else {
            return Err(RebuildError::NotRebuildable(name));
        };
        if self.rebuilding.swap(true, Ordering::SeqCst) {
            return Err(RebuildError::InProgress(name));
        }
        let outcome = self.rebuild_with(generations, mode).await;
        self.rebuilding.store(false, Ordering::SeqCst);
        self.status.write().rebuild = None;
        outcome
    }

    async fn rebuild_with(
        &self,
        generations: &dyn Generations,
        mode: Mode,
    ) -> Result<u64, RebuildError> {
        let name = self.name().to_owned();
        let live = generations.live().await?;
        let next = generations.prepare().await?;
        let started = Instant::now();
        let head = self.store.head().await?;
        let mut progress = RebuildProgress {
            generation: live.generation + 1,
            position: 0,
            head,
            events_per_second: 0.0,
            eta_seconds: 0.0,
            started_at: Utc::now(),
        };
        self.status.write().rebuild = Some(progress.clone());
        tracing::info!(projector = %name, generation = progress.generation, head, "rebuilding the view beside the live one");
        let mut filter = Filter {
            parked: self
                .parking
                .list(&name)
                .await
                .map_err(|error| ProjectionError::Unavailable(error.to_string()))?
                .into_iter()
                .map(|record| (record.position, record.state))
                .collect(),
            blocked: HashSet::new(),
            mode,
        };
        let mut position = 0;
        while position < head {
            let reached = self
                .apply_from_store(next.as_ref(), &mut filter, position)
                .await?;
            if reached == position {
                break;
            }
            position = reached;
            let elapsed = started.elapsed().as_secs_f64().max(1e-3);
            progress.position = position;
            progress.events_per_second = position as f64 / elapsed;
            progress.eta_seconds =
                head.saturating_sub(position) as f64 / progress.events_per_second.max(1e-3);
            self.status.write().rebuild = Some(progress.clone());
            metrics::gauge!("catalog_projection_rebuild_position", "projector" => name.clone())
                .set(position as f64);
        }
        generations.sealed().await?;
        let generation = {
            // Between two deliveries: the live projector applies nothing until the switch (a
            // catch-up runs where the live projector is not running or already held).
            let _held = match mode {
                Mode::Beside => Some(self.gate.lock().await),
                Mode::CatchUp => None,
            };
            loop {
                let reached = self
                    .apply_from_store(next.as_ref(), &mut filter, position)
                    .await?;
                if reached == position {
                    break;
                }
                position = reached;
            }
            let generation = generations.switch().await?;
            self.reset_watermark(position);
            generation
        };
        let elapsed = started.elapsed().as_secs_f64();
        metrics::counter!("catalog_projection_rebuilds_total", "projector" => name.clone())
            .increment(1);
        metrics::gauge!("catalog_projection_generation", "projector" => name.clone())
            .set(generation as f64);
        self.status.write().generation = generation;
        tracing::info!(
            projector = %name,
            generation,
            position,
            elapsed_s = elapsed,
            events_per_second = position as f64 / elapsed.max(1e-3),
            "switched readers to the rebuilt generation"
        );
        let projector = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            if let Some(generations) = projector.projection.generations() {
                if let Err(error) = generations.drop_previous().await {
                    tracing::warn!(projector = projector.name(), %error, "cannot drop the previous generation");
                }
            }
        });
        Ok(generation)
    }

    /// Applies one batch of the store after `position` to `next`; returns the position reached
    /// (`position` when the store has nothing after it).
    async fn apply_from_store(
        &self,
        next: &dyn Projection,
        filter: &mut Filter,
        position: u64,
    ) -> Result<u64, RebuildError> {
        let batch = self.store.read_all(position, REBUILD_BATCH).await?;
        let Some(last) = batch.last().map(|envelope| envelope.position) else {
            return Ok(position);
        };
        let passed: Vec<Envelope> = batch.iter().filter_map(|e| filter.pass(e)).collect();
        loop {
            match next.apply_batch(&passed, last).await {
                Ok(()) => return Ok(last),
                Err(ProjectionError::Invalid { .. }) => break,
                Err(error) => {
                    tracing::warn!(projector = self.name(), %error, "rebuild: the view is unavailable; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
        // One event the view refuses: apply the batch one by one, leaving out that event and
        // its aggregate's later ones (the live view parks them).
        for envelope in &batch {
            let Some(envelope) = filter.pass(envelope) else {
                continue;
            };
            match next
                .apply_batch(std::slice::from_ref(&envelope), envelope.position)
                .await
            {
                Ok(()) => {}
                Err(ProjectionError::Invalid { .. }) if filter.mode == Mode::CatchUp => {
                    return Err(RebuildError::Refused(envelope.position));
                }
                Err(ProjectionError::Invalid { message, .. }) => {
                    tracing::warn!(projector = self.name(), position = envelope.position, %message, "rebuild leaves out an event the view refuses, and its product's later events");
                    filter.blocked.insert(envelope.aggregate_id);
                }
                Err(error) => return Err(error.into()),
            }
        }
        next.advance(last).await?;
        Ok(last)
    }

    /// Acts on the rebuild, pause and resume requests operators made for this view (from any
    /// process: they are read from the store). A rebuild runs in the background.
    pub(super) async fn act_on_view_requests(&self) {
        let requests = match self.parking.take_view_requests(self.name()).await {
            Ok(requests) => requests,
            Err(error) => {
                tracing::debug!(projector = self.name(), %error, "cannot read view requests");
                return;
            }
        };
        for request in requests {
            tracing::info!(projector = self.name(), action = request.action.as_str(), by = %request.requested_by, "acting on an operator's request");
            match request.action {
                ViewAction::Pause => self.pause(),
                ViewAction::Resume => self.resume(),
                ViewAction::Rebuild => self.spawn_rebuild(),
            }
        }
    }

    /// Starts a rebuild in the background (nothing when one runs already).
    pub fn spawn_rebuild(&self) {
        let projector = self.clone();
        tokio::spawn(async move {
            if let Err(error) = projector.rebuild().await {
                tracing::warn!(projector = projector.name(), %error, "rebuild failed");
                projector.status.write().last_error = Some(format!("rebuild: {error}"));
            }
        });
    }

    /// Rebuilds the view when its code declares a newer version than the live generation was
    /// built with (a deploy that changed the projection).
    pub(super) async fn rebuild_if_outdated(&self) {
        let Some(generations) = self.projection.generations() else {
            return;
        };
        match generations.live().await {
            Ok(live) => {
                self.status.write().generation = live.generation;
                if live.version < generations.version() {
                    tracing::info!(
                        projector = self.name(),
                        built = live.version,
                        wanted = generations.version(),
                        "the view's version changed; rebuilding it beside the live one"
                    );
                    self.spawn_rebuild();
                }
            }
            Err(error) => {
                tracing::warn!(projector = self.name(), %error, "cannot read the view's generation")
            }
        }
    }
}
