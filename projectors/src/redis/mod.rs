//! The Redis views: product documents, a sorted index per scope (all products, and each
//! category) and per listing order, category counts, and the checkpoint — written by the
//! Redis projector ([`RedisProjection`]), read by query-api replicas ([`RedisReadModel`]).
//!
//! # Layout (every key under the view's hash tag, see [`redis_client`])
//!
//! | key | what |
//! | --- | --- |
//! | `p:<id>` | the product document (JSON), whatever its status |
//! | `v:<id>` | the product version the document is at |
//! | `ix:<scope>:<order>` | published products in one order: a sorted set ordered by member, each member the product's sort key encoded to sort as bytes, then its id; scope `all` or `c:<slug>` |
//! | `counts` | hash: category slug → published products |
//! | `categories` | hash: category slug → category JSON |
//! | `cv:<category id>` | the category version applied |
//! | `checkpoint` | every position up to it applied |
//! | `intact` | set once the projector caught the view up; missing after Redis lost its data, and then readers fall back to PostgreSQL while the projector rebuilds |
//!
//! Listings are one `ZRANGE … BYLEX` from the cursor's encoded key, then one `MGET`.
//!
//! # Atomic per event
//!
//! Each event is one Lua script: it checks the version the projector read (a concurrent
//! worker's write makes it return 0, and the projector retries), writes the document and the
//! index entries, moves the counts and the checkpoint, and publishes the invalidation on
//! [`invalidation_channel`] — all or nothing, so the checkpoint never covers a write that did
//! not happen, and a cache never misses an invalidation for a write that did.

mod reader;

use std::sync::Arc;

use async_trait::async_trait;
use events::{CatalogEvent, Envelope, ProductStatus};
use redis::Script;
use redis_client::{RedisConfig, RedisConnection};
use serde::{Deserialize, Serialize};

pub use reader::{RedisReadModel, FILTER_SCAN_BUDGET};

use crate::read_model::{evolve, Evolved, KeyPart, ProductView, SortKey, SortOrder};
use crate::{Applied, Projection, ProjectionError};

/// The sort orders with a Redis index, and the short name in their key.
pub const ORDERS: [(SortOrder, &str); 5] = [
    (SortOrder::Newest, "newest"),
    (SortOrder::PriceAsc, "price_asc"),
    (SortOrder::PriceDesc, "price_desc"),
    (SortOrder::Bestselling, "bestselling"),
    (SortOrder::Name, "name"),
];

fn order_name(sort: SortOrder) -> &'static str {
    ORDERS
        .iter()
        .find(|(order, _)| *order == sort)
        .map_or("newest", |(_, name)| name)
}

/// The index key of `scope` (`None` = every product) in `sort` order.
pub fn index_key(config: &RedisConfig, category: Option<&str>, sort: SortOrder) -> String {
    match category {
        None => config.key(&format!("ix:all:{}", order_name(sort))),
        Some(slug) => config.key(&format!("ix:c:{slug}:{}", order_name(sort))),
    }
}

/// A sort key as an index member: numbers as 16 hex digits with the sign bit flipped (so
/// byte order is numeric order), text as itself; then a separator and the id, so ties order
/// by id as every read model does.
pub fn encode_member(key: &SortKey) -> String {
    match &key.part {
        KeyPart::Int(value) => format!("{:016x}|{}", (*value as u64) ^ (1 << 63), key.id),
        KeyPart::Text(text) => format!("{text}\u{0}{}", key.id),
    }
}

/// The id at the end of an index member.
pub fn member_id(member: &str) -> Option<uuid::Uuid> {
    member
        .get(member.len().saturating_sub(36)..)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
}

/// The Pub/Sub channel on which every applied event announces what it changed.
pub fn invalidation_channel(config: &RedisConfig) -> String {
    format!("catalog:invalidate:{}", config.prefix)
}

/// What one event changed, as published on the invalidation channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invalidation {
    /// The projection's checkpoint once this event is applied: a cache that has seen this
    /// message and dropped what it names reflects at least this position.
    pub position: u64,
    /// The product whose document changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<uuid::Uuid>,
    /// Listing scopes that changed: `all` and category slugs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The category list (names, counts) changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub categories: bool,
}

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

/// A category as the Redis view keeps it (its count lives in `counts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCategory {
    slug: String,
    name: String,
    parent: Option<String>,
}

/// Writes the Redis views; see the module documentation.
pub struct RedisProjection {
    config: Arc<RedisConfig>,
    connection: RedisConnection,
    name: String,
    apply_product: Script,
    apply_category: Script,
    save_checkpoint: Script,
}

pub(crate) fn unavailable(error: redis::RedisError) -> ProjectionError {
    ProjectionError::Unavailable(format!("Redis: {error}"))
}

/// The index entries of a product: none unless it is published.
fn entries(config: &RedisConfig, product: &ProductView) -> Vec<(String, String)> {
    if product.status != ProductStatus::Published {
        return Vec::new();
    }
    let mut entries = Vec::with_capacity(ORDERS.len() * 2);
    for (sort, _) in ORDERS {
        let member = encode_member(&sort.key(product));
        entries.push((index_key(config, None, sort), member.clone()));
        entries.push((index_key(config, Some(&product.category), sort), member));
    }
    entries
}

impl RedisProjection {
    pub fn new(config: Arc<RedisConfig>, connection: RedisConnection, name: &str) -> Self {
        RedisProjection {
            config,
            connection,
            name: name.to_owned(),
            apply_product: Script::new(APPLY_PRODUCT),
            apply_category: Script::new(APPLY_CATEGORY),
            save_checkpoint: Script::new(SAVE_CHECKPOINT),
        }
    }

    fn message(&self, invalidation: &Invalidation) -> String {
        serde_json::to_string(invalidation).unwrap_or_default()
    }

    async fn save_checkpoint(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        let message = self.message(&Invalidation {
            position: checkpoint,
            product: None,
            scopes: Vec::new(),
            categories: false,
        });
        let mut connection = self.connection.clone();
        let _: i64 = self
            .save_checkpoint
            .key(self.config.key("checkpoint"))
            .arg(checkpoint)
            .arg(invalidation_channel(&self.config))
            .arg(message)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn apply_product(
        &self,
        envelope: &Envelope,
        event: CatalogEvent,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let id = envelope.aggregate_id;
        let mut connection = self.connection.clone();
        let current: Option<String> = redis::cmd("GET")
            .arg(self.config.key(&format!("p:{id}")))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let current: Option<ProductView> = match current {
            Some(text) => {
                Some(
                    serde_json::from_str(&text).map_err(|error| ProjectionError::Invalid {
                        position: envelope.position,
                        message: format!("stored product {id} is not a product: {error}"),
                    })?,
                )
            }
            None => None,
        };
        let product = match evolve(current.as_ref(), envelope, event) {
            Evolved::Changed(product) => product,
            Evolved::Unchanged(applied) => return Ok(applied),
        };
        let removed = current
            .as_ref()
            .map(|view| entries(&self.config, view))
            .unwrap_or_default();
        let added = entries(&self.config, &product);
        let was = current
            .as_ref()
            .filter(|view| view.status == ProductStatus::Published)
            .map(|view| view.category.clone());
        let now = (product.status == ProductStatus::Published).then(|| product.category.clone());
        let mut deltas = Vec::new();
        if was != now {
            if let Some(category) = &was {
                deltas.push((category.clone(), -1_i64));
            }
            if let Some(category) = &now {
                deltas.push((category.clone(), 1));
            }
        }
        let mut scopes = vec!["all".to_owned(), product.category.clone()];
        if let Some(old) = current.as_ref().map(|view| view.category.clone()) {
            if !scopes.contains(&old) {
                scopes.push(old);
            }
        }
        let message = self.message(&Invalidation {
            position: checkpoint,
            product: Some(id),
            scopes,
            categories: !deltas.is_empty(),
        });
        let document =
            serde_json::to_string(&product).map_err(|error| ProjectionError::Invalid {
                position: envelope.position,
                message: error.to_string(),
            })?;
        let mut invocation = self.apply_product.prepare_invoke();
        invocation
            .key(self.config.key(&format!("v:{id}")))
            .key(self.config.key(&format!("p:{id}")))
            .key(self.config.key("counts"))
            .key(self.config.key("checkpoint"));
        for (key, _) in removed.iter().chain(added.iter()) {
            invocation.key(key);
        }
        invocation
            .arg(current.as_ref().map_or(0, |view| view.version))
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
        let written: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        if written == 0 {
            return Err(ProjectionError::Unavailable(
                "a concurrent projector updated the product; retrying".into(),
            ));
        }
        Ok(Applied::Applied)
    }

    async fn apply_category(
        &self,
        envelope: &Envelope,
        created: events::CategoryCreated,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let mut connection = self.connection.clone();
        let version_key = self.config.key(&format!("cv:{}", envelope.aggregate_id));
        let applied: Option<u64> = redis::cmd("GET")
            .arg(&version_key)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let applied = applied.unwrap_or(0);
        if envelope.aggregate_version <= applied {
            return Ok(Applied::Duplicate);
        }
        if envelope.aggregate_version > applied + 1 {
            return Ok(Applied::Gap {
                applied_version: applied,
            });
        }
        let stored = StoredCategory {
            slug: created.slug.clone(),
            name: created.name,
            parent: created.parent,
        };
        let message = self.message(&Invalidation {
            position: checkpoint,
            product: None,
            scopes: Vec::new(),
            categories: true,
        });
        let written: i64 = self
            .apply_category
            .key(version_key)
            .key(self.config.key("categories"))
            .key(self.config.key("checkpoint"))
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
        if written == 0 {
            return Err(ProjectionError::Unavailable(
                "a concurrent projector created the category; retrying".into(),
            ));
        }
        Ok(Applied::Applied)
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
            Some(product_event) => {
                self.apply_product(envelope, product_event, checkpoint)
                    .await?
            }
            None => Applied::Duplicate,
        };
        if applied == Applied::Duplicate {
            self.save_checkpoint(checkpoint).await?;
        }
        Ok(applied)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        is_marked(&self.connection, self.config.key("intact"))
            .await
            .map_err(unavailable)
    }

    async fn mark_intact(&self) -> Result<(), ProjectionError> {
        mark(&self.connection, self.config.key("intact"))
            .await
            .map_err(unavailable)
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        read_position(&self.connection, self.config.key("checkpoint"))
            .await
            .map_err(unavailable)
    }
}

/// A view's checkpoint key: the position it holds, 0 when missing.
pub(crate) async fn read_position(
    connection: &RedisConnection,
    key: String,
) -> Result<u64, redis::RedisError> {
    let mut connection = connection.clone();
    let position: Option<u64> = redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await?;
    Ok(position.unwrap_or(0))
}

/// Whether a view's marker key (`intact`) is set: Redis lost it with the data otherwise.
pub(crate) async fn is_marked(
    connection: &RedisConnection,
    key: String,
) -> Result<bool, redis::RedisError> {
    let mut connection = connection.clone();
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut connection)
        .await
}

/// Sets a view's marker key.
pub(crate) async fn mark(
    connection: &RedisConnection,
    key: String,
) -> Result<(), redis::RedisError> {
    let mut connection = connection.clone();
    redis::cmd("SET")
        .arg(key)
        .arg(1)
        .query_async(&mut connection)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_members_sort_as_their_keys_do() {
        let ids = [uuid::Uuid::now_v7(), uuid::Uuid::now_v7()];
        let mut keys = Vec::new();
        for value in [i64::MIN, -5_000_000, -1, 0, 1, 99, 100, i64::MAX] {
            for id in ids {
                keys.push(SortKey {
                    part: KeyPart::Int(value),
                    id,
                });
            }
        }
        for text in ["", "a", "ab", "abc", "b", "é"] {
            for id in ids {
                keys.push(SortKey {
                    part: KeyPart::Text(text.to_owned()),
                    id,
                });
            }
        }
        let ints: Vec<&SortKey> = keys
            .iter()
            .filter(|k| matches!(k.part, KeyPart::Int(_)))
            .collect();
        let texts: Vec<&SortKey> = keys
            .iter()
            .filter(|k| matches!(k.part, KeyPart::Text(_)))
            .collect();
        for group in [ints, texts] {
            for pair in group.windows(2) {
                assert!(pair[0] < pair[1]);
                assert!(
                    encode_member(pair[0]) < encode_member(pair[1]),
                    "{:?} {:?}",
                    pair[0],
                    pair[1]
                );
                assert_eq!(member_id(&encode_member(pair[1])), Some(pair[1].id));
            }
        }
    }
}
