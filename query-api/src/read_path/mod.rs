//! The query side's read path in the distributed mode, layer by layer:
//!
//! 1. **L1** (`l1.rs`), in this process (moka): product documents, whole listing pages,
//!    bestseller lists, the category list. A miss on one key is loaded once, however many
//!    requests wait for it (moka coalesces concurrent loads), so 1,000 concurrent misses make
//!    one query.
//! 2. **Redis** views (`redis.rs`, when `REDIS_URL` is set), kept by the Redis projector.
//! 3. **PostgreSQL** read model (`database.rs`) through the replica (`DATABASE_READ_URL`), and,
//!    when configured, the primary if the replica is down; otherwise 503 with `Retry-After`.
//!
//! Every call to Redis and PostgreSQL has a timeout and goes through a circuit breaker
//! ([`breaker`]). Every read goes through one function, `LayeredReadModel::read_through`:
//! L1, else Redis, else PostgreSQL, and the answer cached.
//!
//! # Freshness, made precise by events
//!
//! The Redis projector publishes, atomically with each event it applies, what changed (the
//! product, the listing scopes, the category list) and its checkpoint. This process
//! subscribes (`invalidations.rs`): it drops exactly those L1 entries and moves its
//! *watermark* to that checkpoint. An entry loaded from Redis while the subscription was live,
//! and not touched by an invalidation during its load, is therefore correct up to the
//! watermark, and lives up to its TTL (the safety net for a lost message). Anything else
//! (loaded from PostgreSQL, or while the subscription was down) is correct only at the
//! position it was read at, and lives 2 s.
//!
//! `X-Min-Position`: the consistency middleware waits until [`CatalogReadModel::wait_for`]
//! (the watermark, or the replica's checkpoint when Redis is not in use) reaches the position,
//! and the handler passes it to every read as its [`MinPosition`]; an L1 entry is used only if
//! it is correct at that position, and a fallback to PostgreSQL waits for the replica to
//! reach it.

pub mod breaker;
mod database;
mod invalidations;
mod l1;
mod redis;
pub mod stale;

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use projectors::read_model::{
    CatalogReadModel, CategoryView, ListQuery, MinPosition, Page, ProductView, ReadModelError,
};
use projectors::redis::RedisReadModel;
use redis_client::RedisConfig;
use uuid::Uuid;

use database::Database;
use invalidations::WatchedL1;
use l1::{record, Cached, L1Config, PageKey, L1};
use redis::RedisLayer;

/// TTLs and timeouts of the layers.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    /// Product documents kept fresh by invalidations.
    pub product_ttl: Duration,
    /// Listing pages, bestsellers and categories kept fresh by invalidations.
    pub page_ttl: Duration,
    /// Entries that no invalidation stream watches over.
    pub unwatched_ttl: Duration,
    /// How long past its freshness an entry may still answer, marked stale
    /// (`X-Stale-Seconds`), when Redis and the databases all fail (never for `X-Min-Position`).
    pub stale_if_error: Duration,
    pub capacity: u64,
    pub redis_timeout: Duration,
    pub database_timeout: Duration,
    /// The longest a fallback read waits for the database to reach a required position.
    pub position_wait: Duration,
    /// Where to send the edge cache's purges, after this process dropped the same entries.
    pub edge: Option<Arc<crate::edge::EdgePurger>>,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            product_ttl: Duration::from_secs(60),
            page_ttl: Duration::from_secs(120),
            unwatched_ttl: Duration::from_secs(2),
            stale_if_error: Duration::from_secs(300),
            capacity: 200_000,
            redis_timeout: Duration::from_millis(300),
            database_timeout: Duration::from_secs(2),
            position_wait: Duration::from_secs(2),
            edge: None,
        }
    }
}

/// Bestseller lists are cached at the longest list shown (100) and cut to the limit asked.
const CACHED_BESTSELLERS: usize = 100;

/// The layered read model; see the module documentation.
pub struct LayeredReadModel {
    config: LayerConfig,
    redis: Option<RedisLayer>,
    replica: Database,
    primary: Option<Database>,
    cache: Arc<WatchedL1>,
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
        let l1 = L1::new(&L1Config {
            product_ttl: config.product_ttl,
            page_ttl: config.page_ttl,
            unwatched_ttl: config.unwatched_ttl,
            stale_if_error: config.stale_if_error,
            capacity: config.capacity,
        });
        let cache = Arc::new(WatchedL1::new(l1, config.edge.clone()));
        let redis = redis.map(|(redis_config, model)| RedisLayer::new(redis_config, model));
        if let Some(redis) = &redis {
            tokio::spawn(invalidations::subscribe(
                Arc::downgrade(&cache),
                redis.config.clone(),
                redis.model.clone(),
            ));
        }
        Arc::new(LayeredReadModel {
            redis,
            replica: Database::new("read-replica", replica),
            primary: primary.map(|model| Database::new("primary", model)),
            cache,
            config,
        })
    }

    /// The one layered read: the L1 entry under `key` when it is fresh (`fresh_for`) and
    /// correct at `at`, else `read` on Redis, else on the replica (or the primary), the answer
    /// cached under `key`. When every layer fails, the entry that was there answers if it is
    /// within `stale_if_error` and no position was required, marked stale ([`stale`]). Its
    /// span records L1's result and Redis's when it was asked (`cache.l1`, `cache.redis`: hit,
    /// miss, stale, incomplete, error); a miss on both read a database.
    #[tracing::instrument(
        name = "read.cache",
        level = "debug",
        skip_all,
        fields(cache.l1 = tracing::field::Empty, cache.redis = tracing::field::Empty)
    )]
    async fn read_through<K, T, F, Fut>(
        &self,
        cache: &Cache<K, Cached<T>>,
        key: K,
        at: MinPosition,
        fresh_for: Duration,
        read: F,
    ) -> Result<Cached<T>, ReadModelError>
    where
        K: Hash + Eq + Send + Sync + Clone + 'static,
        T: Clone + Send + Sync + 'static,
        F: Fn(Arc<dyn CatalogReadModel>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, ReadModelError>> + Send,
    {
        let required = at.get();
        let mut previous = None;
        if let Some(cached) = cache.get(&key).await {
            if self
                .cache
                .usable(&cached, required, fresh_for, self.config.unwatched_ttl)
            {
                record("l1", "hit");
                return Ok(cached);
            }
            cache.invalidate(&key).await;
            previous = Some(cached);
        }
        record("l1", "miss");
        match cache
            .try_get_with(key.clone(), self.load(required, &read))
            .await
        {
            Ok(cached) => Ok(cached),
            Err(error) => {
                let stale = previous.filter(|cached| {
                    required == 0 && cached.loaded_at.elapsed() < self.config.stale_if_error
                });
                let Some(stale) = stale else {
                    return Err(ReadModelError::Unavailable(error.to_string()));
                };
                record("l1", "stale");
                stale::note(stale.loaded_at.elapsed());
                // Kept for the next request while the layers below are down.
                cache.insert(key, stale.clone()).await;
                Ok(stale)
            }
        }
    }

    /// `read` on Redis when it can answer at `required`, else on the databases.
    async fn load<T, F, Fut>(&self, required: u64, read: &F) -> Result<Cached<T>, ReadModelError>
    where
        F: Fn(Arc<dyn CatalogReadModel>) -> Fut,
        Fut: Future<Output = Result<T, ReadModelError>>,
    {
        let config = &self.config;
        if let Some(redis) = &self.redis {
            let answer = redis
                .read(
                    required,
                    &self.cache,
                    config.position_wait,
                    config.redis_timeout,
                    read,
                )
                .await;
            if let Some(cached) = answer {
                return Ok(cached);
            }
        }
        let databases = std::iter::once(&self.replica).chain(self.primary.iter());
        database::read_first(
            databases,
            required,
            config.position_wait,
            config.database_timeout,
            read,
        )
        .await
    }

    /// A product whatever its status, and the position it reflects.
    async fn any_product(
        &self,
        id: Uuid,
        at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let cached = self
            .read_through(
                &self.cache.l1.products,
                id,
                at,
                self.config.product_ttl,
                |model| async move {
                    let (product, _) = model.product_any_status(id, at).await?;
                    Ok(product)
                },
            )
            .await?;
        Ok((cached.value.clone(), self.cache.reflected(&cached)))
    }
}

#[async_trait]
impl CatalogReadModel for LayeredReadModel {
    async fn product(
        &self,
        id: Uuid,
        at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let (product, position) = self.any_product(id, at).await?;
        Ok((
            product.filter(|view| view.status == events::ProductStatus::Published),
            position,
        ))
    }

    async fn product_any_status(
        &self,
        id: Uuid,
        at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        self.any_product(id, at).await
    }

    async fn list(&self, query: &ListQuery, at: MinPosition) -> Result<Page, ReadModelError> {
        // Every layer answers a query and its normalised form alike; the normalised one is
        // what is cached and read, so equal queries share one entry and one load.
        let key = PageKey::new(query);
        let normalized = key.query().clone();
        let cached = self
            .read_through(
                &self.cache.l1.pages,
                key,
                at,
                self.config.page_ttl,
                |model| {
                    let query = normalized.clone();
                    async move { model.list(&query, at).await.map(Arc::new) }
                },
            )
            .await?;
        let mut page = Page::clone(&cached.value);
        page.position = self.cache.reflected(&cached);
        Ok(page)
    }

    async fn bestsellers(
        &self,
        category: Option<&str>,
        limit: usize,
        at: MinPosition,
    ) -> Result<(Vec<Arc<ProductView>>, u64), ReadModelError> {
        let key = category.map(str::to_owned);
        let cached = self
            .read_through(
                &self.cache.l1.bestsellers,
                key.clone(),
                at,
                self.config.page_ttl,
                |model| {
                    let category = key.clone();
                    async move {
                        let (items, _) = model
                            .bestsellers(category.as_deref(), CACHED_BESTSELLERS, at)
                            .await?;
                        Ok(Arc::new(items))
                    }
                },
            )
            .await?;
        let items = cached.value.iter().take(limit).cloned().collect();
        Ok((items, self.cache.reflected(&cached)))
    }

    async fn categories(
        &self,
        at: MinPosition,
    ) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
        let cached = self
            .read_through(
                &self.cache.l1.categories,
                (),
                at,
                self.config.page_ttl,
                |model| async move {
                    let (items, _) = model.categories(at).await?;
                    Ok(Arc::new(items))
                },
            )
            .await?;
        Ok((Vec::clone(&cached.value), self.cache.reflected(&cached)))
    }

    fn position(&self) -> u64 {
        if self.cache.is_live() {
            self.cache.watermark().current()
        } else {
            self.replica.model.position()
        }
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        if self.cache.is_live() {
            self.cache.watermark().wait_for(position, timeout).await
        } else {
            self.replica.model.wait_for(position, timeout).await
        }
    }
}
