//! Reads the Redis views.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::ProductStatus;
use redis_client::{RedisConfig, RedisConnection};
use tokio::sync::watch;
use uuid::Uuid;

use super::{encode_member, index_key, member_id, StoredCategory};
use crate::read_model::{
    CatalogReadModel, CategoryView, Cursor, ListQuery, Page, ProductView, ReadModelError, SortOrder,
};

/// How many index entries a filtered listing may look at before it gives up (and the caller
/// asks the PostgreSQL read model, which has indexes for filters).
pub const FILTER_SCAN_BUDGET: usize = 2_000;
const SCAN_CHUNK: usize = 200;

/// Reads the views the Redis projector writes.
pub struct RedisReadModel {
    config: Arc<RedisConfig>,
    connection: RedisConnection,
    position: watch::Sender<u64>,
    /// Whether the view is complete (its `intact` marker exists), as last read.
    intact: Arc<std::sync::atomic::AtomicBool>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<tokio::sync::Notify>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Drop for RedisReadModel {
    fn drop(&mut self) {
        self.refresher.abort();
    }
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
        let (position, _) = watch::channel(0);
        let waiters = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(tokio::sync::Notify::new());
        let intact = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refresher = tokio::spawn(refresh_position(
            config.clone(),
            connection.clone(),
            position.clone(),
            intact.clone(),
            waiters.clone(),
            wake.clone(),
        ));
        RedisReadModel {
            config,
            connection,
            position,
            intact,
            waiters,
            wake,
            refresher,
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

    fn matches(query: &ListQuery, product: &ProductView) -> bool {
        if let Some(brand) = &query.brand {
            let same = product
                .brand
                .as_deref()
                .is_some_and(|own| own.to_lowercase() == brand.to_lowercase());
            if !same {
                return false;
            }
        }
        if query.min_price.is_some_and(|min| product.price_cents < min) {
            return false;
        }
        if query.max_price.is_some_and(|max| product.price_cents > max) {
            return false;
        }
        !(query.in_stock && product.stock <= 0)
    }

    fn is_filtered(query: &ListQuery) -> bool {
        query.brand.is_some()
            || query.min_price.is_some()
            || query.max_price.is_some()
            || query.in_stock
    }
}

async fn refresh_position(
    config: Arc<RedisConfig>,
    connection: RedisConnection,
    position: watch::Sender<u64>,
    intact: Arc<std::sync::atomic::AtomicBool>,
    waiters: Arc<AtomicUsize>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        let mut connection = connection.clone();
        let read: Result<(Option<u64>, bool), _> = redis::pipe()
            .cmd("GET")
            .arg(config.key("checkpoint"))
            .cmd("EXISTS")
            .arg(config.key("intact"))
            .query_async(&mut connection)
            .await;
        if let Ok((read, marked)) = read {
            intact.store(marked, Ordering::SeqCst);
            let read = read.unwrap_or(0);
            position.send_if_modified(|current| {
                let moved = read > *current;
                *current = (*current).max(read);
                moved
            });
        }
        let pause = if waiters.load(Ordering::Relaxed) > 0 {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(100)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = wake.notified() => {}
        }
    }
}

#[async_trait]
impl CatalogReadModel for RedisReadModel {
    async fn product(&self, id: Uuid) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let (product, position) = self.product_any_status(id).await?;
        Ok((
            product.filter(|view| view.status == ProductStatus::Published),
            position,
        ))
    }

    async fn product_any_status(
        &self,
        id: Uuid,
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

    async fn list(&self, query: &ListQuery) -> Result<Page, ReadModelError> {
        let position = self.position();
        let key = index_key(&self.config, query.category.as_deref(), query.sort);
        let mut after = query.after.as_ref().map(encode_member);
        let filtered = Self::is_filtered(query);
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
                    && Self::matches(query, &product)
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
        let next_cursor = if items.len() > query.limit {
            items.truncate(query.limit);
            items.last().map(|last| Cursor {
                sort: query.sort,
                after: query.sort.key(last),
            })
        } else {
            None
        };
        Ok(Page {
            items,
            next_cursor,
            position,
        })
    }

    async fn bestsellers(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Arc<ProductView>>, u64), ReadModelError> {
        let page = self
            .list(&ListQuery {
                category: category.map(str::to_owned),
                brand: None,
                min_price: None,
                max_price: None,
                in_stock: false,
                sort: SortOrder::Bestselling,
                limit,
                after: None,
            })
            .await?;
        Ok((page.items, page.position))
    }

    async fn categories(&self) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
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
        *self.position.borrow()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        if self.position() >= position {
            return true;
        }
        self.waiters.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        let mut receiver = self.position.subscribe();
        let reached =
            tokio::time::timeout(timeout, receiver.wait_for(|current| *current >= position)).await;
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        matches!(reached, Ok(Ok(_)))
    }
}
