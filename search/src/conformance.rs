//! The search port's behaviour as one suite, run against every adapter that can run here
//! (tantivy; OpenSearch cannot run on these machines, see `tests/opensearch.rs`).
//! [`search_index_suite!`](crate::search_index_suite) expands it into one test per case, each
//! against a fresh, empty index. Built only with the `testsuite` feature (or for this crate's
//! own tests).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use events::ProductStatus;
use projectors::read_model::ProductView;
use uuid::Uuid;

use crate::{SearchError, SearchIndex, SearchQuery, SearchSort, SearchWriter};

/// A search index under test, its writer (usually the same object), and whatever must outlive
/// them (the index's directory).
pub struct SearchFixture {
    pub index: Arc<dyn SearchIndex>,
    pub writer: Arc<dyn SearchWriter>,
    pub keep: Box<dyn Any + Send>,
}

/// Expands the search suite into a module `$module` of tests, one per case, each against a
/// fresh, empty index from `$make` (an async function or closure of no arguments returning a
/// [`SearchFixture`]):
///
/// ```ignore
/// search::search_index_suite!(the_tantivy_index_passes, tantivy_index);
/// ```
#[macro_export]
macro_rules! search_index_suite {
    ($module:ident, $make:expr) => {
        $crate::search_index_suite!(@cases $module, $make;
            words_match_with_typos_prefixes_plurals_and_accents,
            every_word_must_match_unless_that_finds_nothing,
            only_published_products_are_found,
            filters_narrow_and_facets_count_the_filtered_results,
            sorts_and_cursors_page_through_everything_once,
            a_sku_is_found_first_and_matches_are_highlighted,
            a_write_is_seen_by_current_at_once_and_by_search_within_a_second,
            several_values_of_a_facet_are_ored_and_its_counts_ignore_its_own_filter,
            a_synonym_finds_what_the_other_words_of_its_group_find,
            suggestions_complete_the_last_word_from_names_and_brands,
            a_search_that_finds_nothing_offers_a_correction,
            only_the_first_ten_words_are_used,
        );
    };
    (@cases $module:ident, $make:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture: $crate::conformance::SearchFixture = ($make)().await;
                    $crate::conformance::$case(&fixture).await;
                }
            )+
        }
    };
}

/// A product for the suite.
pub fn product(
    sku: &str,
    name: &str,
    brand: &str,
    category: &str,
    price_cents: i64,
    stock: i64,
    minutes: i64,
) -> ProductView {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::minutes(minutes);
    ProductView {
        id: Uuid::now_v7(),
        sku: sku.to_owned(),
        name: name.to_owned(),
        description: format!("The {name} by {brand}, built to last."),
        category: category.to_owned(),
        brand: Some(brand.to_owned()),
        price_cents,
        currency: "USD".to_owned(),
        stock,
        sales: 0,
        status: ProductStatus::Published,
        attributes: BTreeMap::new(),
        images: Vec::new(),
        version: 1,
        created_at: at,
        updated_at: at,
        encoded: Default::default(),
    }
}

struct Catalog {
    index: Arc<dyn SearchIndex>,
    writer: Arc<dyn SearchWriter>,
    position: u64,
}

/// The suite's catalog: eight published products in four categories and one draft.
fn standard_products() -> Vec<ProductView> {
    let mut products = vec![
        product(
            "HEAD-0001",
            "Wireless Headphones",
            "Acme",
            "headphones",
            12_999,
            5,
            1,
        ),
        product(
            "HEAD-0002",
            "Studio Headphones Pro",
            "Sonora",
            "headphones",
            24_999,
            0,
            2,
        ),
        product(
            "HEAD-0003",
            "Kids Headphones",
            "Acme",
            "headphones",
            1_999,
            9,
            3,
        ),
        product(
            "KITC-0001",
            "Electric Kettle",
            "Müller",
            "kitchen",
            4_999,
            3,
            4,
        ),
        product(
            "KITC-0002",
            "Café Crème Espresso Cups",
            "Élan",
            "kitchen",
            2_500,
            7,
            5,
        ),
        product(
            "KITC-0003",
            "Espresso Machine",
            "Élan",
            "kitchen",
            39_900,
            2,
            6,
        ),
        product("SPRT-0001", "Yoga Mats", "Flexa", "sports", 3_000, 4, 7),
        product("LAMP-0001", "Desk Lamp", "Lumen", "furniture", 10_000, 1, 8),
    ];
    let mut draft = product(
        "HEAD-0009",
        "Secret Headphones",
        "Acme",
        "headphones",
        999,
        1,
        9,
    );
    draft.status = ProductStatus::Draft;
    products.push(draft);
    products
}

async fn standard(fixture: &SearchFixture) -> Catalog {
    let mut catalog = Catalog {
        index: fixture.index.clone(),
        writer: fixture.writer.clone(),
        position: 0,
    };
    for item in standard_products() {
        catalog.put(item).await;
    }
    catalog.settle().await;
    catalog
}

impl Catalog {
    async fn put(&mut self, product: ProductView) {
        self.position += 1;
        self.writer.put(product, self.position).await.expect("put");
    }

    /// Waits until everything put is searchable (the contract: within a second).
    async fn settle(&self) {
        assert!(
            self.index
                .wait_for(self.position, Duration::from_secs(1))
                .await,
            "writes up to {} were not searchable within 1 s",
            self.position
        );
    }

    async fn skus(&self, query: &SearchQuery) -> Vec<String> {
        self.index
            .search(query)
            .await
            .expect("search")
            .hits
            .iter()
            .map(|hit| hit.product.sku.clone())
            .collect()
    }
}

pub async fn words_match_with_typos_prefixes_plurals_and_accents(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    let first = |skus: Vec<String>| skus.first().cloned().unwrap_or_default();
    assert_eq!(
        first(catalog.skus(&SearchQuery::words("kettle")).await),
        "KITC-0001"
    );
    assert_eq!(
        first(catalog.skus(&SearchQuery::words("kettel")).await),
        "KITC-0001",
        "one edit"
    );
    assert_eq!(
        first(
            catalog
                .skus(&SearchQuery::words("wireles headphones"))
                .await
        ),
        "HEAD-0001"
    );
    assert_eq!(
        first(catalog.skus(&SearchQuery::words("yoga mat")).await),
        "SPRT-0001",
        "plural"
    );
    assert_eq!(
        first(catalog.skus(&SearchQuery::words("cafe creme cups")).await),
        "KITC-0002",
        "accents fold"
    );
    assert_eq!(
        first(catalog.skus(&SearchQuery::words("espresso mach")).await),
        "KITC-0003",
        "prefix"
    );
    assert_eq!(
        first(catalog.skus(&SearchQuery::words("muller kettle")).await),
        "KITC-0001",
        "brand"
    );
    // Words under five letters get no edit: "lamb" is not "lamp".
    assert!(catalog.skus(&SearchQuery::words("lamb")).await.is_empty());
}

pub async fn every_word_must_match_unless_that_finds_nothing(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    let both = catalog.skus(&SearchQuery::words("acme wireless")).await;
    assert_eq!(both, ["HEAD-0001"], "all words must match");
    // No product has both words: any word may match then.
    let either = catalog.skus(&SearchQuery::words("kettle lamp")).await;
    assert!(either.contains(&"KITC-0001".to_owned()) && either.contains(&"LAMP-0001".to_owned()));
    assert!(
        catalog.skus(&SearchQuery::words("!!! ???")).await.len() == 8,
        "no words: everything"
    );
}

pub async fn only_published_products_are_found(fixture: &SearchFixture) {
    let mut catalog = standard(fixture).await;
    assert!(!catalog
        .skus(&SearchQuery::words("secret"))
        .await
        .contains(&"HEAD-0009".to_owned()));
    // Unpublishing an indexed product takes it out.
    let mut kettle = catalog
        .writer
        .current(
            catalog
                .index
                .search(&SearchQuery::words("kettle"))
                .await
                .expect("search")
                .hits[0]
                .product
                .id,
        )
        .await
        .expect("current")
        .expect("indexed");
    kettle.status = ProductStatus::Archived;
    kettle.version += 1;
    catalog.put(kettle).await;
    catalog.settle().await;
    assert!(catalog.skus(&SearchQuery::words("kettle")).await.is_empty());
}

pub async fn filters_narrow_and_facets_count_the_filtered_results(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    let mut query = SearchQuery::words("headphones");
    let results = catalog.index.search(&query).await.expect("search");
    assert_eq!(results.total, 3);
    assert_eq!(results.facets.category.get("headphones"), Some(&3));
    assert_eq!(results.facets.brand.get("Acme"), Some(&2));
    let buckets = results.facets.price_counts();
    assert_eq!(buckets, [1, 0, 2], "below 25.00, 25.00–100.00, from 100.00");

    query.brands = vec!["ACME".into()];
    assert_eq!(
        catalog.skus(&query).await.len(),
        2,
        "brand is case-insensitive"
    );
    query.in_stock = true;
    query.min_price = Some(1_999);
    query.max_price = Some(12_999);
    query.sort = SearchSort::PriceAsc;
    assert_eq!(
        catalog.skus(&query).await,
        ["HEAD-0003", "HEAD-0001"],
        "bounds are inclusive"
    );
    let filtered = catalog.index.search(&query).await.expect("search");
    assert_eq!(filtered.facets.brand.get("Acme"), Some(&2));
    assert_eq!(filtered.facets.brand.get("Sonora"), None);

    let mut by_category = SearchQuery::words("");
    by_category.categories = vec!["kitchen".into()];
    assert_eq!(catalog.skus(&by_category).await.len(), 3);
}

pub async fn sorts_and_cursors_page_through_everything_once(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    let mut query = SearchQuery::words("");
    query.sort = SearchSort::PriceDesc;
    let prices: Vec<i64> = catalog
        .index
        .search(&query)
        .await
        .expect("search")
        .hits
        .iter()
        .map(|hit| hit.product.price_cents)
        .collect();
    let mut sorted = prices.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(prices, sorted);
    query.sort = SearchSort::Newest;
    assert_eq!(
        catalog.skus(&query).await.first().map(String::as_str),
        Some("LAMP-0001")
    );

    query.limit = 3;
    let mut seen = Vec::new();
    loop {
        let page = catalog.index.search(&query).await.expect("page");
        seen.extend(page.hits.iter().map(|hit| hit.product.sku.clone()));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 8);

    let other = SearchQuery {
        cursor: query
            .cursor
            .clone()
            .or_else(|| Some("bm90LWEtY3Vyc29y".into())),
        ..SearchQuery::words("kettle")
    };
    assert!(matches!(
        catalog.index.search(&other).await,
        Err(SearchError::Invalid(_))
    ));
}

pub async fn a_sku_is_found_first_and_matches_are_highlighted(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    assert_eq!(
        catalog
            .skus(&SearchQuery::words("head-0002"))
            .await
            .first()
            .map(String::as_str),
        Some("HEAD-0002")
    );
    let results = catalog
        .index
        .search(&SearchQuery::words("wireles headphones"))
        .await
        .expect("search");
    let highlight = &results.hits[0].highlight;
    let name = highlight.name.clone().unwrap_or_default();
    assert!(
        name.contains("<em>Wireless</em>") && name.contains("<em>Headphones</em>"),
        "{name}"
    );
}

pub async fn a_write_is_seen_by_current_at_once_and_by_search_within_a_second(
    fixture: &SearchFixture,
) {
    let mut catalog = standard(fixture).await;
    let new = product("GARD-0001", "Garden Hose", "Flora", "garden", 1_500, 3, 20);
    let id = new.id;
    catalog.put(new).await;
    let current = catalog.writer.current(id).await.expect("current");
    assert_eq!(
        current.map(|product| product.sku),
        Some("GARD-0001".to_owned())
    );
    catalog.settle().await;
    assert_eq!(
        catalog.skus(&SearchQuery::words("garden hose")).await,
        ["GARD-0001"]
    );
    assert!(catalog.writer.checkpoint().await.expect("checkpoint") >= catalog.position);
}

pub async fn several_values_of_a_facet_are_ored_and_its_counts_ignore_its_own_filter(
    fixture: &SearchFixture,
) {
    let catalog = standard(fixture).await;
    let mut query = SearchQuery::words("");
    query.brands = vec!["acme".into(), "ÉLAN".into()];
    let results = catalog.index.search(&query).await.expect("search");
    let mut skus: Vec<String> = results
        .hits
        .iter()
        .map(|hit| hit.product.sku.clone())
        .collect();
    skus.sort();
    assert_eq!(skus, ["HEAD-0001", "HEAD-0003", "KITC-0002", "KITC-0003"]);
    assert_eq!(results.total, 4);
    // The brand facet is counted as if no brand were ticked; the others count the ticks.
    assert_eq!(
        results.facets.brand.get("Flexa"),
        Some(&1),
        "{:?}",
        results.facets
    );
    assert_eq!(results.facets.brand.get("Acme"), Some(&2));
    assert_eq!(results.facets.category.get("sports"), None);
    assert_eq!(results.facets.category.get("kitchen"), Some(&2));
    assert_eq!(results.facets.price_counts(), [1, 1, 2]);

    query.categories = vec!["kitchen".into(), "sports".into()];
    let results = catalog.index.search(&query).await.expect("search");
    let mut skus: Vec<String> = results
        .hits
        .iter()
        .map(|hit| hit.product.sku.clone())
        .collect();
    skus.sort();
    assert_eq!(skus, ["KITC-0002", "KITC-0003"], "AND across facets");
    // Categories counted with the brands ticked but not the categories: headphones can be
    // added; brands counted with the categories ticked: Müller and Flexa can be added.
    assert_eq!(results.facets.category.get("headphones"), Some(&2));
    assert_eq!(results.facets.brand.get("Müller"), Some(&1));
    assert_eq!(results.facets.brand.get("Flexa"), Some(&1));
    assert_eq!(results.facets.brand.get("Acme"), None);
}

pub async fn a_synonym_finds_what_the_other_words_of_its_group_find(fixture: &SearchFixture) {
    let mut catalog = standard(fixture).await;
    assert!(catalog.skus(&SearchQuery::words("mat")).await.len() == 1);
    assert!(catalog.skus(&SearchQuery::words("carpet")).await.is_empty());
    let synonyms = crate::Synonyms {
        groups: vec![
            vec!["carpet".into(), "mat".into()],
            vec!["light".into(), "lamp".into()],
        ],
    };
    catalog.position += 1;
    catalog
        .writer
        .set_synonyms(synonyms.clone(), catalog.position)
        .await
        .expect("synonyms");
    catalog.settle().await;
    assert_eq!(catalog.index.synonyms().await.expect("synonyms"), synonyms);
    assert_eq!(
        catalog.skus(&SearchQuery::words("carpet")).await,
        ["SPRT-0001"]
    );
    assert_eq!(
        catalog.skus(&SearchQuery::words("desk light")).await,
        ["LAMP-0001"]
    );
    // Cleared: the word means only itself again.
    catalog.position += 1;
    catalog
        .writer
        .set_synonyms(crate::Synonyms::default(), catalog.position)
        .await
        .expect("synonyms");
    catalog.settle().await;
    assert!(catalog.skus(&SearchQuery::words("carpet")).await.is_empty());
}

pub async fn suggestions_complete_the_last_word_from_names_and_brands(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    let suggest = |text: &str, limit: usize| crate::SuggestQuery {
        text: text.into(),
        limit,
    };
    let found = catalog
        .index
        .suggest(&suggest("head", 5))
        .await
        .expect("suggest");
    assert_eq!(found.queries, ["headphones"]);
    let mut skus: Vec<&str> = found.products.iter().map(|p| p.sku.as_str()).collect();
    skus.sort();
    assert_eq!(
        skus,
        ["HEAD-0001", "HEAD-0002", "HEAD-0003"],
        "published only"
    );
    let found = catalog
        .index
        .suggest(&suggest("wireless he", 5))
        .await
        .expect("suggest");
    assert_eq!(found.queries, ["wireless headphones"]);
    assert_eq!(found.products.len(), 1);
    // Brands complete too; the most used word first.
    let found = catalog
        .index
        .suggest(&suggest("e", 2))
        .await
        .expect("suggest");
    assert_eq!(
        found.queries,
        ["elan", "espresso"],
        "two products each; then by word"
    );
    let nothing = catalog
        .index
        .suggest(&suggest("", 5))
        .await
        .expect("suggest");
    assert!(nothing.queries.is_empty() && nothing.products.is_empty());
}

pub async fn a_search_that_finds_nothing_offers_a_correction(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    let results = catalog
        .index
        .search(&SearchQuery::words("esprezzo mahcinx"))
        .await
        .expect("search");
    assert_eq!(results.total, 0);
    assert_eq!(results.did_you_mean.as_deref(), Some("espresso machine"));
    let found = catalog
        .index
        .search(&SearchQuery::words("espresso"))
        .await
        .expect("search");
    assert_eq!(found.did_you_mean, None);
    let hopeless = catalog
        .index
        .search(&SearchQuery::words("qqqqqqqq"))
        .await
        .expect("search");
    assert_eq!(hopeless.did_you_mean, None);
}

pub async fn only_the_first_ten_words_are_used(fixture: &SearchFixture) {
    let catalog = standard(fixture).await;
    let ten = "wireless headphones acme wireless headphones acme wireless headphones acme wireless";
    assert_eq!(catalog.skus(&SearchQuery::words(ten)).await, ["HEAD-0001"]);
    let eleven = format!("{ten} kettle");
    assert_eq!(
        catalog.skus(&SearchQuery::words(&eleven)).await,
        ["HEAD-0001"]
    );
}
