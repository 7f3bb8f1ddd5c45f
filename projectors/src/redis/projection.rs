//! Writes the Redis views: one Lua script per event (see "Atomic per event" in the module
//! documentation of [`crate::redis`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use events::{CatalogEvent, Envelope, ProductStatus};
use redis::Script;
use redis_client::{RedisConfig, RedisConnection};

use super::layout::{
    encode_member, generation_key, invalidation_channel, is_marked, lost_during_fill, mark,
    mark_filled, read_position, unavailable, Invalidation, Keys, StoredCategory, ORDERS,
};
use crate::read_model::evolve::{category_out_of_order, evolve, Evolved};
use crate::read_model::view::{count_deltas, ProductView};
use crate::{Applied, Projection, ProjectionError};

const APPLY_PRODUCT: &str = r#"
-- KEYS: 1 version, 2 document, 3 counts, 4 checkpoint, then `r` index keys to remove from,
-- then `a` index keys to add to.
-- ARGV: 1 expected version, 2 new version, 3 document, 4 checkpoint, 5 r, 6 a, then r members,
-- a members, the number of count deltas k, k (slug, delta) pairs, channel, message.
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
local r = tonumber(ARGV[5])
local a = tonumber(ARGV[6])
local i = 7
for j = 1, r do redis.call('ZREM', KEYS[4 + j], ARGV[i]); i = i + 1 end
for j = 1, a do redis.call('ZADD', KEYS[4 + r + j], 0, ARGV[i]); i = i + 1 end
local k = tonumber(ARGV[i]); i = i + 1
for j = 1, k do redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]); i = i + 2 end
if tonumber(ARGV[4]) > tonumber(redis.call('GET', KEYS[4]) or '0') then
  redis.call('SET', KEYS[4], ARGV[4])
end
redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
return 1
"#;

const APPLY_CATEGORY: &str = r#"
-- KEYS: 1 category version, 2 categories, 3 checkpoint.
-- ARGV: 1 expected version, 2 new version, 3 slug, 4 category JSON, 5 checkpoint, 6 channel,
-- 7 message.
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if tonumber(ARGV[5]) > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], ARGV[5])
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
"#;

const SAVE_CHECKPOINT: &str = r#"
-- KEYS: 1 checkpoint. ARGV: 1 checkpoint, 2 channel, 3 message.
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
"#;

/// Writes the Redis views; see the module documentation.
pub struct RedisProjection {
    pub(super) config: Arc<RedisConfig>,
    pub(super) connection: RedisConnection,
    pub(super) name: String,
    /// The generation this projection writes: the live one (0 until the pointer is read, and
    /// read again when the view lost its data), or one being rebuilt.
    pub(super) generation: AtomicU64,
    /// A fill from the store began ([`Projection::begin_fill`]) and has not been marked.
    filling: AtomicBool,
    apply_product: Script,
    apply_category: Script,
    save_checkpoint: Script,
}

/// The index entries of a product: none unless it is published.
pub(super) fn entries(keys: &Keys, product: &ProductView) -> Vec<(String, String)> {
    if product.status != ProductStatus::Published {
        return Vec::new();
    }
    let mut entries = Vec::with_capacity(ORDERS.len() * 2);
    for (sort, _) in ORDERS {
        let member = encode_member(&sort.key(product));
        entries.push((keys.index(None, sort), member.clone()));
        entries.push((keys.index(Some(&product.category), sort), member));
    }
    entries
}

/// What a product's change invalidates: its document, the listing scopes it was and is in,
/// and the category list when its counts moved.
pub fn product_invalidation(
    current: Option<&ProductView>,
    product: &ProductView,
    checkpoint: u64,
    counts_moved: bool,
) -> Invalidation {
    let mut scopes = vec!["all".to_owned(), product.category.clone()];
    if let Some(old) = current.map(|view| view.category.clone()) {
        if !scopes.contains(&old) {
            scopes.push(old);
        }
    }
    Invalidation {
        position: checkpoint,
        product: Some(product.id),
        scopes,
        categories: counts_moved,
        traceparent: None,
    }
}

impl RedisProjection {
    pub fn new(config: Arc<RedisConfig>, connection: RedisConnection, name: &str) -> Self {
        Self::writing(config, connection, name, 0)
    }

    /// The projection that writes `generation` (0: the live one, as the pointer says).
    pub(super) fn writing(
        config: Arc<RedisConfig>,
        connection: RedisConnection,
        name: &str,
        generation: u64,
    ) -> Self {
        RedisProjection {
            config,
            connection,
            name: name.to_owned(),
            generation: AtomicU64::new(generation),
            filling: AtomicBool::new(false),
            apply_product: Script::new(APPLY_PRODUCT),
            apply_category: Script::new(APPLY_CATEGORY),
            save_checkpoint: Script::new(SAVE_CHECKPOINT),
        }
    }

    /// The invalidation as published, with the current span's trace context when traces are
    /// exported.
    pub(super) fn message(&self, invalidation: &Invalidation) -> String {
        let encoded = match events::trace::current() {
            Some(traceparent) => serde_json::to_string(&Invalidation {
                traceparent: Some(traceparent),
                ..invalidation.clone()
            }),
            None => serde_json::to_string(invalidation),
        };
        encoded.unwrap_or_default()
    }

    /// The generation pointer as Redis holds it (missing: 1).
    pub(super) async fn read_generation(&self) -> Result<u64, ProjectionError> {
        let mut connection = self.connection.clone();
        let found: Option<u64> = redis::cmd("GET")
            .arg(generation_key(&self.config))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(found.unwrap_or(1))
    }

    /// The keys this projection writes.
    pub(super) async fn keys(&self) -> Result<Keys, ProjectionError> {
        let mut generation = self.generation.load(Ordering::SeqCst);
        if generation == 0 {
            generation = self.read_generation().await?;
            self.generation.store(generation, Ordering::SeqCst);
        }
        Ok(Keys::new(self.config.clone(), generation))
    }

    async fn save_checkpoint(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        let message = self.message(&Invalidation::checkpoint(checkpoint));
        let keys = self.keys().await?;
        let mut connection = self.connection.clone();
        let _: i64 = self
            .save_checkpoint
            .key(keys.key("checkpoint"))
            .arg(checkpoint)
            .arg(invalidation_channel(&self.config))
            .arg(message)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The product document as the view holds it, if any.
    async fn stored_product(
        &self,
        keys: &Keys,
        envelope: &Envelope,
    ) -> Result<Option<ProductView>, ProjectionError> {
        let id = envelope.aggregate_id;
        let mut connection = self.connection.clone();
        let text: Option<String> = redis::cmd("GET")
            .arg(keys.key(&format!("p:{id}")))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let Some(text) = text else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| ProjectionError::Invalid {
                position: envelope.position,
                message: format!("stored product {id} is not a product: {error}"),
            })
    }

    async fn apply_product(
        &self,
        envelope: &Envelope,
        event: CatalogEvent,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let keys = self.keys().await?;
        let current = self.stored_product(&keys, envelope).await?;
        let product = match evolve(current.as_ref(), envelope, event) {
            Evolved::Changed(product) => product,
            Evolved::Unchanged(applied) => return Ok(applied),
        };
        let document =
            serde_json::to_string(&product).map_err(|error| ProjectionError::Invalid {
                position: envelope.position,
                message: error.to_string(),
            })?;
        let written = self
            .write_product(&keys, current.as_ref(), &product, document, checkpoint)
            .await?;
        ProjectionError::unless_concurrent(written as u64, "updated the product")
    }

    /// Runs the product script: `current` is what the view held (the version it checks),
    /// `product` what it holds now. Returns 0 when a concurrent worker wrote first.
    async fn write_product(
        &self,
        keys: &Keys,
        current: Option<&ProductView>,
        product: &ProductView,
        document: String,
        checkpoint: u64,
    ) -> Result<i64, ProjectionError> {
        let id = product.id;
        let removed = current.map(|view| entries(keys, view)).unwrap_or_default();
        let added = entries(keys, product);
        let deltas = count_deltas(current, product);
        let message = self.message(&product_invalidation(
            current,
            product,
            checkpoint,
            !deltas.is_empty(),
        ));
        let mut invocation = self.apply_product.prepare_invoke();
        invocation
            .key(keys.key(&format!("v:{id}")))
            .key(keys.key(&format!("p:{id}")))
            .key(keys.key("counts"))
            .key(keys.key("checkpoint"));
        for (key, _) in removed.iter().chain(added.iter()) {
            invocation.key(key);
        }
        invocation
            .arg(current.map_or(0, |view| view.version))
            .arg(product.version)
            .arg(document)
            .arg(checkpoint)
            .arg(removed.len())
            .arg(added.len());
        for (_, member) in removed.iter().chain(added.iter()) {
            invocation.arg(member);
        }
        invocation.arg(deltas.len());
        for (category, delta) in &deltas {
            invocation.arg(category).arg(*delta);
        }
        invocation
            .arg(invalidation_channel(&self.config))
            .arg(message);
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn apply_category(
        &self,
        envelope: &Envelope,
        created: events::CategoryCreated,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let keys = self.keys().await?;
        let mut connection = self.connection.clone();
        let version_key = keys.key(&format!("cv:{}", envelope.aggregate_id));
        let applied: Option<u64> = redis::cmd("GET")
            .arg(&version_key)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let applied = applied.unwrap_or(0);
        if let Some(answer) = category_out_of_order(applied, envelope) {
            return Ok(answer);
        }
        let stored = StoredCategory {
            slug: created.slug.clone(),
            name: created.name,
            parent: created.parent,
        };
        let message = self.message(&Invalidation::categories(checkpoint));
        let written: i64 = self
            .apply_category
            .key(version_key)
            .key(keys.key("categories"))
            .key(keys.key("checkpoint"))
            .arg(applied)
            .arg(envelope.aggregate_version)
            .arg(&created.slug)
            .arg(serde_json::to_string(&stored).unwrap_or_default())
            .arg(checkpoint)
            .arg(invalidation_channel(&self.config))
            .arg(message)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        ProjectionError::unless_concurrent(written as u64, "created the category")
    }
}

#[async_trait]
impl Projection for RedisProjection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let applied = match crate::decode_event(envelope)? {
            Some(CatalogEvent::CategoryCreated(created)) => {
                self.apply_category(envelope, created, checkpoint).await?
            }
            // The search settings are the search projection's; only the checkpoint moves.
            Some(CatalogEvent::SynonymsChanged(_)) | None => Applied::Duplicate,
            Some(product_event) => {
                self.apply_product(envelope, product_event, checkpoint)
                    .await?
            }
        };
        if applied == Applied::Duplicate {
            self.save_checkpoint(checkpoint).await?;
        }
        Ok(applied)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        // A Redis that lost its data lost the pointer too: write what readers read.
        self.generation
            .store(self.read_generation().await?, Ordering::SeqCst);
        is_marked(&self.connection, self.keys().await?.key("intact"))
            .await
            .map_err(unavailable)
    }

    async fn mark_intact(&self) -> Result<(), ProjectionError> {
        let keys = self.keys().await?;
        if !self.filling.swap(false, Ordering::SeqCst) {
            return mark(&self.connection, keys.key("intact"))
                .await
                .map_err(unavailable);
        }
        match mark_filled(&self.connection, keys.key("filling"), keys.key("intact")).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(lost_during_fill()),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn begin_fill(&self) -> Result<(), ProjectionError> {
        mark(&self.connection, self.keys().await?.key("filling"))
            .await
            .map_err(unavailable)?;
        self.filling.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        read_position(&self.connection, self.keys().await?.key("checkpoint"))
            .await
            .map_err(unavailable)
    }

    fn generations(&self) -> Option<&dyn crate::generations::Generations> {
        Some(self)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        self.save_checkpoint(checkpoint).await
    }
}
