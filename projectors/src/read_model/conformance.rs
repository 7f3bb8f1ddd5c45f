//! The read model's behaviour as one suite, run against every adapter (in memory,
//! PostgreSQL, Redis, and query-api's layered read path): [`read_model_conformance_suite!`]
//! expands into one `#[tokio::test]` per case, so one failure does not hide the others.
//!
//! Every read asks for the position the suite has written up to ([`MinPosition`]), as a
//! client that just wrote would with `X-Min-Position`: a read model with caches must then
//! answer with what was written, not with an older copy.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use events::{
    CatalogEvent, CategoryCreated, Envelope, EventMetadata, NewEvent, PriceChanged, ProductCreated,
    ProductPublished, ProductStatus, ProductUnpublished, SaleRecorded, SynonymsChanged,
    SEARCH_SETTINGS_ID,
};
use uuid::Uuid;

mod images;
pub use images::uploaded_images_are_appended_once_and_a_removed_one_leaves;

use super::port::{CatalogReadModel, MinPosition};
use super::view::{ListQuery, SortOrder};
use crate::{Applied, Projection};

/// A read model under test: the projection that writes it and the port that reads it.
pub type Pair = (Arc<dyn Projection>, Arc<dyn CatalogReadModel>);

/// Expands into one `#[tokio::test]` per case of the suite, each against a fresh, empty read
/// model made by the given future (a [`Pair`]). With `keeping`, the future yields the pair
/// and something to keep alive until the case ends (a test database, say).
///
/// ```ignore
/// projectors::read_model_conformance_suite!(async { make_pair().await });
/// projectors::read_model_conformance_suite!(keeping async { (make_pair().await, database) });
/// ```
#[macro_export]
macro_rules! read_model_conformance_suite {
    (keeping $make:expr) => {
        $crate::read_model_conformance_suite!(@cases keeping $make;
            a_replayed_event_changes_nothing,
            listings_follow_each_sort_order_with_ties_by_id,
            filters_combine_and_price_bounds_are_inclusive,
            several_brands_list_the_products_of_any_of_them_case_insensitively,
            several_categories_list_the_products_of_any_of_them,
            brands_and_categories_combine_with_and,
            paging_through_several_categories_and_brands_gives_every_match_once_in_order,
            pages_continue_after_the_cursor_and_unpublished_products_leave,
            bestsellers_rank_by_sales,
            waiting_for_a_position_returns_once_it_is_applied,
            an_event_ahead_of_the_next_version_is_a_gap_and_changes_nothing,
            the_search_settings_move_only_the_position_and_products_keep_applying,
            uploaded_images_are_appended_once_and_a_removed_one_leaves
        );
    };
    ($make:expr) => {
        $crate::read_model_conformance_suite!(keeping async { ($make.await, ()) });
    };
    (@cases keeping $make:expr; $($case:ident),+) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (pair, _kept): ($crate::read_model::conformance::Pair, _) = $make.await;
                $crate::read_model::conformance::$case(pair).await;
            }
        )+
    };
}

struct Log {
    position: u64,
    versions: HashMap<Uuid, u64>,
    projection: Arc<dyn Projection>,
    model: Arc<dyn CatalogReadModel>,
}

impl Log {
    fn new((projection, model): Pair) -> Self {
        Log {
            position: 0,
            versions: HashMap::new(),
            projection,
            model,
        }
    }

    async fn record(&mut self, id: Uuid, event: CatalogEvent, minutes: i64) -> Envelope {
        self.position += 1;
        let version = self.versions.entry(id).or_insert(0);
        *version += 1;
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid time")
            + ChronoDuration::minutes(minutes);
        let envelope = NewEvent::from_event(id, *version, &event, at, EventMetadata::default())
            .into_envelope(self.position);
        let applied = self
            .projection
            .apply(&envelope, envelope.position)
            .await
            .expect("apply");
        assert_eq!(applied, Applied::Applied);
        // Server-backed read models learn their checkpoint asynchronously.
        assert!(
            self.model
                .wait_for(envelope.position, Duration::from_secs(5))
                .await,
            "the read model never reached position {}",
            envelope.position
        );
        envelope
    }

    /// Appends a `SynonymsChanged` (not this view's): it must change nothing but the
    /// position the view has reached.
    async fn synonyms(&mut self, groups: &[&[&str]]) {
        self.position += 1;
        let version = self.versions.entry(SEARCH_SETTINGS_ID).or_insert(0);
        *version += 1;
        let event = CatalogEvent::SynonymsChanged(SynonymsChanged {
            groups: groups
                .iter()
                .map(|group| group.iter().map(|word| (*word).to_owned()).collect())
                .collect(),
        });
        let envelope = NewEvent::from_event(
            SEARCH_SETTINGS_ID,
            *version,
            &event,
            Utc::now(),
            EventMetadata::default(),
        )
        .into_envelope(self.position);
        let applied = self
            .projection
            .apply(&envelope, envelope.position)
            .await
            .expect("a read model skips the search settings without an error");
        assert_eq!(applied, Applied::Duplicate);
        assert!(
            self.model
                .wait_for(envelope.position, Duration::from_secs(5))
                .await,
            "the read model did not move past the synonyms at position {}",
            envelope.position
        );
    }

    /// What a client that wrote everything so far asks its reads to reflect.
    fn at(&self) -> MinPosition {
        MinPosition(self.position)
    }

    async fn category(&mut self, slug: &str) {
        let event = CatalogEvent::CategoryCreated(CategoryCreated {
            slug: slug.into(),
            name: slug.to_uppercase(),
            parent: None,
        });
        self.record(
            events::catalog_events::category_aggregate_id(slug),
            event,
            0,
        )
        .await;
    }

    /// A published product whose brand is `Acme` for an even price, `Zeta` for an odd one.
    async fn product(
        &mut self,
        sku: &str,
        category: &str,
        price: i64,
        stock: i64,
        minutes: i64,
    ) -> Uuid {
        let brand = if price % 2 == 0 { "Acme" } else { "Zeta" };
        self.branded(sku, category, Some(brand), price, stock, minutes)
            .await
    }

    /// A published product of `brand` (or of none).
    async fn branded(
        &mut self,
        sku: &str,
        category: &str,
        brand: Option<&str>,
        price: i64,
        stock: i64,
        minutes: i64,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let event = CatalogEvent::ProductCreated(ProductCreated {
            sku: sku.into(),
            name: format!("Product {sku}"),
            description: String::new(),
            category: category.into(),
            brand: brand.map(str::to_owned),
            price_cents: price,
            currency: "USD".into(),
            stock,
            status: ProductStatus::Published,
            attributes: BTreeMap::new(),
            images: vec![],
        });
        self.record(id, event, minutes).await;
        id
    }
}

fn query(sort: SortOrder, limit: usize) -> ListQuery {
    ListQuery {
        categories: Vec::new(),
        brands: Vec::new(),
        min_price: None,
        max_price: None,
        in_stock: false,
        sort,
        limit,
        after: None,
    }
}

async fn skus(log: &Log, query: &ListQuery) -> Vec<String> {
    log.model
        .list(query, log.at())
        .await
        .expect("list")
        .items
        .iter()
        .map(|p| p.sku.clone())
        .collect()
}

pub async fn a_replayed_event_changes_nothing(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    let id = log.product("A", "tools", 100, 10, 1).await;
    let sale = log
        .record(
            id,
            CatalogEvent::SaleRecorded(SaleRecorded { quantity: 3 }),
            2,
        )
        .await;
    let replayed = log
        .projection
        .apply(&sale, sale.position)
        .await
        .expect("replay");
    assert_eq!(replayed, Applied::Duplicate);
    let (product, position) = log.model.product(id, log.at()).await.expect("read");
    let product = product.expect("visible");
    assert_eq!(
        (product.stock, product.sales, product.version, position),
        (7, 3, 2, 3)
    );
}

pub async fn listings_follow_each_sort_order_with_ties_by_id(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    log.product("CHEAP", "tools", 100, 1, 3).await;
    log.product("DEAR", "tools", 900, 1, 1).await;
    log.product("MID", "tools", 500, 1, 2).await;
    assert_eq!(
        skus(&log, &query(SortOrder::Newest, 10)).await,
        ["CHEAP", "MID", "DEAR"]
    );
    assert_eq!(
        skus(&log, &query(SortOrder::PriceAsc, 10)).await,
        ["CHEAP", "MID", "DEAR"]
    );
    assert_eq!(
        skus(&log, &query(SortOrder::PriceDesc, 10)).await,
        ["DEAR", "MID", "CHEAP"]
    );
    assert_eq!(
        skus(&log, &query(SortOrder::Name, 10)).await,
        ["CHEAP", "DEAR", "MID"]
    );
}

pub async fn filters_combine_and_price_bounds_are_inclusive(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    log.category("garden").await;
    log.product("T100", "tools", 100, 0, 1).await;
    log.product("T200", "tools", 200, 5, 2).await;
    log.product("T300", "tools", 300, 5, 3).await;
    log.product("G200", "garden", 200, 5, 4).await;
    let mut filtered = query(SortOrder::PriceAsc, 10);
    filtered.categories = vec!["tools".into()];
    filtered.min_price = Some(100);
    filtered.max_price = Some(200);
    assert_eq!(skus(&log, &filtered).await, ["T100", "T200"]);
    filtered.in_stock = true;
    assert_eq!(skus(&log, &filtered).await, ["T200"]);
    let mut by_brand = query(SortOrder::PriceAsc, 10);
    by_brand.brands = vec!["acme".into()];
    assert_eq!(
        skus(&log, &by_brand).await,
        ["T100", "T200", "G200", "T300"]
    );
}

pub async fn several_brands_list_the_products_of_any_of_them_case_insensitively(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    log.branded("ACME-1", "tools", Some("Acme"), 100, 1, 1)
        .await;
    log.branded("ZETA-1", "tools", Some("Zeta"), 200, 1, 2)
        .await;
    log.branded("ORBIT-1", "tools", Some("Orbit"), 300, 1, 3)
        .await;
    log.branded("NONE-1", "tools", None, 400, 1, 4).await;
    log.branded("ACME-2", "tools", Some("ACME"), 500, 1, 5)
        .await;
    let mut two = query(SortOrder::PriceAsc, 10);
    two.brands = vec!["acme".into(), "Orbit".into()];
    assert_eq!(skus(&log, &two).await, ["ACME-1", "ORBIT-1", "ACME-2"]);
    two.brands = vec!["oRBIT".into(), "zeta".into()];
    assert_eq!(skus(&log, &two).await, ["ZETA-1", "ORBIT-1"]);
    two.brands = vec!["nobody".into(), "ZETA".into()];
    assert_eq!(skus(&log, &two).await, ["ZETA-1"]);
    two.brands = vec!["nobody".into(), "else".into()];
    assert!(skus(&log, &two).await.is_empty());
}

pub async fn several_categories_list_the_products_of_any_of_them(pair: Pair) {
    let mut log = Log::new(pair);
    for slug in ["tools", "garden", "kitchen"] {
        log.category(slug).await;
    }
    log.product("T1", "tools", 100, 1, 1).await;
    log.product("G1", "garden", 150, 1, 2).await;
    log.product("K1", "kitchen", 200, 1, 3).await;
    log.product("T2", "tools", 250, 1, 4).await;
    log.product("G2", "garden", 300, 1, 5).await;
    let mut two = query(SortOrder::PriceAsc, 10);
    two.categories = vec!["tools".into(), "garden".into()];
    assert_eq!(skus(&log, &two).await, ["T1", "G1", "T2", "G2"]);
    two.sort = SortOrder::Newest;
    assert_eq!(skus(&log, &two).await, ["G2", "T2", "G1", "T1"]);
    // A category without products (or unknown) adds nothing.
    two.categories = vec!["kitchen".into(), "nowhere".into()];
    assert_eq!(skus(&log, &two).await, ["K1"]);
    let (categories, _) = log.model.categories(log.at()).await.expect("categories");
    assert_eq!(categories.len(), 3);
}

pub async fn brands_and_categories_combine_with_and(pair: Pair) {
    let mut log = Log::new(pair);
    for slug in ["tools", "garden", "kitchen"] {
        log.category(slug).await;
    }
    log.branded("T-ACME", "tools", Some("Acme"), 100, 1, 1)
        .await;
    log.branded("T-ZETA", "tools", Some("Zeta"), 200, 1, 2)
        .await;
    log.branded("G-ORBIT", "garden", Some("Orbit"), 300, 0, 3)
        .await;
    log.branded("G-ACME", "garden", Some("acme"), 400, 1, 4)
        .await;
    log.branded("K-ACME", "kitchen", Some("Acme"), 500, 1, 5)
        .await;
    log.branded("K-ORBIT", "kitchen", Some("Orbit"), 600, 1, 6)
        .await;
    let mut both = query(SortOrder::PriceAsc, 10);
    both.categories = vec!["tools".into(), "garden".into()];
    both.brands = vec!["ACME".into(), "orbit".into()];
    assert_eq!(skus(&log, &both).await, ["T-ACME", "G-ORBIT", "G-ACME"]);
    both.in_stock = true;
    assert_eq!(skus(&log, &both).await, ["T-ACME", "G-ACME"]);
    both.min_price = Some(200);
    assert_eq!(skus(&log, &both).await, ["G-ACME"]);
}

pub async fn paging_through_several_categories_and_brands_gives_every_match_once_in_order(
    pair: Pair,
) {
    let mut log = Log::new(pair);
    let categories = ["tools", "garden", "kitchen"];
    for slug in categories {
        log.category(slug).await;
    }
    let brands = [
        Some("Acme"),
        Some("ZETA"),
        Some("Orbit"),
        None,
        Some("zeta"),
    ];
    let mut ids = Vec::new();
    for index in 0..24_i64 {
        let index_usize = index as usize;
        // Few distinct prices and times, so many products tie and order by id.
        ids.push(
            log.branded(
                &format!("P{index:02}"),
                categories[index_usize % 3],
                brands[index_usize % 5],
                100 * (1 + index % 4),
                1,
                index % 5,
            )
            .await,
        );
    }
    let mut products = Vec::new();
    for id in ids {
        let (product, _) = log.model.product(id, log.at()).await.expect("read");
        products.push(product.expect("published"));
    }
    let listings: [(&[&str], &[&str], usize); 4] = [
        (&["kitchen", "tools"], &[], 2),
        (&["tools", "garden"], &["zeta", "ORBIT"], 2),
        (&[], &["acme", "Orbit"], 3),
        (&["garden", "kitchen", "tools"], &["Zeta"], 1),
    ];
    for (in_categories, of_brands, limit) in listings {
        for sort in SortOrder::ALL {
            let mut paged = query(sort, limit);
            paged.categories = in_categories.iter().map(|c| c.to_string()).collect();
            paged.brands = of_brands.iter().map(|b| b.to_string()).collect();
            let mut expected: Vec<_> = products
                .iter()
                .filter(|p| {
                    in_categories.is_empty() || in_categories.contains(&p.category.as_str())
                })
                .filter(|p| {
                    of_brands.is_empty()
                        || p.brand.as_deref().is_some_and(|own| {
                            of_brands
                                .iter()
                                .any(|b| b.to_lowercase() == own.to_lowercase())
                        })
                })
                .collect();
            expected.sort_by_key(|p| sort.key(p));
            let expected: Vec<String> = expected.iter().map(|p| p.sku.clone()).collect();
            assert!(expected.len() > limit, "the listing spans several pages");
            assert_eq!(
                every_page(&log, paged).await,
                expected,
                "categories {in_categories:?}, brands {of_brands:?}, {sort:?}, limit {limit}"
            );
        }
    }
}

/// The skus of every page of `query`, from the first on, following `next_cursor`.
async fn every_page(log: &Log, mut query: ListQuery) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let page = log.model.list(&query, log.at()).await.expect("page");
        assert!(
            page.items.len() <= query.limit,
            "a page is at most its limit"
        );
        seen.extend(page.items.iter().map(|p| p.sku.clone()));
        let Some(cursor) = page.next_cursor else {
            return seen;
        };
        assert_eq!(
            page.items.len(),
            query.limit,
            "a page followed by another is full"
        );
        query.after = Some(cursor.after);
    }
    panic!("more than 100 pages: {seen:?}");
}

pub async fn pages_continue_after_the_cursor_and_unpublished_products_leave(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(
            log.product(&format!("P{index}"), "tools", 100 * (index + 1), 1, index)
                .await,
        );
    }
    let mut page_query = query(SortOrder::PriceAsc, 2);
    let first = log.model.list(&page_query, log.at()).await.expect("page");
    assert_eq!(first.items.len(), 2);
    let cursor = first.next_cursor.expect("more");
    // A product on the first page changes price; one on a later page is unpublished.
    log.record(
        ids[0],
        CatalogEvent::PriceChanged(PriceChanged {
            price_cents: 10_000,
            currency: "USD".into(),
            previous_price_cents: None,
        }),
        9,
    )
    .await;
    log.record(
        ids[3],
        CatalogEvent::ProductUnpublished(ProductUnpublished {}),
        9,
    )
    .await;
    page_query.after = Some(cursor.after);
    assert_eq!(skus(&log, &page_query).await, ["P2", "P4"]);
    let (categories, _) = log.model.categories(log.at()).await.expect("categories");
    assert_eq!(categories[0].product_count, 4);
    let (hidden, _) = log.model.product(ids[3], log.at()).await.expect("read");
    assert!(
        hidden.is_none(),
        "an unpublished product is not visible to shoppers"
    );
    let (for_admin, _) = log
        .model
        .product_any_status(ids[3], log.at())
        .await
        .expect("read");
    assert_eq!(
        for_admin.expect("visible to admins").status,
        ProductStatus::Draft
    );
    log.record(
        ids[3],
        CatalogEvent::ProductPublished(ProductPublished {}),
        10,
    )
    .await;
    let (categories, _) = log.model.categories(log.at()).await.expect("categories");
    assert_eq!(categories[0].product_count, 5);
}

pub async fn bestsellers_rank_by_sales(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    let a = log.product("A", "tools", 100, 50, 1).await;
    let b = log.product("B", "tools", 100, 50, 2).await;
    log.product("C", "tools", 100, 50, 3).await;
    log.record(
        a,
        CatalogEvent::SaleRecorded(SaleRecorded { quantity: 2 }),
        4,
    )
    .await;
    log.record(
        b,
        CatalogEvent::SaleRecorded(SaleRecorded { quantity: 5 }),
        5,
    )
    .await;
    let (top, _) = log
        .model
        .bestsellers(Some("tools"), 2, log.at())
        .await
        .expect("bestsellers");
    assert_eq!(
        top.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(),
        ["B", "A"]
    );
}

pub async fn waiting_for_a_position_returns_once_it_is_applied(pair: Pair) {
    let mut log = Log::new(pair);
    assert!(!log.model.wait_for(1, Duration::from_millis(200)).await);
    log.category("tools").await;
    assert!(log.model.wait_for(1, Duration::from_millis(500)).await);
}

pub async fn an_event_ahead_of_the_next_version_is_a_gap_and_changes_nothing(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    let id = log.product("A", "tools", 100, 10, 1).await;
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid time");
    let skipped = NewEvent::from_event(
        id,
        3,
        &CatalogEvent::SaleRecorded(SaleRecorded { quantity: 1 }),
        at,
        EventMetadata::default(),
    )
    .into_envelope(9);
    let applied = log.projection.apply(&skipped, 3).await.expect("apply");
    assert_eq!(applied, Applied::Gap { applied_version: 1 });
    let (product, _) = log.model.product(id, log.at()).await.expect("read");
    assert_eq!(product.expect("visible").stock, 10);

    let unknown = Uuid::now_v7();
    let orphan = NewEvent::from_event(
        unknown,
        2,
        &CatalogEvent::SaleRecorded(SaleRecorded { quantity: 1 }),
        at,
        EventMetadata::default(),
    )
    .into_envelope(10);
    let applied = log.projection.apply(&orphan, 3).await.expect("apply");
    assert_eq!(applied, Applied::Gap { applied_version: 0 });
}

pub async fn the_search_settings_move_only_the_position_and_products_keep_applying(pair: Pair) {
    let mut log = Log::new(pair);
    log.category("tools").await;
    let id = log.product("A", "tools", 100, 10, 1).await;
    log.synonyms(&[&["tv", "television"]]).await;
    // A second change is version 2 of the settings: no gap to repair for a view that never
    // applied version 1.
    log.synonyms(&[]).await;
    log.record(
        id,
        CatalogEvent::SaleRecorded(SaleRecorded { quantity: 2 }),
        2,
    )
    .await;
    let (product, position) = log.model.product(id, log.at()).await.expect("read");
    let product = product.expect("visible");
    assert_eq!((product.stock, product.version, position), (8, 2, 5));
    let (categories, _) = log.model.categories(log.at()).await.expect("categories");
    assert_eq!(
        categories
            .iter()
            .map(|category| (category.slug.as_str(), category.product_count))
            .collect::<Vec<_>>(),
        [("tools", 1)]
    );
    let page = log
        .model
        .list(&query(SortOrder::Newest, 10), log.at())
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        log.projection.checkpoint().await.expect("checkpoint"),
        5,
        "the checkpoint moved over the synonyms"
    );
}
