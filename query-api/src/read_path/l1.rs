//! L1: the caches in this process (moka), and what each entry knows about its freshness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use projectors::read_model::{CategoryView, ListQuery, Page, ProductView};
use projectors::redis::Invalidation;
use uuid::Uuid;

/// A cached answer and how far it can be trusted.
#[derive(Clone)]
pub(super) struct Cached<T> {
    pub value: T,
    /// The position the layer that answered had reached before the read.
    pub position: u64,
    /// Loaded from Redis while invalidations were watched, none arriving during the load.
    pub watched: bool,
    /// When it was loaded: how stale it is when served because every layer below failed.
    pub loaded_at: Instant,
    /// The invalidation subscription it was watched under: a subscription lost since (it may
    /// have missed invalidations) leaves it usable only as a stale answer.
    pub generation: u64,
}

/// Watched entries are fresh for their TTL (an invalidation drops them sooner), the others
/// 2 s; each is kept `stale` longer, to answer when every layer below fails.
struct Ttl {
    watched: Duration,
    unwatched: Duration,
    stale: Duration,
}

impl<K, T> Expiry<K, Cached<T>> for Ttl {
    fn expire_after_create(
        &self,
        _key: &K,
        value: &Cached<T>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(
            if value.watched {
                self.watched
            } else {
                self.unwatched
            } + self.stale,
        )
    }
}

/// A listing page's cache key: the whole query in its normalised form
/// ([`ListQuery::normalized`]), so `brand=a&brand=b` and `brand=B&brand=a` share an entry
/// (they list the same products) and queries that differ in any value do not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct PageKey {
    query: ListQuery,
}

impl PageKey {
    pub fn new(query: &ListQuery) -> Self {
        PageKey {
            query: query.normalized(),
        }
    }

    /// The query the page answers, normalised.
    pub fn query(&self) -> &ListQuery {
        &self.query
    }

    /// Whether a change in one of `scopes` (`all` and category slugs) can change this page: a
    /// page over every category can always change; one over some categories when one of
    /// them changed.
    fn is_touched_by(&self, scopes: &[String]) -> bool {
        self.query.categories.is_empty()
            || self
                .query
                .categories
                .iter()
                .any(|category| scopes.contains(category))
    }
}

/// A bestseller list, cached at its longest.
pub(super) type Bestsellers = Arc<Vec<Arc<ProductView>>>;

/// How long entries live and how many there may be.
pub(super) struct L1Config {
    pub product_ttl: Duration,
    pub page_ttl: Duration,
    pub unwatched_ttl: Duration,
    pub stale_if_error: Duration,
    pub capacity: u64,
}

/// The four caches: product documents, listing pages, bestseller lists, the category list.
pub(super) struct L1 {
    pub products: Cache<Uuid, Cached<Option<Arc<ProductView>>>>,
    pub pages: Cache<PageKey, Cached<Arc<Page>>>,
    pub bestsellers: Cache<Option<String>, Cached<Bestsellers>>,
    pub categories: Cache<(), Cached<Arc<Vec<CategoryView>>>>,
}

impl L1 {
    pub fn new(config: &L1Config) -> Self {
        let ttl = |watched| Ttl {
            watched,
            unwatched: config.unwatched_ttl,
            stale: config.stale_if_error,
        };
        L1 {
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
        }
    }

    /// Drops what `invalidation` names: the product, the pages of its scopes (and the
    /// all-products pages), the bestseller lists, the category list.
    pub fn drop_changed(&self, invalidation: &Invalidation) {
        if let Some(id) = invalidation.product {
            invalidate_now(&self.products, id);
        }
        if !invalidation.scopes.is_empty() {
            let scopes = invalidation.scopes.clone();
            let dropped = self
                .pages
                .invalidate_entries_if(move |key, _| key.is_touched_by(&scopes));
            if dropped.is_err() {
                self.pages.invalidate_all();
            }
            self.bestsellers.invalidate_all();
        }
        if invalidation.categories {
            self.categories.invalidate_all();
        }
    }
}

/// `invalidate` without awaiting, for the subscriber's hot loop: dropping an entry is cheap,
/// so it is done right away on the runtime.
fn invalidate_now<K, V>(cache: &Cache<K, V>, key: K)
where
    K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    let cache = cache.clone();
    tokio::spawn(async move { cache.invalidate(&key).await });
}

/// Counts a request per layer and result (`catalog_cache_requests_total`).
pub(super) fn record(layer: &'static str, result: &'static str) {
    metrics::counter!("catalog_cache_requests_total", "layer" => layer, "result" => result)
        .increment(1);
    // On the read's span (`read.cache`), when traces are exported.
    if !events::trace::enabled() {
        return;
    }
    let field = match layer {
        "l1" => "cache.l1",
        "redis" => "cache.redis",
        _ => return,
    };
    tracing::Span::current().record(field, result);
}

#[cfg(test)]
mod tests {
    use projectors::read_model::{ListQuery, SortOrder};

    use super::PageKey;

    fn listing(categories: &[&str], brands: &[&str]) -> ListQuery {
        ListQuery {
            categories: categories.iter().map(|c| c.to_string()).collect(),
            brands: brands.iter().map(|b| b.to_string()).collect(),
            min_price: None,
            max_price: None,
            in_stock: false,
            sort: SortOrder::Newest,
            limit: 20,
            after: None,
        }
    }

    #[test]
    fn queries_listing_the_same_products_share_a_page_key_and_others_do_not() {
        let key = |categories: &[&str], brands: &[&str]| PageKey::new(&listing(categories, brands));
        assert!(key(&["b", "a"], &["Sonora", "acme"]) == key(&["a", "b"], &["ACME", "sonora"]));
        assert!(key(&["a", "a"], &["acme", "Acme"]) == key(&["a"], &["acme"]));
        assert!(key(&["a", "b"], &["acme"]) != key(&["a"], &["acme"]));
        assert!(key(&["a"], &["acme", "sonora"]) != key(&["a"], &["acme"]));
        assert!(key(&[], &["acme"]) != key(&["acme"], &[]));
        let mut in_stock = listing(&["a"], &["acme"]);
        in_stock.in_stock = true;
        assert!(PageKey::new(&in_stock) != key(&["a"], &["acme"]));
    }

    #[test]
    fn a_page_over_several_categories_is_touched_by_a_change_in_any_of_them() {
        let scopes = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let several = PageKey::new(&listing(&["garden", "tools"], &[]));
        assert!(several.is_touched_by(&scopes(&["all", "tools"])));
        assert!(several.is_touched_by(&scopes(&["all", "kitchen", "garden"])));
        assert!(!several.is_touched_by(&scopes(&["all", "kitchen"])));
        let everything = PageKey::new(&listing(&[], &["acme"]));
        assert!(everything.is_touched_by(&scopes(&["all", "kitchen"])));
    }
}
