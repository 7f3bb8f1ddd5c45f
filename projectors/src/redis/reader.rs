//! Reads the Redis views.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::ProductStatus;
use redis_client::{RedisConfig, RedisConnection};
use uuid::Uuid;

use super::layout::{encode_member, generation_key, member_id, Keys, StoredCategory};
use crate::read_model::polled::PolledWatermark;
use crate::read_model::port::{CatalogReadModel, MinPosition, ReadModelError};
use crate::read_model::view::{CategoryView, ListQuery, Page, ProductView};

/// How many index entries a filtered listing may look at before it gives up (and the caller
/// asks the PostgreSQL read model, which has indexes for filters).
pub const FILTER_SCAN_BUDGET: usize = 2_000;
const SCAN_CHUNK: usize = 200;

/// Reads the views the Redis projector writes.
pub struct RedisReadModel {
    config: Arc<RedisConfig>,
    connection: RedisConnection,
    /// The checkpoint, polled together with the `intact` marker.
    position: PolledWatermark,
    /// Whether the view is complete (its `intact` marker exists), as last read.
    intact: Arc<AtomicBool>,
    /// The generation readers see, as last read (every read checks it in its round trip).
    generation: Arc<AtomicU64>,
}

fn unavailable(error: redis::RedisError) -> ReadModelError {
    ReadModelError::Unavailable(format!("Redis: {error}"))
}

fn decode(text: &str) -> Result<Arc<ProductView>, ReadModelError> {
    serde_json::from_str(text)
        .map(Arc::new)
        .map_err(|error| ReadModelError::Unavailable(format!("a stored product: {error}")))
}

impl RedisReadModel {
    pub fn new(config: Arc<RedisConfig>, connection: RedisConnection) -> Self {
        let intact = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(1));
        let position = PolledWatermark::spawn({
            let config = config.clone();
            let connection = connection.clone();
            let intact = intact.clone();
            let generation = generation.clone();
            move || {
                poll_checkpoint(
                    config.clone(),
                    connection.clone(),
                    intact.clone(),
                    generation.clone(),
                )
            }
        });
        RedisReadModel {
            config,
            connection,
            position,
            intact,
            generation,
        }
    }

    /// The keys of the generation last read.
    fn keys(&self) -> Keys {
        Keys::new(self.config.clone(), self.generation.load(Ordering::SeqCst))
    }

    /// The generation as a read's round trip found it (`None`: the pointer is missing, which
    /// is generation 1): true when it is `keys`'s, else records it for the next try.
    fn same_generation(&self, keys: &Keys, found: Option<u64>) -> bool {
        same_generation(&self.generation, keys, found)
    }

    /// Whether the view is complete: a Redis that restarted without its data is not, until
    /// the projector rebuilt it.
    pub fn is_intact(&self) -> bool {
        self.intact.load(Ordering::SeqCst)
    }

    /// The checkpoint, read now.
    pub async fn read_checkpoint(&self) -> Result<u64, ReadModelError> {
        let mut connection = self.connection.clone();
        let position: Option<u64> = redis::cmd("GET")
            .arg(self.keys().key("checkpoint"))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(position.unwrap_or(0))
    }

    async fn documents(
        &self,
        generation: &Keys,
        ids: &[Uuid],
    ) -> Result<Vec<Arc<ProductView>>, ReadModelError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| generation.key(&format!("p:{id}")))
            .collect();
        let mut connection = self.connection.clone();
        let texts: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        texts
            .into_iter()
            .flatten()
            .map(|text| decode(&text))
            .collect()
    }

    /// The next members after `after` (exclusive) of the union of the indexes `keys`, in
    /// order and distinct, and whether the union has no more after them.
    ///
    /// Each index gives up to `count` members in one round trip. The merged members are
    /// certain only up to the smallest last member among the indexes that gave a full
    /// `count` (one of those may hold more members below another's last): the answer stops
    /// there, so a next call from its last member neither skips nor repeats one. It is never
    /// shorter than `count` unless the union is exhausted.
    /// `None` when the generation moved since `generation` was read (the caller starts again
    /// with the new one).
    async fn members(
        &self,
        generation: &Keys,
        keys: &[String],
        after: Option<&str>,
        count: usize,
    ) -> Result<Option<(Vec<String>, bool)>, ReadModelError> {
        let start = match after {
            Some(member) => format!("({member}"),
            None => "-".to_owned(),
        };
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(generation_key(&self.config));
        pipe.cmd("EXISTS").arg(generation.key("intact"));
        for key in keys {
            pipe.cmd("ZRANGE")
                .arg(key)
                .arg(&start)
                .arg("+")
                .arg("BYLEX")
                .arg("LIMIT")
                .arg(0)
                .arg(count);
        }
        let mut connection = self.connection.clone();
        let replies: Vec<redis::Value> = pipe
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let mut replies = replies.into_iter();
        let found: Option<u64> = parse_reply(replies.next())?;
        if !self.same_generation(generation, found) {
            return Ok(None);
        }
        let intact: bool = parse_reply(replies.next())?;
        Self::require_intact(intact)?;
        let ranges = replies
            .map(|reply| parse_reply::<Vec<String>>(Some(reply)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(merge_ranges(ranges, count)))
    }

    /// Every read checks, in the same round trip, that the view is complete: a Redis that
    /// restarted empty must not answer "no such product".
    fn require_intact(intact: bool) -> Result<(), ReadModelError> {
        if intact {
            Ok(())
        } else {
            Err(ReadModelError::Unavailable(
                "the Redis view is incomplete (being rebuilt)".to_owned(),
            ))
        }
    }
}

/// One reply of a pipeline as `T`; a missing or malformed one makes the view unavailable.
fn parse_reply<T: redis::FromRedisValue>(reply: Option<redis::Value>) -> Result<T, ReadModelError> {
    let reply = reply.ok_or_else(|| {
        ReadModelError::Unavailable("Redis: a pipeline reply is missing".to_owned())
    })?;
    redis::from_redis_value(reply)
        .map_err(|error| ReadModelError::Unavailable(format!("Redis: a reply: {error}")))
}

/// Merges ranges read from several indexes (each in member order, each asked for up to
/// `count` members after one same point) into the members certain to come next in their
/// union, and whether the union is exhausted; see [`RedisReadModel::members`].
fn merge_ranges(ranges: Vec<Vec<String>>, count: usize) -> (Vec<String>, bool) {
    // The smallest last member of a full range: beyond it, that range's next members
    // (not read) could come before what the other ranges gave.
    let bound = ranges
        .iter()
        .filter(|range| range.len() >= count)
        .filter_map(|range| range.last())
        .min()
        .cloned();
    let mut merged: Vec<String> = ranges
        .into_iter()
        .flatten()
        .filter(|member| bound.as_ref().is_none_or(|bound| member <= bound))
        .collect();
    merged.sort();
    merged.dedup();
    (merged, bound.is_none())
}

/// Whether the pointer `found` in a round trip names `keys`'s generation (a missing pointer is
/// generation 1); when not, records it in `last_seen` for the next try.
fn same_generation(last_seen: &AtomicU64, keys: &Keys, found: Option<u64>) -> bool {
    let found = found.unwrap_or(1);
    if found == keys.generation() {
        return true;
    }
    last_seen.store(found, Ordering::SeqCst);
    false
}

/// Reads the generation pointer, and the checkpoint and the `intact` marker of the generation
/// last seen, in one round trip (again when the pointer moved); records the marker and the
/// generation.
async fn poll_checkpoint(
    config: Arc<RedisConfig>,
    mut connection: RedisConnection,
    intact: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
) -> Option<u64> {
    for _ in 0..2 {
        let keys = Keys::new(config.clone(), generation.load(Ordering::SeqCst));
        let read: Result<(Option<u64>, Option<u64>, bool), _> = redis::pipe()
            .cmd("GET")
            .arg(generation_key(&config))
            .cmd("GET")
            .arg(keys.key("checkpoint"))
            .cmd("EXISTS")
            .arg(keys.key("intact"))
            .query_async(&mut connection)
            .await;
        let (found, checkpoint, marked) = read.ok()?;
        if !same_generation(&generation, &keys, found) {
            continue;
        }
        intact.store(marked, Ordering::SeqCst);
        return Some(checkpoint.unwrap_or(0));
    }
    None
}

#[async_trait]
impl CatalogReadModel for RedisReadModel {
    async fn product(
        &self,
        id: Uuid,
        at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let (product, position) = self.product_any_status(id, at).await?;
        Ok((
            product.filter(|view| view.status == ProductStatus::Published),
            position,
        ))
    }

    async fn product_any_status(
        &self,
        id: Uuid,
        _at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let position = self.position();
        let mut connection = self.connection.clone();
        loop {
            let keys = self.keys();
            let (found, intact, text): (Option<u64>, bool, Option<String>) = redis::pipe()
                .cmd("GET")
                .arg(generation_key(&self.config))
                .cmd("EXISTS")
                .arg(keys.key("intact"))
                .cmd("GET")
                .arg(keys.key(&format!("p:{id}")))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if !self.same_generation(&keys, found) {
                continue;
            }
            Self::require_intact(intact)?;
            return Ok((text.as_deref().map(decode).transpose()?, position));
        }
    }

    async fn list(&self, query: &ListQuery, _at: MinPosition) -> Result<Page, ReadModelError> {
        let position = self.position();
        loop {
            if let Some(page) = self.list_in(&self.keys(), query, position).await? {
                return Ok(page);
            }
        }
    }

    async fn categories(
        &self,
        _at: MinPosition,
    ) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
        let position = self.position();
        let mut connection = self.connection.clone();
        let (categories, counts) = loop {
            let keys = self.keys();
            let (found, intact, categories, counts): (
                Option<u64>,
                bool,
                Vec<(String, String)>,
                Vec<(String, i64)>,
            ) = redis::pipe()
                .cmd("GET")
                .arg(generation_key(&self.config))
                .cmd("EXISTS")
                .arg(keys.key("intact"))
                .cmd("HGETALL")
                .arg(keys.key("categories"))
                .cmd("HGETALL")
                .arg(keys.key("counts"))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if self.same_generation(&keys, found) {
                Self::require_intact(intact)?;
                break (categories, counts);
            }
        };
        let counts: std::collections::HashMap<String, i64> = counts.into_iter().collect();
        let mut views: Vec<CategoryView> = categories
            .into_iter()
            .filter_map(|(slug, json)| {
                let stored: StoredCategory = serde_json::from_str(&json).ok()?;
                Some(CategoryView {
                    product_count: counts.get(&slug).copied().unwrap_or(0).max(0) as u64,
                    slug: stored.slug,
                    name: stored.name,
                    parent: stored.parent,
                })
            })
            .collect();
        views.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok((views, position))
    }

    fn position(&self) -> u64 {
        self.position.current()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.position.wait_for(position, timeout).await
    }
}

impl RedisReadModel {
    /// A listing from generation `generation`; `None` when the generation moved meanwhile.
    async fn list_in(
        &self,
        generation: &Keys,
        query: &ListQuery,
        position: u64,
    ) -> Result<Option<Page>, ReadModelError> {
        let keys: Vec<String> = if query.categories.is_empty() {
            vec![generation.index(None, query.sort)]
        } else {
            query
                .categories
                .iter()
                .map(|category| generation.index(Some(category), query.sort))
                .collect()
        };
        let mut after = query.after.as_ref().map(encode_member);
        let filtered = query.is_filtered();
        let mut items = Vec::with_capacity(query.limit + 1);
        let mut scanned = 0;
        loop {
            let wanted = if filtered {
                SCAN_CHUNK
            } else {
                query.limit + 1 - items.len()
            };
            let Some((members, exhausted)) = self
                .members(generation, &keys, after.as_deref(), wanted)
                .await?
            else {
                return Ok(None);
            };
            scanned += members.len();
            after = members.last().cloned();
            let ids: Vec<Uuid> = members.iter().filter_map(|m| member_id(m)).collect();
            for product in self.documents(generation, &ids).await? {
                // A document ahead of its index entry (written between our two reads) is
                // checked again here, so a page never shows a product out of its scope.
                if product.status == ProductStatus::Published
                    && query.in_categories(&product)
                    && query.matches(&product)
                {
                    items.push(product);
                    if items.len() > query.limit {
                        break;
                    }
                }
            }
            if items.len() > query.limit || exhausted {
                break;
            }
            if scanned >= FILTER_SCAN_BUDGET {
                return Err(ReadModelError::TooCostly);
            }
        }
        Ok(Some(Page::cut(items, query, position)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::merge_ranges;

    /// What `ZRANGE key (after + BYLEX LIMIT 0 count` answers on `index`.
    fn zrange(index: &BTreeSet<String>, after: Option<&String>, count: usize) -> Vec<String> {
        index
            .iter()
            .filter(|member| after.is_none_or(|after| *member > after))
            .take(count)
            .cloned()
            .collect()
    }

    #[test]
    fn members_beyond_a_full_range_s_last_wait_for_the_next_read() {
        let ranges = vec![
            vec!["a".to_owned(), "b".to_owned()],
            vec!["c".to_owned()],
            vec!["a2".to_owned(), "z".to_owned()],
        ];
        let (merged, exhausted) = merge_ranges(ranges, 2);
        assert_eq!(merged, ["a", "a2", "b"]);
        assert!(!exhausted);
    }

    #[test]
    fn short_ranges_everywhere_exhaust_the_union() {
        let ranges = vec![vec!["b".to_owned()], vec!["a".to_owned(), "b".to_owned()]];
        assert_eq!(
            merge_ranges(ranges, 3),
            (vec!["a".into(), "b".into()], true)
        );
    }

    proptest! {
        /// Reading the union chunk by chunk from each answer's last member gives every member
        /// of every index once, in order.
        #[test]
        fn chunked_reads_of_a_union_give_each_member_once_in_order(
            indexes in prop::collection::vec(prop::collection::btree_set("[a-e]{1,3}", 0..12), 1..5),
            count in 1_usize..6,
        ) {
            let expected: BTreeSet<String> = indexes.iter().flatten().cloned().collect();
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            for _ in 0..=expected.len() {
                let ranges = indexes.iter().map(|index| zrange(index, after.as_ref(), count)).collect();
                let (members, exhausted) = merge_ranges(ranges, count);
                prop_assert!(exhausted || members.len() >= count);
                after = members.last().cloned().or(after);
                seen.extend(members);
                if exhausted {
                    break;
                }
            }
            prop_assert_eq!(seen, expected.into_iter().collect::<Vec<_>>());
        }
    }
}
