//! Product commands at constant cost: decided states kept in memory, snapshots in the store,
//! and the commands queued for one product decided one after another and appended together.
//!
//! - **State**: a product's decided state is cached here by id, with its version. A command
//!   decides on the cached state and appends with that version as the expected one, so the
//!   store's optimistic check is what proves the state current: another process's write makes
//!   the append a conflict, and the state is loaded again. A refusal (409, 412) appends
//!   nothing, so before answering one the state is checked against the store's newer events.
//! - **Loading** (a product not in the cache) reads its latest snapshot and the events after
//!   it. A snapshot is saved with the append every [`SNAPSHOT_EVERY`] versions, and right after
//!   a load that had to replay that many events (no snapshot yet, or one of an older format).
//! - **Batching**: each caller queues its command under the product's id and a task takes
//!   every command queued for that product, decides them in order on the state (each sees the
//!   effect of those before it), and appends all their events in one stream: one transaction
//!   for a flash sale of any number of buyers. Each caller still gets its own answer (its own
//!   version and position, or its own refusal).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use events::bus::EventBus;
use events::catalog_events::category_aggregate_id;
use events::store::{EventStore, StoreError, StreamAppend, UniqueClaim, REQUEST_CLAIM_SCOPE};
use events::values::Slug;
use events::{Envelope, EventMetadata};
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use super::{new_events, Accepted, CommandError};
use crate::aggregate::{DomainError, Product, PRODUCT_STATE_VERSION};
use crate::commands::ProductCommand;
use crate::idempotency::RequestClaim;

/// A snapshot is written whenever a product's version crosses a multiple of this.
pub const SNAPSHOT_EVERY: u64 = 100;
/// How many products' decided states one process keeps.
const CACHED_STATES: u64 = 200_000;
/// How many category slugs are remembered as existing (categories are never removed).
const CACHED_CATEGORIES: u64 = 10_000;
/// How often a batch is decided again after another process's write.
const MAX_ATTEMPTS: usize = 20;
/// At most this many commands are decided and appended together.
const MAX_BATCH: usize = 1_000;
const LOCK_STRIPES: usize = 4096;

/// One caller's command, waiting for its product's batch.
struct Queued {
    command: ProductCommand,
    if_match: Option<Vec<u64>>,
    metadata: EventMetadata,
    /// The claim its events take (a request with an `Idempotency-Key`).
    claim: Option<RequestClaim>,
    answer: oneshot::Sender<Result<Accepted, CommandError>>,
}

/// The products whose ids hash here: one batch at a time, and the commands waiting.
struct Stripe {
    running: tokio::sync::Mutex<()>,
    pending: parking_lot::Mutex<HashMap<Uuid, Vec<Queued>>>,
}

/// How one command of a batch came out.
enum Planned {
    /// Accepted, with this many events in the batch's stream.
    Events(usize),
    Refused(CommandError),
    /// An earlier attempt of the same request appended these events (its claim says so).
    Applied(Accepted),
    /// Another attempt of the same request earlier in the batch (the same claim): its answer.
    SameAs(usize),
}

/// What the append that took `claim` (scope [`REQUEST_CLAIM_SCOPE`]) answered, if an append
/// took it.
pub(super) async fn applied_by(
    store: &dyn EventStore,
    claim: &RequestClaim,
) -> Result<Option<Accepted>, CommandError> {
    let Some(claimed) = store.claimed(REQUEST_CLAIM_SCOPE, &claim.value).await? else {
        return Ok(None);
    };
    let position = claimed.position.ok_or_else(|| {
        CommandError::Corrupt("a request claim without the position of its append".into())
    })?;
    let envelope = store
        .read_all(position.saturating_sub(1), 1)
        .await?
        .into_iter()
        .find(|envelope| envelope.position == position)
        .ok_or_else(|| CommandError::Corrupt(format!("no event at position {position}")))?;
    Ok(Some(Accepted {
        id: claimed.aggregate_id,
        version: envelope.aggregate_version,
        position,
    }))
}

/// The write side of products (see the module's documentation).
pub struct ProductWriter {
    store: Arc<dyn EventStore>,
    bus: Option<Arc<dyn EventBus>>,
    states: moka::sync::Cache<Uuid, Product>,
    categories: moka::sync::Cache<String, ()>,
    stripes: Vec<Stripe>,
    snapshot_every: u64,
}

impl ProductWriter {
    pub fn new(store: Arc<dyn EventStore>, bus: Option<Arc<dyn EventBus>>) -> Self {
        ProductWriter {
            store,
            bus,
            states: moka::sync::Cache::new(CACHED_STATES),
            categories: moka::sync::Cache::new(CACHED_CATEGORIES),
            stripes: (0..LOCK_STRIPES)
                .map(|_| Stripe {
                    running: tokio::sync::Mutex::new(()),
                    pending: parking_lot::Mutex::new(HashMap::new()),
                })
                .collect(),
            snapshot_every: SNAPSHOT_EVERY,
        }
    }

    /// Snapshots every `every` versions instead of [`SNAPSHOT_EVERY`] (tests).
    pub fn with_snapshot_every(mut self, every: u64) -> Self {
        self.snapshot_every = every.max(1);
        self
    }

    fn stripe(&self, id: Uuid) -> &Stripe {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        &self.stripes[(hasher.finish() as usize) % LOCK_STRIPES]
    }

    pub(super) async fn publish(&self, envelopes: &[Envelope]) {
        let Some(bus) = &self.bus else { return };
        // The events are committed: a failed publish is caught up from the store by subscribers.
        if let Err(error) = bus.publish(envelopes).await {
            tracing::warn!(%error, "publish failed; subscribers will catch up from the store");
        }
    }

    /// Remembers a product's state right after this process wrote it (a create).
    pub(super) fn remember(&self, id: Uuid, product: Product) {
        self.states.insert(id, product);
    }

    /// Whether category `slug` exists; a category once seen is remembered (none is removed).
    pub(super) async fn category_exists(&self, slug: &Slug) -> Result<bool, CommandError> {
        if self.categories.contains_key(slug.as_str()) {
            return Ok(true);
        }
        let exists = !self
            .store
            .read_aggregate_after(category_aggregate_id(slug.as_str()), 0)
            .await?
            .is_empty();
        if exists {
            self.categories.insert(slug.to_string(), ());
        }
        Ok(exists)
    }

    /// 422 on `field` unless category `slug` exists.
    pub(super) async fn require_category(
        &self,
        field: &'static str,
        slug: &Slug,
    ) -> Result<(), CommandError> {
        if self.category_exists(slug).await? {
            return Ok(());
        }
        Err(CommandError::UnknownCategory {
            field,
            slug: slug.to_string(),
        })
    }

    /// Queues `command` for product `id` and waits for its answer. The batch runs in a task
    /// of its own, so a caller that goes away (a closed connection) never cancels the
    /// commands of the others decided with it.
    pub async fn execute(
        self: &Arc<Self>,
        id: Uuid,
        command: ProductCommand,
        if_match: Option<Vec<u64>>,
        mut metadata: EventMetadata,
        claim: Option<RequestClaim>,
    ) -> Result<Accepted, CommandError> {
        // The batch runs in another task: the events keep this request's trace context.
        metadata.traceparent = events::trace::current();
        let (answer, answered) = oneshot::channel();
        self.stripe(id)
            .pending
            .lock()
            .entry(id)
            .or_default()
            .push(Queued {
                command,
                if_match,
                metadata,
                claim,
                answer,
            });
        let writer = Arc::clone(self);
        let batch = tracing::debug_span!("command.batch", product_id = %id);
        tokio::spawn(async move { writer.run_queued(id).await }.instrument(batch));
        answered.await.unwrap_or_else(|_| {
            Err(CommandError::Store(StoreError::Unexpected(
                "the command's batch stopped before answering".into(),
            )))
        })
    }

    /// Takes the commands queued for `id` (none when an earlier task took them) and runs them.
    async fn run_queued(&self, id: Uuid) {
        let stripe = self.stripe(id);
        let _running = stripe.running.lock().await;
        let batch = {
            let mut pending = stripe.pending.lock();
            let Some(queued) = pending.get_mut(&id) else {
                return;
            };
            let batch: Vec<Queued> = if queued.len() > MAX_BATCH {
                queued.drain(..MAX_BATCH).collect()
            } else {
                std::mem::take(queued)
            };
            if queued.is_empty() {
                pending.remove(&id);
            }
            batch
        };
        if !batch.is_empty() {
            metrics::histogram!("catalog_command_batch_commands").record(batch.len() as f64);
            self.run_batch(id, batch).await;
        }
    }

    async fn run_batch(&self, id: Uuid, batch: Vec<Queued>) {
        match self.decide_and_append(id, &batch).await {
            Ok((planned, stored)) => {
                let mut stored = stored.iter();
                let mut answers: Vec<Result<Accepted, CommandError>> = Vec::new();
                for planned in planned {
                    let answer = match planned {
                        Planned::Refused(error) => Err(error),
                        Planned::Applied(accepted) => Ok(accepted),
                        Planned::SameAs(earlier) => answers[earlier].clone(),
                        Planned::Events(count) => match stored.by_ref().take(count).last() {
                            Some(last) => Ok(Accepted {
                                id,
                                version: last.aggregate_version,
                                position: last.position,
                            }),
                            None => Err(CommandError::Store(StoreError::Unexpected(
                                "the append returned fewer events than it was given".into(),
                            ))),
                        },
                    };
                    answers.push(answer);
                }
                for (queued, answer) in batch.into_iter().zip(answers) {
                    let _ = queued.answer.send(answer);
                }
            }
            Err(error) => {
                self.states.invalidate(&id);
                for queued in batch {
                    let _ = queued.answer.send(Err(error.clone()));
                }
            }
        }
    }

    /// Decides the batch on the current state and appends what it accepted; decides again on
    /// the new state when another process wrote first.
    async fn decide_and_append(
        &self,
        id: Uuid,
        batch: &[Queued],
    ) -> Result<(Vec<Planned>, Vec<Envelope>), CommandError> {
        // Whether `state` was read from the store by this batch (not taken from the cache).
        let (mut state, mut checked) = match self.states.get(&id) {
            Some(state) => (state, false),
            None => (self.load(id).await?, true),
        };
        // Requests whose earlier attempt was never answered: it may have appended.
        let mut applied = self.applied(batch, |claim| claim.retried).await?;
        for _attempt in 0..MAX_ATTEMPTS {
            let (planned, after, events) = self.decide(id, &state, batch, &applied).await;
            let refused = planned.iter().any(|p| matches!(p, Planned::Refused(_)));
            if refused && !checked {
                // A refusal writes nothing the store could check: make sure it is of the
                // current state.
                checked = true;
                let newer = self.store.read_aggregate_after(id, state.version).await?;
                if !newer.is_empty() {
                    state
                        .catch_up(&newer)
                        .map_err(|error| CommandError::Corrupt(error.to_string()))?;
                    continue;
                }
            }
            if events.is_empty() {
                if state.exists() {
                    self.states.insert(id, state);
                }
                return Ok((planned, Vec::new()));
            }
            let crossed =
                state.version / self.snapshot_every != after.version / self.snapshot_every;
            let unique_claims = batch
                .iter()
                .zip(&planned)
                .filter(|(_, planned)| matches!(planned, Planned::Events(count) if *count > 0))
                .filter_map(|(queued, _)| queued.claim.as_ref())
                .map(|claim| UniqueClaim {
                    scope: REQUEST_CLAIM_SCOPE.to_owned(),
                    value: claim.value.clone(),
                })
                .collect();
            let stream = StreamAppend {
                aggregate_id: id,
                expected_version: state.version,
                events,
                unique_claims,
                snapshot: crossed.then(|| after.snapshot(id)),
            };
            match self.store.append(vec![stream]).await {
                Ok(stored) => {
                    self.states.insert(id, after);
                    self.publish(&stored).await;
                    return Ok((planned, stored));
                }
                Err(StoreError::Conflict { .. }) => {
                    self.states.invalidate(&id);
                    state = self.load(id).await?;
                    checked = true;
                }
                Err(StoreError::UniqueViolation { scope, .. }) if scope == REQUEST_CLAIM_SCOPE => {
                    // Another attempt of one of these requests appended meanwhile.
                    applied = self.applied(batch, |_| true).await?;
                    self.states.invalidate(&id);
                    state = self.load(id).await?;
                    checked = true;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(CommandError::Contention)
    }

    /// The answers of the batch's requests (those `which` selects) that an earlier attempt
    /// appended, by their index in the batch.
    async fn applied(
        &self,
        batch: &[Queued],
        which: impl Fn(&RequestClaim) -> bool,
    ) -> Result<HashMap<usize, Accepted>, CommandError> {
        let mut applied = HashMap::new();
        for (index, queued) in batch.iter().enumerate() {
            let Some(claim) = queued.claim.as_ref().filter(|claim| which(claim)) else {
                continue;
            };
            if let Some(accepted) = applied_by(self.store.as_ref(), claim).await? {
                applied.insert(index, accepted);
            }
        }
        Ok(applied)
    }

    /// Each command of the batch in order, on the state the ones before it left: how it came
    /// out, the state after the accepted ones, and their events.
    async fn decide(
        &self,
        id: Uuid,
        state: &Product,
        batch: &[Queued],
        applied: &HashMap<usize, Accepted>,
    ) -> (Vec<Planned>, Product, Vec<events::NewEvent>) {
        let mut after = state.clone();
        let mut events = Vec::new();
        let mut planned = Vec::with_capacity(batch.len());
        // The first attempt of each request in the batch, by its claim.
        let mut attempts: HashMap<&str, usize> = HashMap::new();
        for (index, queued) in batch.iter().enumerate() {
            if let Some(accepted) = applied.get(&index) {
                planned.push(Planned::Applied(*accepted));
                continue;
            }
            if let Some(claim) = &queued.claim {
                if let Some(first) = attempts.get(claim.value.as_str()) {
                    planned.push(Planned::SameAs(*first));
                    continue;
                }
                attempts.insert(&claim.value, index);
            }
            match self.decide_one(&after, queued).await {
                Ok(decided) => {
                    events.extend(new_events(id, after.version, &decided, &queued.metadata));
                    for event in &decided {
                        after.apply(event);
                    }
                    after.version += decided.len() as u64;
                    planned.push(Planned::Events(decided.len()));
                }
                Err(error) => planned.push(Planned::Refused(error)),
            }
        }
        (planned, after, events)
    }

    async fn decide_one(
        &self,
        product: &Product,
        queued: &Queued,
    ) -> Result<Vec<events::CatalogEvent>, CommandError> {
        if !product.exists() {
            return Err(DomainError::NotFound.into());
        }
        if let Some(expected) = &queued.if_match {
            if !expected.contains(&product.version) {
                return Err(CommandError::VersionMismatch {
                    expected: expected.clone(),
                    current: product.version,
                });
            }
        }
        if let ProductCommand::ChangeDetails(change) = &queued.command {
            if let Some(category) = &change.category {
                self.require_category("category", category).await?;
            }
        }
        Ok(product.decide(&queued.command)?)
    }

    /// Writes a snapshot of product `id` when at least `min_events` events follow its latest
    /// one; whether it did.
    pub(super) async fn snapshot(&self, id: Uuid, min_events: u64) -> Result<bool, CommandError> {
        let (product, replayed) = self.replay(id).await?;
        if !product.exists() || replayed < min_events.max(1) {
            return Ok(false);
        }
        self.store.save_snapshot(product.snapshot(id)).await?;
        Ok(true)
    }

    /// Product `id`'s state from its latest snapshot and the events after it; saves a new
    /// snapshot when that meant replaying many events.
    pub(super) async fn load(&self, id: Uuid) -> Result<Product, CommandError> {
        let (product, replayed) = self.replay(id).await?;
        if replayed >= self.snapshot_every && product.exists() {
            if let Err(error) = self.store.save_snapshot(product.snapshot(id)).await {
                tracing::warn!(%error, product_id = %id, "cannot save a snapshot");
            }
        }
        Ok(product)
    }

    /// Product `id`'s state from its latest readable snapshot and the events after it, and how
    /// many events that replayed.
    async fn replay(&self, id: Uuid) -> Result<(Product, u64), CommandError> {
        let read = self
            .store
            .read_aggregate_state(id, PRODUCT_STATE_VERSION)
            .await?;
        let (mut product, events) = match read.snapshot.as_ref().and_then(Product::from_snapshot) {
            Some(product) => (product, read.events),
            // A snapshot this code cannot read: replay everything.
            None if read.snapshot.is_some() => {
                (Product::default(), self.store.read_aggregate(id).await?)
            }
            None => (Product::default(), read.events),
        };
        product
            .catch_up(&events)
            .map_err(|error| CommandError::Corrupt(error.to_string()))?;
        Ok((product, events.len() as u64))
    }
}

#[cfg(test)]
mod tests;
