//! The Redis views' keys and encodings (the table in the module documentation of
//! [`crate::redis`]), the invalidation message, and the bookkeeping keys every Redis view has
//! (its checkpoint and its `intact` marker).

use std::sync::Arc;

use redis_client::{RedisConfig, RedisConnection};
use serde::{Deserialize, Serialize};

use crate::read_model::view::{KeyPart, SortKey, SortOrder};
use crate::ProjectionError;

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

/// The pointer key: the generation of the Redis views readers see (missing: 1).
pub fn generation_key(config: &RedisConfig) -> String {
    config.key("generation")
}

/// The key of the view version the live generation was built with (missing: 1).
pub(crate) fn generation_version_key(config: &RedisConfig) -> String {
    config.key("generation:version")
}

/// The keys of one generation of the Redis views. Generation 1's are the names in the module
/// documentation of [`crate::redis`]; generation N > 1 puts `gN:` before each name, under the
/// same hash tag (so a switch, which sets the pointer key, is atomic on a cluster too).
#[derive(Debug, Clone)]
pub struct Keys {
    config: Arc<RedisConfig>,
    generation: u64,
}

impl Keys {
    pub fn new(config: Arc<RedisConfig>, generation: u64) -> Self {
        Keys { config, generation }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `name` in this generation.
    pub fn key(&self, name: &str) -> String {
        if self.generation <= 1 {
            self.config.key(name)
        } else {
            self.config.key(&format!("g{}:{name}", self.generation))
        }
    }

    /// The index of `category` (`None` = every product) in `sort` order.
    pub fn index(&self, category: Option<&str>, sort: SortOrder) -> String {
        match category {
            None => self.key(&format!("ix:all:{}", order_name(sort))),
            Some(slug) => self.key(&format!("ix:c:{slug}:{}", order_name(sort))),
        }
    }

    /// The patterns of this generation's keys that exist per product, category or index,
    /// and the names of its single keys: what dropping the generation deletes.
    pub(crate) fn all(&self) -> ([String; 4], [String; 4]) {
        (
            ["p:*", "v:*", "ix:*", "cv:*"].map(|pattern| self.key(pattern)),
            ["counts", "categories", "checkpoint", "intact"].map(|name| self.key(name)),
        )
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
    /// The W3C trace context of the projector's work that published it (when traces are
    /// exported): the query processes' invalidation joins that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Invalidation {
    /// Nothing changed but the checkpoint.
    pub fn checkpoint(position: u64) -> Self {
        Invalidation {
            position,
            product: None,
            scopes: Vec::new(),
            categories: false,
            traceparent: None,
        }
    }

    /// The category list changed (a category was created).
    pub fn categories(position: u64) -> Self {
        Invalidation {
            categories: true,
            ..Invalidation::checkpoint(position)
        }
    }
}

/// A category as the Redis view keeps it (its count lives in `counts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredCategory {
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) parent: Option<String>,
}

pub(crate) fn unavailable(error: redis::RedisError) -> ProjectionError {
    ProjectionError::Unavailable(format!("Redis: {error}"))
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

/// KEYS: 1 the fill marker, 2 the intact marker. Marks the view intact if its fill marker
/// survived (or it is intact already, as after a switch to a rebuilt generation).
const MARK_FILLED: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[2], 1)
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#;

/// Ends a fill begun by setting `filling` (with [`mark`]): marks `intact` unless the data was
/// lost meanwhile (the fill marker is gone with it); whether it marked.
pub(crate) async fn mark_filled(
    connection: &RedisConnection,
    filling: String,
    intact: String,
) -> Result<bool, redis::RedisError> {
    let mut connection = connection.clone();
    let marked: i64 = redis::Script::new(MARK_FILLED)
        .key(filling)
        .key(intact)
        .invoke_async(&mut connection)
        .await?;
    Ok(marked == 1)
}

/// What [`Projection::mark_intact`] answers when the view lost its data during its fill.
pub(crate) fn lost_during_fill() -> ProjectionError {
    ProjectionError::Unavailable(
        "the view lost its data again while it was filled; it is filled again".into(),
    )
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
