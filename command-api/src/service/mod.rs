//! Command handling: load the aggregate, decide, append with optimistic concurrency, publish.

mod products;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use events::bus::EventBus;
use events::catalog_events::category_aggregate_id;
use events::store::{EventStore, StoreError, StreamAppend, UniqueClaim, REQUEST_CLAIM_SCOPE};
use events::values::Slug;
use events::{CatalogEvent, Envelope, EventMetadata, NewEvent, SEARCH_SETTINGS_ID};
use tokio::sync::Mutex;
use uuid::Uuid;
use web::Problem;

pub use products::{ProductWriter, SNAPSHOT_EVERY};

use crate::aggregate::{Category, DomainError, Product, SearchSettings};
use crate::commands::{CreateCategory, CreateProduct, ProductCommand, SetSynonyms};
use crate::idempotency::RequestClaim;

/// A command's answer: API.md's `{"id","version","position"}`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: Uuid,
    /// The aggregate's version after the command.
    pub version: u64,
    /// The global position of the command's last event: the read-your-writes token.
    pub position: u64,
}

/// `PUT /api/search/synonyms`'s answer: the search settings' `{"id","version","position"}`
/// and the synonyms as stored (lower-cased, trimmed, each word once per group).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct SynonymsAccepted {
    /// The search settings' aggregate id (always the same).
    pub id: Uuid,
    /// The settings' version: how many times the synonyms changed.
    pub version: u64,
    /// The position of the `SynonymsChanged` event that holds these synonyms: the
    /// read-your-writes token for `GET /api/search*`.
    pub position: u64,
    pub groups: Vec<Vec<String>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(
        "If-Match wanted version {} but the product is at version {current}",
        describe_versions(expected)
    )]
    VersionMismatch { expected: Vec<u64>, current: u64 },
    #[error("no category with slug {slug:?}")]
    UnknownCategory { field: &'static str, slug: String },
    #[error("a product with SKU {0:?} exists")]
    DuplicateSku(String),
    #[error("a category with slug {0:?} exists")]
    DuplicateCategory(String),
    #[error("too many concurrent writers to this product (or to the search settings); retry")]
    Contention,
    #[error("stored events cannot be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Self {
        let detail = error.to_string();
        match error {
            CommandError::Domain(DomainError::NotFound) => Problem::not_found("no such product"),
            CommandError::Domain(DomainError::Archived) => {
                Problem::conflict("product-archived", detail)
            }
            CommandError::Domain(
                DomainError::StockBelowZero { .. } | DomainError::InsufficientStock { .. },
            ) => Problem::conflict("insufficient-stock", detail),
            CommandError::Domain(DomainError::AlreadyPublished | DomainError::NotPublished) => {
                Problem::conflict("invalid-state", detail)
            }
            CommandError::Domain(DomainError::Overflow) => Problem::conflict("overflow", detail),
            CommandError::Domain(DomainError::StockAboveLimit { .. }) => {
                Problem::conflict("stock-above-limit", detail)
            }
            CommandError::Domain(DomainError::ImageAlreadyAdded) => {
                Problem::conflict("duplicate-image", detail)
            }
            CommandError::Domain(DomainError::TooManyImages) => {
                Problem::conflict("too-many-images", detail)
            }
            CommandError::Domain(DomainError::ImageNotFound) => {
                Problem::not_found("the product has no uploaded image with this id")
            }
            CommandError::VersionMismatch { .. } => Problem::precondition_failed(detail),
            CommandError::UnknownCategory { field, .. } => Problem::invalid_field(field, detail),
            CommandError::DuplicateSku(_) => Problem::conflict("duplicate-sku", detail),
            CommandError::DuplicateCategory(_) => Problem::conflict("duplicate-category", detail),
            CommandError::Contention => Problem::unavailable(1, detail),
            CommandError::Store(StoreError::Unavailable(_)) => {
                tracing::warn!(error = %detail, "event store unavailable");
                Problem::unavailable(1, "the event store is unavailable; retry shortly")
            }
            CommandError::Store(_) | CommandError::Corrupt(_) => Problem::internal_logged(&detail),
        }
    }
}

fn describe_versions(versions: &[u64]) -> String {
    match versions {
        [] => "none (only weak entity tags, which never match)".to_owned(),
        [one] => one.to_string(),
        many => format!(
            "one of {}",
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// How often a synonyms change is decided again after a concurrent one.
const MAX_ATTEMPTS: usize = 20;

/// Executes commands against the event store and hands the new envelopes to the bus.
pub struct CommandService {
    store: Arc<dyn EventStore>,
    /// Product commands: cached states, snapshots, per-product batches.
    products: Arc<ProductWriter>,
    /// Changes to the search settings queue up here (a rare, admin-only write).
    synonyms: Mutex<()>,
}

impl CommandService {
    /// `bus`: where committed envelopes go right after the append; `None` when the store
    /// writes an outbox and a relay publishes from it.
    pub fn new(store: Arc<dyn EventStore>, bus: Option<Arc<dyn EventBus>>) -> Self {
        Self::with_products(ProductWriter::new(store.clone(), bus), store)
    }

    /// With a product writer configured by the caller (tests: snapshots every few versions).
    pub fn with_products(products: ProductWriter, store: Arc<dyn EventStore>) -> Self {
        CommandService {
            store,
            products: Arc::new(products),
            synonyms: Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    async fn publish(&self, envelopes: &[Envelope]) {
        self.products.publish(envelopes).await;
    }

    /// 422 on `field` unless category `slug` exists.
    async fn require_category(&self, field: &'static str, slug: &Slug) -> Result<(), CommandError> {
        self.products.require_category(field, slug).await
    }

    /// Writes a snapshot of product `id` when it has at least `min_events` events after its
    /// latest one of the current format; whether it wrote one (never for other aggregates).
    pub async fn snapshot_product(&self, id: Uuid, min_events: u64) -> Result<bool, CommandError> {
        self.products.snapshot(id, min_events).await
    }

    /// Product `id`'s state as commands decide on it, loaded through its latest snapshot
    /// (not the cache): what `Product::from_history` of its whole history gives.
    pub async fn load_product(&self, id: Uuid) -> Result<Product, CommandError> {
        self.products.load(id).await
    }

    async fn append(&self, stream: StreamAppend) -> Result<Accepted, StoreError> {
        let id = stream.aggregate_id;
        let stored = self.store.append(vec![stream]).await?;
        self.publish(&stored).await;
        let last = stored
            .last()
            .ok_or_else(|| StoreError::Unexpected("append returned no events".into()))?;
        Ok(Accepted {
            id,
            version: last.aggregate_version,
            position: last.position,
        })
    }

    /// Creates a product after checking its category exists; the SKU is claimed atomically.
    pub async fn create_product(
        &self,
        command: CreateProduct,
        metadata: EventMetadata,
    ) -> Result<Accepted, CommandError> {
        self.create_product_claimed(command, metadata, None).await
    }

    /// [`Self::create_product`] for a request with an `Idempotency-Key`: the events take its
    /// claim, and a request an earlier attempt already created answers with that creation.
    #[tracing::instrument(name = "command.create_product", level = "debug", skip_all, fields(sku = %command.sku))]
    pub async fn create_product_claimed(
        &self,
        command: CreateProduct,
        metadata: EventMetadata,
        claim: Option<RequestClaim>,
    ) -> Result<Accepted, CommandError> {
        if let Some(claim) = claim.as_ref().filter(|claim| claim.retried) {
            if let Some(accepted) = products::applied_by(self.store.as_ref(), claim).await? {
                return Ok(accepted);
            }
        }
        self.require_category("category", &command.category).await?;
        let (mut stream, product) = product_stream(Uuid::now_v7(), &command, &[], &metadata)?;
        if let Some(claim) = &claim {
            // First: a retry whose first attempt committed is told so before the SKU is.
            stream.unique_claims.insert(
                0,
                UniqueClaim {
                    scope: REQUEST_CLAIM_SCOPE.to_owned(),
                    value: claim.value.clone(),
                },
            );
        }
        match self.append(stream).await {
            Err(StoreError::UniqueViolation { scope, .. }) if scope == REQUEST_CLAIM_SCOPE => {
                let claim = claim.as_ref().ok_or_else(|| {
                    CommandError::Corrupt("a request claim refused without one".into())
                })?;
                products::applied_by(self.store.as_ref(), claim)
                    .await?
                    .ok_or_else(|| CommandError::Corrupt("a refused claim has no holder".into()))
            }
            Err(StoreError::UniqueViolation { .. }) => {
                Err(CommandError::DuplicateSku(command.sku.into_string()))
            }
            Ok(accepted) => {
                self.products.remember(accepted.id, product);
                Ok(accepted)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Creates each product on its own, each with its own answer (a duplicate SKU or an
    /// unknown category fails only its product), all at once so that the store commits them
    /// in a few groups. Answers in the order given.
    pub async fn create_each(
        &self,
        products: Vec<CreateProduct>,
        metadata: EventMetadata,
    ) -> Vec<Result<Accepted, CommandError>> {
        // Categories first (each read once, then remembered), so that every create below
        // queues its append at once, in the order given.
        let categories: BTreeSet<&Slug> = products.iter().map(|create| &create.category).collect();
        for category in categories {
            let _ = self.products.category_exists(category).await;
        }
        let creates = products
            .into_iter()
            .map(|create| self.create_product(create, metadata.clone()));
        futures::future::join_all(creates).await
    }

    /// Creates many products in one transaction (seeding): all or nothing. Categories must
    /// exist; SKUs must be unique.
    pub async fn create_products(
        &self,
        products: Vec<CreateProduct>,
        metadata: EventMetadata,
    ) -> Result<Vec<Accepted>, CommandError> {
        let products = products
            .into_iter()
            .map(|command| (command, Vec::new()))
            .collect();
        self.create_products_with_history(products, metadata).await
    }

    /// Like [`Self::create_products`], each product followed by commands (demo sales, say),
    /// decided by the aggregate as they would be one by one. Answers the last event of each.
    pub async fn create_products_with_history(
        &self,
        products: Vec<(CreateProduct, Vec<ProductCommand>)>,
        metadata: EventMetadata,
    ) -> Result<Vec<Accepted>, CommandError> {
        let categories: BTreeSet<&Slug> = products
            .iter()
            .map(|(create, _)| &create.category)
            .collect();
        for category in categories {
            self.require_category("category", category).await?;
        }
        let streams = products
            .iter()
            .map(|(create, commands)| {
                product_stream(Uuid::now_v7(), create, commands, &metadata)
                    .map(|(stream, _)| stream)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stored = match self.store.append(streams).await {
            Err(StoreError::UniqueViolation { value, .. }) => {
                return Err(CommandError::DuplicateSku(value))
            }
            other => other?,
        };
        self.publish(&stored).await;
        // The last envelope of each product's stream.
        let mut accepted: Vec<Accepted> = Vec::new();
        for envelope in &stored {
            let answer = Accepted {
                id: envelope.aggregate_id,
                version: envelope.aggregate_version,
                position: envelope.position,
            };
            match accepted.last_mut() {
                Some(last) if last.id == envelope.aggregate_id => *last = answer,
                _ => accepted.push(answer),
            }
        }
        Ok(accepted)
    }

    /// Creates a category; its parent, when given, must exist.
    pub async fn create_category(
        &self,
        command: CreateCategory,
        metadata: EventMetadata,
    ) -> Result<Accepted, CommandError> {
        if let Some(parent) = &command.parent {
            self.require_category("parent", parent).await?;
        }
        let id = category_aggregate_id(command.slug.as_str());
        let stream = StreamAppend {
            aggregate_id: id,
            expected_version: 0,
            events: new_events(id, 0, &Category::create(&command), &metadata),
            unique_claims: Vec::new(),
            snapshot: None,
        };
        match self.append(stream).await {
            Err(StoreError::Conflict { .. }) => {
                Err(CommandError::DuplicateCategory(command.slug.into_string()))
            }
            other => Ok(other?),
        }
    }

    /// Replaces the search synonyms on the search settings' stream, appended with optimistic
    /// concurrency; a concurrent change is absorbed by deciding again on the new version (the
    /// last writer wins, as with any `PUT`). Synonyms equal to the current ones append nothing
    /// and answer the position of the event that set them.
    #[tracing::instrument(skip_all, fields(groups = command.synonyms.groups().len()))]
    pub async fn set_synonyms(
        &self,
        command: SetSynonyms,
        metadata: EventMetadata,
    ) -> Result<SynonymsAccepted, CommandError> {
        let id = SEARCH_SETTINGS_ID;
        let _queued = self.synonyms.lock().await;
        for _attempt in 0..MAX_ATTEMPTS {
            let history = self.store.read_aggregate(id).await?;
            let settings = SearchSettings::from_history(&history)
                .map_err(|error| CommandError::Corrupt(error.to_string()))?;
            let decided = settings.decide(&command);
            if decided.is_empty() {
                return Ok(SynonymsAccepted {
                    id,
                    version: settings.version,
                    position: settings.position,
                    groups: settings.synonyms,
                });
            }
            let stream = StreamAppend {
                aggregate_id: id,
                expected_version: settings.version,
                events: new_events(id, settings.version, &decided, &metadata),
                unique_claims: Vec::new(),
                snapshot: None,
            };
            match self.append(stream).await {
                Ok(accepted) => {
                    return Ok(SynonymsAccepted {
                        id,
                        version: accepted.version,
                        position: accepted.position,
                        groups: command.synonyms.into_strings(),
                    })
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(CommandError::Contention)
    }

    /// Runs `command` on product `id`. With `if_match`, the product must be at one of those
    /// versions (else 412); without, a concurrent writer's win is absorbed by deciding again on
    /// the new version. Commands queued for one product are decided together and appended in
    /// one transaction ([`ProductWriter`]).
    pub async fn execute(
        &self,
        id: Uuid,
        command: ProductCommand,
        if_match: Option<Vec<u64>>,
        metadata: EventMetadata,
    ) -> Result<Accepted, CommandError> {
        self.execute_claimed(id, command, if_match, metadata, None)
            .await
    }

    /// [`Self::execute`] for a request with an `Idempotency-Key`: its events take the claim,
    /// and a request an earlier attempt already applied answers with that attempt's events.
    #[tracing::instrument(name = "command", level = "debug", skip_all, fields(product_id = %id, command = command.name()))]
    pub async fn execute_claimed(
        &self,
        id: Uuid,
        command: ProductCommand,
        if_match: Option<Vec<u64>>,
        metadata: EventMetadata,
        claim: Option<RequestClaim>,
    ) -> Result<Accepted, CommandError> {
        self.products
            .execute(id, command, if_match, metadata, claim)
            .await
    }
}

/// `events` as the envelopes that follow version `after` of aggregate `id`.
fn new_events(
    id: Uuid,
    after: u64,
    events: &[CatalogEvent],
    metadata: &EventMetadata,
) -> Vec<NewEvent> {
    let now = Utc::now();
    events
        .iter()
        .enumerate()
        .map(|(offset, event)| {
            NewEvent::from_event(id, after + offset as u64 + 1, event, now, metadata.clone())
        })
        .collect()
}

/// A new product's stream: its creation, then `commands` decided one after another by the
/// aggregate (as they would be if sent one by one); the SKU is claimed with it. Also the
/// product's state after the stream.
fn product_stream(
    id: Uuid,
    create: &CreateProduct,
    commands: &[ProductCommand],
    metadata: &EventMetadata,
) -> Result<(StreamAppend, Product), DomainError> {
    let mut product = Product::default();
    let mut events = Vec::new();
    let created = Product::create(create);
    for event in &created {
        product.apply(event);
    }
    events.extend(created);
    for command in commands {
        let decided = product.decide(command)?;
        for event in &decided {
            product.apply(event);
        }
        events.extend(decided);
    }
    product.version = events.len() as u64;
    let stream = StreamAppend {
        aggregate_id: id,
        expected_version: 0,
        events: new_events(id, 0, &events, metadata),
        unique_claims: vec![UniqueClaim {
            scope: "sku".to_owned(),
            value: create.sku.to_string(),
        }],
        snapshot: None,
    };
    Ok((stream, product))
}
