//! The query side's read path in the distributed mode, layer by layer:
//!
//! 1. **L1**, in this process (moka): product documents, whole listing pages, bestseller
//!    lists, the category list. A miss on one key is loaded once, however many requests wait
//!    for it (moka coalesces concurrent loads), so 1,000 concurrent misses make one query.
//! 2. **Redis** views (when `REDIS_URL` is set), kept by the Redis projector.
//! 3. **PostgreSQL** read model through the replica (`DATABASE_READ_URL`), and, when
//!    configured, the primary if the replica is down; otherwise 503 with `Retry-After`.
//!
//! Every call to Redis and PostgreSQL has a timeout and goes through a circuit breaker.
//!
//! # Freshness, made precise by events
//!
//! The Redis projector publishes, atomically with each event it applies, what changed (the
//! product, the listing scopes, the category list) and its checkpoint. This process
//! subscribes: it drops exactly those L1 entries and moves its *watermark* to that checkpoint.
//! An entry loaded from Redis while the subscription was live, and not touched by an
//! invalidation during its load, is therefore correct up to the watermark, and lives up to its
//! TTL (the safety net for a lost message). Anything else (loaded from PostgreSQL, or while the
//! subscription was down) is correct only at the position it was read at, and lives 2 s.
//!
//! `X-Min-Position`: the consistency middleware waits until [`CatalogReadModel::wait_for`]
//! (the watermark, or the replica's checkpoint when Redis is not in use) reaches the position,
//! and records it for the request ([`crate::consistency::required_position`]); an L1 entry is
//! used only if it is correct at that position, and a fallback to PostgreSQL waits for the
//! replica to reach it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::breaker::{Breaker, BreakerConfig};
use async_trait::async_trait;
use futures::StreamExt;
use moka::future::Cache;
use moka::Expiry;
use projectors::read_model::{
    CatalogReadModel, CategoryView, ListQuery, Page, ProductView, ReadModelError,
};
use projectors::redis::{invalidation_channel, Invalidation, RedisReadModel};
use redis_client::RedisConfig;
use tokio::sync::watch;
use uuid::Uuid;

use crate::consistency::required_position;

/// TTLs and timeouts of the layers.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    /// Product documents kept fresh by invalidations.
    pub product_ttl: Duration,
    /// Listing pages, bestsellers and categories kept fresh by invalidations.
    pub page_ttl: Duration,
    /// Entries that no invalidation stream watches over.
    pub unwatched_ttl: Duration,
    pub capacity: u64,
    pub redis_timeout: Duration,
    pub database_timeout: Duration,
    /// The longest a fallback read waits for the database to reach a required position.
    pub position_wait: Duration,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            product_ttl: Duration::from_secs(60),
            page_ttl: Duration::from_secs(120),
            unwatched_ttl: Duration::from_secs(2),
            capacity: 200_000,
            redis_timeout: Duration::from_millis(300),
            database_timeout: Duration::from_secs(2),
            position_wait: Duration::from_secs(2),
        }
    }
}

/// A cached answer and how far it can be trusted.
#[derive(Clone)]
struct Cached<T> {
    value: T,
    /// The position the layer that answered had reached before the read.
    position: u64,
    /// Loaded from Redis while invalidations were watched, none arriving during the load.
    watched: bool,
}

struct Ttl {
    watched: Duration,
    unwatched: Duration,
}

impl<K, T> Expiry<K, Cached<T>> for Ttl {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Cached<T>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(if value.watched {
            self.watched
        } else {
            self.unwatched
        })
    }
}

/// A listing page's cache key: its scope (for invalidation) and the whole query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    category: Option<String>,
    query: String,
}

type Bestsellers = Arc<Vec<Arc<ProductView>>>;

struct RedisLayer {
    model: Arc<RedisReadModel>,
    breaker: Breaker,
    config: Arc<RedisConfig>,
}

struct Database {
    model: Arc<dyn CatalogReadModel>,
    breaker: Breaker,
    name: &'static str,
}

/// The layered read model; see the module documentation.
pub struct LayeredReadModel {
    config: LayerConfig,
    redis: Option<RedisLayer>,
    replica: Database,
    primary: Option<Database>,
    products: Cache<Uuid, Cached<Option<Arc<ProductView>>>>,
    pages: Cache<PageKey, Cached<Arc<Page>>>,
    bestsellers: Cache<Option<String>, Cached<Bestsellers>>,
    categories: Cache<(), Cached<Arc<Vec<CategoryView>>>>,
    /// Checkpoint of the last invalidation seen.
    watermark: watch::Sender<u64>,
    /// Whether the invalidation subscription is up.
    live: AtomicBool,
    /// Bumped by every invalidation: a load that sees it change was raced by a write.
    invalidations: AtomicU64,
}

fn record(layer: &'static str, result: &'static str) {
    metrics::counter!("catalog_cache_requests_total", "layer" => layer, "result" => result)
        .increment(1);
}

impl LayeredReadModel {
    /// `replica` is what PostgreSQL reads go to; `primary`, when given, takes over while the
    /// replica is down; `redis` adds the Redis views and the invalidation subscription.
    pub fn new(
        config: LayerConfig,
        replica: Arc<dyn CatalogReadModel>,
        primary: Option<Arc<dyn CatalogReadModel>>,
        redis: Option<(Arc<RedisConfig>, Arc<RedisReadModel>)>,
    ) -> Arc<Self> {
        let ttl = |watched| Ttl {
            watched,
            unwatched: config.unwatched_ttl,
        };
        let model = Arc::new(LayeredReadModel {
            products: Cache::builder()
                .max_capacity(config.capacity)
                .expire_after(ttl(config.product_ttl))
                .build(),
            pages: Cache::builder()
                .max_capacity(config.capacity / 10)
                .expire_after(ttl(config.page_ttl))
                .support_invalidation_closures()
                .build(),
            bestsellers: Cache::builder()
                .max_capacity(1_000)
                .expire_after(ttl(config.page_ttl))
                .build(),
            categories: Cache::builder()
                .max_capacity(1)
                .expire_after(ttl(config.page_ttl))
                .build(),
            redis: redis.map(|(redis_config, model)| RedisLayer {
                model,
                breaker: Breaker::new("redis", BreakerConfig::default()),
                config: redis_config,
            }),
            replica: Database {
                model: replica,
                breaker: Breaker::new("read-replica", BreakerConfig::default()),
                name: "read-replica",
            },
            primary: primary.map(|model| Database {
                model,
                breaker: Breaker::new("primary", BreakerConfig::default()),
                name: "primary",
            }),
            watermark: watch::channel(0).0,
            live: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
            config,
        });
        if model.redis.is_some() {
            tokio::spawn(subscribe(Arc::downgrade(&model)));
        }
        model
    }

    fn is_live(&self) -> bool {
        self.redis.is_some() && self.live.load(Ordering::SeqCst)
    }

    fn watermark(&self) -> u64 {
        *self.watermark.borrow()
    }

    /// Whether a cached entry answers a request that needs position `required`.
    fn usable<T>(&self, cached: &Cached<T>, required: u64) -> bool {
        cached.position >= required
            || (cached.watched && self.is_live() && self.watermark() >= required)
    }

    fn drop_everything(&self) {
        self.products.invalidate_all();
        self.pages.invalidate_all();
        self.bestsellers.invalidate_all();
        self.categories.invalidate_all();
    }

    fn apply(&self, invalidation: &Invalidation) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        if let Some(id) = invalidation.product {
            self.products.invalidate_entries_if_supported(&id);
        }
        if !invalidation.scopes.is_empty() {
            let scopes = invalidation.scopes.clone();
            let dropped = self
                .pages
                .invalidate_entries_if(move |key, _| match &key.category {
                    None => true,
                    Some(category) => scopes.iter().any(|scope| scope == category),
                });
            if dropped.is_err() {
                self.pages.invalidate_all();
            }
            self.bestsellers.invalidate_all();
        }
        if invalidation.categories {
            self.categories.invalidate_all();
        }
        self.watermark.send_if_modified(|current| {
            let moved = invalidation.position > *current;
            *current = (*current).max(invalidation.position);
            moved
        });
    }

    /// Runs `read` on Redis when it can answer at `required`.
    async fn read_redis<T, F, Fut>(&self, required: u64, read: F) -> Option<Cached<T>>
    where
        F: FnOnce(Arc<RedisReadModel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ReadModelError>>,
    {
        let redis = self.redis.as_ref()?;
        if !redis.model.is_intact() {
            record("redis", "incomplete");
            return None;
        }
        if redis.model.position() < required
            && !redis
                .model
                .wait_for(required, self.config.position_wait)
                .await
        {
            return None;
        }
        let before = self.invalidations.load(Ordering::SeqCst);
        let live = self.is_live();
        let position = redis.model.position();
        match redis
            .breaker
            .call(self.config.redis_timeout, read(redis.model.clone()))
            .await
        {
            Ok(value) => {
                record("redis", "hit");
                let raced = self.invalidations.load(Ordering::SeqCst) != before;
                Some(Cached {
                    value,
                    position,
                    watched: live && !raced,
                })
            }
            Err(error) => {
                record("redis", "error");
                if !matches!(
                    error,
                    crate::breaker::BreakerError::Failed(ReadModelError::TooCostly)
                ) {
                    tracing::debug!(%error, "Redis view unavailable; reading PostgreSQL");
                }
                None
            }
        }
    }

    /// Runs `read` on the replica, or on the primary while the replica is down.
    async fn read_database<T, F, Fut>(
        &self,
        required: u64,
        read: F,
    ) -> Result<Cached<T>, ReadModelError>
    where
        F: Fn(Arc<dyn CatalogReadModel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ReadModelError>>,
    {
        let mut last_error = None;
        // The replica, then the primary when one is configured for a replica outage.
        for database in std::iter::once(&self.replica).chain(self.primary.iter()) {
            let model = database.model.clone();
            let reached = model.position() >= required
                || model.wait_for(required, self.config.position_wait).await;
            if !reached {
                last_error = Some(ReadModelError::Unavailable(format!(
                    "the {} has not reached position {required}",
                    database.name
                )));
                continue;
            }
            let position = model.position();
            match database
                .breaker
                .call(self.config.database_timeout, read(model))
                .await
            {
                Ok(value) => {
                    record(database.name, "hit");
                    return Ok(Cached {
                        value,
                        position,
                        watched: false,
                    });
                }
                Err(error) => {
                    record(database.name, "error");
                    tracing::warn!(database = database.name, %error, "read failed");
                    last_error = Some(ReadModelError::Unavailable(error.to_string()));
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| ReadModelError::Unavailable("no read model can answer".to_owned())))
    }

    async fn load_product(
        &self,
        id: Uuid,
        required: u64,
    ) -> Result<Cached<Option<Arc<ProductView>>>, ReadModelError> {
        if let Some(cached) = self
            .read_redis(required, |redis| async move {
                redis
                    .product_any_status(id)
                    .await
                    .map(|(product, _)| product)
            })
            .await
        {
            return Ok(cached);
        }
        self.read_database(required, |model| async move {
            model
                .product_any_status(id)
                .await
                .map(|(product, _)| product)
        })
        .await
    }

    async fn product_entry(
        &self,
        id: Uuid,
    ) -> Result<Cached<Option<Arc<ProductView>>>, ReadModelError> {
        let required = required_position();
        if let Some(cached) = self.products.get(&id).await {
            if self.usable(&cached, required) {
                record("l1", "hit");
                return Ok(cached);
            }
            self.products.invalidate(&id).await;
        }
        record("l1", "miss");
        self.products
            .try_get_with(id, self.load_product(id, required))
            .await
            .map_err(|error| ReadModelError::Unavailable(error.to_string()))
    }
}

/// `invalidate` without awaiting, for the subscriber's hot loop.
trait InvalidateNow<K> {
    fn invalidate_entries_if_supported(&self, key: &K);
}

impl<K, V> InvalidateNow<K> for Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn invalidate_entries_if_supported(&self, key: &K) {
        let cache = self.clone();
        let key = key.clone();
        // Dropping an entry is cheap; do it right away on the runtime.
        tokio::spawn(async move { cache.invalidate(&key).await });
    }
}

/// Keeps the invalidation subscription up while the model lives.
async fn subscribe(model: std::sync::Weak<LayeredReadModel>) {
    loop {
        let Some(strong) = model.upgrade() else {
            return;
        };
        let Some(redis) = strong.redis.as_ref() else {
            return;
        };
        let channel = invalidation_channel(&redis.config);
        let node = redis.config.nodes[0].clone();
        let model_reader = redis.model.clone();
        drop(strong);
        let connected = async {
            let client = redis::Client::open(node.as_str())?;
            let mut pubsub =
                tokio::time::timeout(redis_client::CONNECT_TIMEOUT, client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        redis::RedisError::from((redis::ErrorKind::Io, "pubsub connect timed out"))
                    })??;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let pubsub = match connected {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::debug!(%error, "cannot subscribe to cache invalidations; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Anything cached before this point may have missed invalidations.
        let checkpoint = model_reader.read_checkpoint().await.unwrap_or(0);
        {
            let Some(strong) = model.upgrade() else {
                return;
            };
            strong.drop_everything();
            strong.watermark.send_if_modified(|current| {
                let moved = checkpoint > *current;
                *current = (*current).max(checkpoint);
                moved
            });
            strong.live.store(true, Ordering::SeqCst);
            tracing::info!(checkpoint, "watching cache invalidations");
        }
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(strong) = model.upgrade() else {
                return;
            };
            match message
                .get_payload::<String>()
                .ok()
                .and_then(|text| serde_json::from_str::<Invalidation>(&text).ok())
            {
                Some(invalidation) => strong.apply(&invalidation),
                None => tracing::warn!("an invalidation message that cannot be read"),
            }
        }
        if let Some(strong) = model.upgrade() {
            strong.live.store(false, Ordering::SeqCst);
            strong.drop_everything();
            tracing::warn!("lost the cache invalidation subscription; resubscribing");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[async_trait]
impl CatalogReadModel for LayeredReadModel {
    async fn product(&self, id: Uuid) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let cached = self.product_entry(id).await?;
        let position = cached
            .position
            .max(if cached.watched { self.watermark() } else { 0 });
        Ok((
            cached
                .value
                .filter(|view| view.status == events::ProductStatus::Published),
            position,
        ))
    }

    async fn product_any_status(
        &self,
        id: Uuid,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let cached = self.product_entry(id).await?;
        let position = cached
            .position
            .max(if cached.watched { self.watermark() } else { 0 });
        Ok((cached.value, position))
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, ReadModelError> {
        let required = required_position();
        let key = PageKey {
            category: query.category.clone(),
            query: format!("{query:?}"),
        };
        if let Some(cached) = self.pages.get(&key).await {
            if self.usable(&cached, required) {
                record("l1", "hit");
                return Ok(Page::clone(&cached.value));
            }
            self.pages.invalidate(&key).await;
        }
        record("l1", "miss");
        let load = async {
            let query_for_redis = query.clone();
            if let Some(cached) = self
                .read_redis(required, |redis| async move {
                    redis.list(&query_for_redis).await.map(Arc::new)
                })
                .await
            {
                return Ok(cached);
            }
            self.read_database(required, |model| {
                let query = query.clone();
                async move { model.list(&query).await.map(Arc::new) }
            })
            .await
        };
        let cached = self
            .pages
            .try_get_with(key, load)
            .await
            .map_err(|error| ReadModelError::Unavailable(error.to_string()))?;
        let mut page = Page::clone(&cached.value);
        page.position = cached.position;
        Ok(page)
    }

    async fn bestsellers(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Arc<ProductView>>, u64), ReadModelError> {
        // Cached at the longest list shown (100) and cut to `limit`.
        const CACHED: usize = 100;
        let required = required_position();
        let key = category.map(str::to_owned);
        if let Some(cached) = self.bestsellers.get(&key).await {
            if self.usable(&cached, required) {
                record("l1", "hit");
                return Ok((
                    cached.value.iter().take(limit).cloned().collect(),
                    cached.position,
                ));
            }
            self.bestsellers.invalidate(&key).await;
        }
        record("l1", "miss");
        let owned = key.clone();
        let load = async move {
            let for_redis = owned.clone();
            if let Some(cached) = self
                .read_redis(required, |redis| async move {
                    redis
                        .bestsellers(for_redis.as_deref(), CACHED)
                        .await
                        .map(|(items, _)| Arc::new(items))
                })
                .await
            {
                return Ok(cached);
            }
            self.read_database(required, |model| {
                let category = owned.clone();
                async move {
                    model
                        .bestsellers(category.as_deref(), CACHED)
                        .await
                        .map(|(items, _)| Arc::new(items))
                }
            })
            .await
        };
        let cached = self
            .bestsellers
            .try_get_with(key, load)
            .await
            .map_err(|error| ReadModelError::Unavailable(error.to_string()))?;
        Ok((
            cached.value.iter().take(limit).cloned().collect(),
            cached.position,
        ))
    }

    async fn categories(&self) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
        let required = required_position();
        if let Some(cached) = self.categories.get(&()).await {
            if self.usable(&cached, required) {
                record("l1", "hit");
                return Ok((Vec::clone(&cached.value), cached.position));
            }
            self.categories.invalidate(&()).await;
        }
        record("l1", "miss");
        let load = async {
            if let Some(cached) = self
                .read_redis(required, |redis| async move {
                    redis.categories().await.map(|(items, _)| Arc::new(items))
                })
                .await
            {
                return Ok(cached);
            }
            self.read_database(required, |model| async move {
                model.categories().await.map(|(items, _)| Arc::new(items))
            })
            .await
        };
        let cached = self
            .categories
            .try_get_with((), load)
            .await
            .map_err(|error| ReadModelError::Unavailable(error.to_string()))?;
        Ok((Vec::clone(&cached.value), cached.position))
    }

    fn position(&self) -> u64 {
        if self.is_live() {
            self.watermark()
        } else {
            self.replica.model.position()
        }
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        if self.is_live() {
            let mut receiver = self.watermark.subscribe();
            let reached =
                tokio::time::timeout(timeout, receiver.wait_for(|current| *current >= position))
                    .await;
            matches!(reached, Ok(Ok(_)))
        } else {
            self.replica.model.wait_for(position, timeout).await
        }
    }
}
