//! Reads the Redis views.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::ProductStatus;
use redis_client::{RedisConfig, RedisConnection};
use uuid::Uuid;

use super::layout::{encode_member, index_key, member_id, StoredCategory};
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
        let position = PolledWatermark::spawn({
            let config = config.clone();
            let connection = connection.clone();
            let intact = intact.clone();
            move || poll_checkpoint(config.clone(), connection.clone(), intact.clone())
        });
        RedisReadModel {
            config,
            connection,
            position,
            intact,
        }
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
            .arg(self.config.key("checkpoint"))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(position.unwrap_or(0))
    }

    async fn documents(&self, ids: &[Uuid]) -> Result<Vec<Arc<ProductView>>, ReadModelError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.config.key(&format!("p:{id}")))
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

    /// Up to `count` members after `after` (exclusive) in the index.
    async fn members(
        &self,
        key: &str,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<String>, ReadModelError> {
        let start = match after {
            Some(member) => format!("({member}"),
            None => "-".to_owned(),
        };
        let mut connection = self.connection.clone();
        let (intact, members): (bool, Vec<String>) = redis::pipe()
            .cmd("EXISTS")
            .arg(self.config.key("intact"))
            .cmd("ZRANGE")
            .arg(key)
            .arg(start)
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(count)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Self::require_intact(intact)?;
        Ok(members)
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

/// Reads the checkpoint and the `intact` marker in one round trip; records the marker.
async fn poll_checkpoint(
    config: Arc<RedisConfig>,
    mut connection: RedisConnection,
    intact: Arc<AtomicBool>,
) -> Option<u64> {
    let read: Result<(Option<u64>, bool), _> = redis::pipe()
        .cmd("GET")
        .arg(config.key("checkpoint"))
        .cmd("EXISTS")
        .arg(config.key("intact"))
        .query_async(&mut connection)
        .await;
    let (checkpoint, marked) = read.ok()?;
    intact.store(marked, Ordering::SeqCst);
    Some(checkpoint.unwrap_or(0))
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
        let (intact, text): (bool, Option<String>) = redis::pipe()
            .cmd("EXISTS")
            .arg(self.config.key("intact"))
            .cmd("GET")
            .arg(self.config.key(&format!("p:{id}")))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Self::require_intact(intact)?;
        Ok((text.as_deref().map(decode).transpose()?, position))
    }

    async fn list(&self, query: &ListQuery, _at: MinPosition) -> Result<Page, ReadModelError> {
        let position = self.position();
        let key = index_key(&self.config, query.category.as_deref(), query.sort);
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
            let members = self.members(&key, after.as_deref(), wanted).await?;
            let exhausted = members.len() < wanted;
            scanned += members.len();
            after = members.last().cloned();
            let ids: Vec<Uuid> = members.iter().filter_map(|m| member_id(m)).collect();
            for product in self.documents(&ids).await? {
                // A document ahead of its index entry (written between our two reads) is
                // checked again here, so a page never shows a product out of its scope.
                if product.status == ProductStatus::Published
                    && query
                        .category
                        .as_ref()
                        .is_none_or(|category| *category == product.category)
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
        Ok(Page::cut(items, query, position))
    }

    async fn categories(
        &self,
        _at: MinPosition,
    ) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
        let position = self.position();
        let mut connection = self.connection.clone();
        let (intact, categories, counts): (bool, Vec<(String, String)>, Vec<(String, i64)>) =
            redis::pipe()
                .cmd("EXISTS")
                .arg(self.config.key("intact"))
                .cmd("HGETALL")
                .arg(self.config.key("categories"))
                .cmd("HGETALL")
                .arg(self.config.key("counts"))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
        Self::require_intact(intact)?;
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
