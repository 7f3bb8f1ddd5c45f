//! Catalog search (API.md `/api/search`): words with typo tolerance and prefix matching of the
//! last word, filters, sorts, facets, highlights, cursor pagination.
//!
//! - The port: [`SearchIndex`] (what the query side asks) and [`SearchWriter`] (what the
//!   search projection writes through), with the query model ([`SearchQuery`]) and the answer
//!   ([`SearchResults`]).
//! - [`tantivy::TantivyIndex`]: the embedded adapter, an index under the data dir (folder
//!   `tantivy/`: schema and analysis, query building, reader, facets, highlights, suggestions,
//!   writer thread).
//! - [`opensearch::OpenSearchIndex`]: the distributed adapter (`CATALOG_SEARCH=opensearch://…`;
//!   folder `opensearch/`: mapping, query DSL, bulk writer, checkpoints).
//! - [`projection::SearchProjection`]: keeps either adapter in step with the events.
//! - `conformance` (feature `testsuite`): the port's behaviour suite, run against every adapter
//!   that can run here.

mod answers;
#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
mod cursor;
pub mod opensearch;
pub mod projection;
pub mod tantivy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use projectors::read_model::ProductView;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Result orders of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchSort {
    Relevance,
    PriceAsc,
    PriceDesc,
    Newest,
}

impl SearchSort {
    pub fn parse(text: &str) -> Option<SearchSort> {
        match text {
            "relevance" => Some(SearchSort::Relevance),
            "price_asc" => Some(SearchSort::PriceAsc),
            "price_desc" => Some(SearchSort::PriceDesc),
            "newest" => Some(SearchSort::Newest),
            _ => None,
        }
    }
}

/// At most this many words of a query are used (API.md); the rest are ignored, so the cost of
/// one search is bounded whatever its text.
pub const MAX_QUERY_WORDS: usize = 10;

/// A search, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The words, as typed (may be empty: every published product). Only the first
    /// [`MAX_QUERY_WORDS`] are used.
    pub text: String,
    /// Category slugs, any of which matches (empty: every category).
    pub categories: Vec<String>,
    /// Exact brands, case-insensitive, any of which matches (empty: every brand).
    pub brands: Vec<String>,
    /// Inclusive.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: bool,
    pub sort: SearchSort,
    pub limit: usize,
    /// The `next_cursor` of the previous page (opaque; each adapter makes its own).
    pub cursor: Option<String>,
}

impl SearchQuery {
    /// The filters given, by query parameter name (for analytics).
    pub fn filters(&self) -> std::collections::BTreeMap<String, String> {
        let mut filters = std::collections::BTreeMap::new();
        if !self.categories.is_empty() {
            filters.insert("category".into(), self.categories.join(","));
        }
        if !self.brands.is_empty() {
            filters.insert("brand".into(), self.brands.join(","));
        }
        if let Some(min) = self.min_price {
            filters.insert("min_price".into(), min.to_string());
        }
        if let Some(max) = self.max_price {
            filters.insert("max_price".into(), max.to_string());
        }
        if self.in_stock {
            filters.insert("in_stock".into(), "true".into());
        }
        filters
    }

    /// A relevance search for `text` with default paging.
    pub fn words(text: &str) -> SearchQuery {
        SearchQuery {
            text: text.to_owned(),
            categories: Vec::new(),
            brands: Vec::new(),
            min_price: None,
            max_price: None,
            in_stock: false,
            sort: SearchSort::Relevance,
            limit: 20,
            cursor: None,
        }
    }
}

/// Fragments of the matching fields with the matched words in `<em>…</em>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Highlight {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub product: Arc<ProductView>,
    pub highlight: Highlight,
}

/// One of the three price buckets of API.md: below 25.00, 25.00 to 100.00, from 100.00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceBucket {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    pub count: u64,
}

/// The bucket bounds (cents): `to` exclusive, `from` inclusive.
pub const PRICE_BUCKETS: [(Option<i64>, Option<i64>); 3] = [
    (None, Some(2_500)),
    (Some(2_500), Some(10_000)),
    (Some(10_000), None),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facets {
    pub category: BTreeMap<String, u64>,
    pub brand: BTreeMap<String, u64>,
    pub price: Vec<PriceBucket>,
}

impl Facets {
    /// The count of each price bucket, cheapest first.
    pub fn price_counts(&self) -> Vec<u64> {
        self.price.iter().map(|bucket| bucket.count).collect()
    }

    pub fn empty() -> Facets {
        Facets {
            category: BTreeMap::new(),
            brand: BTreeMap::new(),
            price: PRICE_BUCKETS
                .iter()
                .map(|(from, to)| PriceBucket {
                    from: *from,
                    to: *to,
                    count: 0,
                })
                .collect(),
        }
    }
}

/// A page of results with the facets of the whole result set.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Matches in all.
    pub total: u64,
    pub facets: Facets,
    /// Pass as the next page's cursor; `None` on the last page.
    pub next_cursor: Option<String>,
    /// The position the index had applied when it answered.
    pub position: u64,
    /// For a search that found nothing: the query with its likely typos corrected to words
    /// of the catalog, when there is such a correction.
    pub did_you_mean: Option<String>,
}

/// An autocomplete request: what the shopper has typed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestQuery {
    pub text: String,
    /// How many completions and how many products, each (1–20).
    pub limit: usize,
}

/// Completions of a partly typed query and the products it already matches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suggestions {
    /// Whole queries: the typed words with the last one completed from the catalog's names
    /// and brands, most frequent first.
    pub queries: Vec<String>,
    pub products: Vec<Arc<ProductView>>,
}

/// Groups of words that mean the same to a shopper ("tv", "television"): a query word of a
/// group also matches the group's other words. Set by admins as `SynonymsChanged` events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synonyms {
    /// Each group: lower-cased single words, at least two.
    pub groups: Vec<Vec<String>>,
}

impl Synonyms {
    /// The other words of every group `word` (lower-cased) is in.
    pub fn alternatives<'a>(&'a self, word: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.groups
            .iter()
            .filter(move |group| group.iter().any(|term| term == word))
            .flat_map(move |group| {
                group
                    .iter()
                    .map(String::as_str)
                    .filter(move |term| *term != word)
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index unavailable: {0}")]
    Unavailable(String),
    /// The request cannot be answered as asked (a cursor from another search, say): 400.
    #[error("{0}")]
    Invalid(String),
    #[error("unexpected search error: {0}")]
    Unexpected(String),
}

/// What the query side asks of a search index.
///
/// Contract, checked by the `conformance` suite (feature `testsuite`):
/// - only `published` products are found;
/// - the first [`MAX_QUERY_WORDS`] words are used; every one must match (in name, brand or
///   description; or a synonym of it), a word of 5 or more letters with up to one edit, the
///   last word also as a prefix (and with its edit); when that finds nothing for several
///   words, any word may match; a query equal to a SKU finds that product first;
/// - filters are exact (any of the categories, any of the case-insensitive brands, inclusive
///   price bounds, in stock);
/// - facets count the whole result set with its filters, except that the category and brand
///   counts ignore their own filter (disjunctive facets: the other brands a shopper could add);
/// - a search that finds nothing may say `did_you_mean`;
/// - a write is searchable within a second of `put`.
#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError>;
    /// Completions and matching products for a partly typed query (autocomplete).
    async fn suggest(&self, query: &SuggestQuery) -> Result<Suggestions, SearchError>;
    /// The synonyms searches use now.
    async fn synonyms(&self) -> Result<Synonyms, SearchError>;
    /// The position the index has applied everything up to.
    fn position(&self) -> u64;
    /// Waits until the index has applied `position` and made it searchable.
    async fn wait_for(&self, position: u64, timeout: Duration) -> bool;
}

/// What the search projection writes through.
///
/// Contract: `current` sees every `put` at once (before it is searchable); `put` replaces the
/// product's document (any status; only published ones are found) and remembers `checkpoint`
/// to be stored with the next durable write, so a restart resumes after a position whose
/// writes are all durable.
#[async_trait]
pub trait SearchWriter: Send + Sync + 'static {
    async fn current(&self, id: Uuid) -> Result<Option<ProductView>, SearchError>;
    async fn put(&self, product: ProductView, checkpoint: u64) -> Result<(), SearchError>;
    /// Remembers `checkpoint` when an event changed nothing here.
    async fn advance(&self, checkpoint: u64) -> Result<(), SearchError>;
    /// Replaces the synonyms (a `SynonymsChanged` event at `checkpoint`); searches use them
    /// once the write is searchable, like a `put`.
    async fn set_synonyms(&self, synonyms: Synonyms, checkpoint: u64) -> Result<(), SearchError>;
    /// The last durable checkpoint.
    async fn checkpoint(&self) -> Result<u64, SearchError>;
}

pub use projectors::generations::Live;

/// A search index that can build its next generation beside the live one (see
/// `projectors::generations`): the search projection drives it through a rebuild.
#[async_trait]
pub trait SearchGenerations: Send + Sync + 'static {
    /// The version of the index this code builds.
    fn version(&self) -> u64;
    /// The live generation and the version it was built with.
    async fn live(&self) -> Result<Live, SearchError>;
    /// Creates the next generation, empty (clearing what an interrupted rebuild left), and
    /// returns the writer that fills it.
    async fn prepare(&self) -> Result<Arc<dyn SearchWriter>, SearchError>;
    /// Makes the prepared generation the one searches read and the live writer writes, once
    /// it made everything it was given searchable. Returns the new generation.
    async fn switch(&self) -> Result<u64, SearchError>;
    /// Drops the generation before the live one.
    async fn drop_previous(&self) -> Result<(), SearchError>;
}

/// The words of a query as a shopper typed them: lower-cased, split on anything that is not a
/// letter or digit (so punctuation and injection attempts are just separators).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The words of a query that are used: the first [`MAX_QUERY_WORDS`] of [`words`].
pub fn query_words(text: &str) -> Vec<String> {
    let mut typed = words(text);
    typed.truncate(MAX_QUERY_WORDS);
    typed
}

/// How many edits a word may be off: one for words of five letters or more (API.md).
pub fn allowed_edits(word: &str) -> u8 {
    u8::from(word.chars().count() >= 5)
}

/// Levenshtein distance with adjacent transpositions (optimal string alignment), capped.
pub fn edit_distance(left: &str, right: &str) -> usize {
    let a: Vec<char> = left.chars().collect();
    let b: Vec<char> = right.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_punctuation_and_lower_case() {
        assert_eq!(
            words("  Noise-Cancelling HEADPH!!"),
            ["noise", "cancelling", "headph"]
        );
        assert!(words("'; DROP TABLE --").len() == 2);
        assert!(words("!!!???").is_empty());
        assert_eq!(words("Café crème"), ["café", "crème"]);
    }

    #[test]
    fn edit_distance_counts_a_transposition_as_one() {
        assert_eq!(edit_distance("laptop", "laptpo"), 1);
        assert_eq!(edit_distance("kettle", "kettel"), 1);
        assert_eq!(edit_distance("headphones", "headphnes"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
