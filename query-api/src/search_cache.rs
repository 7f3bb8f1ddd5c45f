//! The result cache of `/api/search` (and `/api/search/suggest`): whole first pages, encoded, by the normalised search
//! (the words that are used and the text as a SKU, lower-cased; the filters in a fixed order;
//! the sort; the limit).
//!
//! Search traffic is Zipf-shaped, so the head queries repeat. An entry remembers the index
//! position it was answered at and is used only while the index is still at that position:
//! each commit of the index supersedes every entry, so a cached answer is exactly what the
//! index would answer now (the same event-precise freshness as product pages, and
//! `X-Min-Position` is honoured because the middleware has already waited for the index).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::body::Bytes;
use search::SearchQuery;

/// The most bytes of encoded pages kept.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A first page as it was sent.
pub struct CachedPage {
    /// The index position it was answered at.
    pub position: u64,
    pub body: Bytes,
    /// Its `total` (for analytics).
    pub total: u64,
}

/// See the module documentation.
pub struct SearchCache {
    pages: moka::sync::Cache<u64, Arc<CachedPage>>,
}

impl Default for SearchCache {
    fn default() -> Self {
        SearchCache {
            pages: moka::sync::Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|_, page: &Arc<CachedPage>| {
                    u32::try_from(page.body.len() + 64).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }
}

/// The cache key of a first page: what makes two searches the same search. `None` for a page
/// after the first (not cached).
pub fn key(query: &SearchQuery) -> Option<u64> {
    if query.cursor.is_some() {
        return None;
    }
    let mut categories = query.categories.clone();
    categories.sort();
    let mut brands: Vec<String> = query.brands.iter().map(|b| b.to_lowercase()).collect();
    brands.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        search::query_words(&query.text),
        // The whole text as a SKU is matched (`ABC-1` is not `abc 1`).
        query.text.trim().to_lowercase(),
        categories,
        brands,
        query.min_price,
        query.max_price,
        query.in_stock,
        query.sort,
        query.limit,
    )
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// The cache key of a suggestion: the words that are used (what the adapters complete) and the
/// limit.
pub fn suggest_key(text: &str, limit: usize) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    ("suggest", search::query_words(text), limit).hash(&mut hasher);
    hasher.finish()
}

impl SearchCache {
    /// The page cached under `key` if it was answered at `position` (the index's position now).
    pub fn get(&self, key: u64, position: u64) -> Option<Arc<CachedPage>> {
        let page = self.pages.get(&key)?;
        if page.position == position {
            metrics::counter!("catalog_search_cache_total", "result" => "hit").increment(1);
            Some(page)
        } else {
            metrics::counter!("catalog_search_cache_total", "result" => "stale").increment(1);
            None
        }
    }

    pub fn put(&self, key: u64, page: CachedPage) {
        metrics::counter!("catalog_search_cache_total", "result" => "miss").increment(1);
        self.pages.insert(key, Arc::new(page));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_that_differ_only_in_case_spacing_or_filter_order_share_a_key() {
        let mut one = SearchQuery::words("Wireless HEADPHONES");
        one.brands = vec!["Acme".into(), "sonora".into()];
        let mut two = SearchQuery::words("wireless headphones");
        two.brands = vec!["SONORA".into(), "acme".into()];
        assert_eq!(key(&one), key(&two));
        two.in_stock = true;
        assert_ne!(key(&one), key(&two));
        let mut paged = SearchQuery::words("kettle");
        paged.cursor = Some("abc".into());
        assert_eq!(key(&paged), None);
    }

    #[test]
    fn a_page_is_served_only_at_the_position_it_was_answered_at() {
        let cache = SearchCache::default();
        let page = CachedPage {
            position: 7,
            body: Bytes::from_static(b"{}"),
            total: 0,
        };
        cache.put(1, page);
        assert!(cache.get(1, 7).is_some());
        assert!(cache.get(1, 8).is_none());
        assert!(cache.get(2, 7).is_none());
    }
}
