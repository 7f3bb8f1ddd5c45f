//! An empty view over a long store (at least `BULK_CATCH_UP_FROM` events) is caught up as a
//! rebuild, in batches beside the empty generation, rather than event by event; a short store
//! is caught up event by event.

use std::sync::Arc;

use event_store::sqlite::SqliteDatabase;
use events::catalog_events::category_aggregate_id;
use events::store::{EventStore, StreamAppend};
use events::{CatalogEvent, CategoryCreated, EventMetadata, NewEvent, SaleRecorded};
use projectors::read_model::{CatalogReadModel, MemoryReadModel, MinPosition};
use projectors::runner::{Projector, BULK_CATCH_UP_FROM};
use uuid::Uuid;

fn new_event(id: Uuid, version: u64, event: &CatalogEvent) -> NewEvent {
    NewEvent::from_event(
        id,
        version,
        event,
        chrono::Utc::now(),
        EventMetadata::default(),
    )
}

/// A category and `products` products with one sale each, in appends of 500 products.
async fn store_of(products: usize) -> (tempfile::TempDir, Arc<dyn EventStore>, Vec<Uuid>) {
    let dir = tempfile::tempdir().expect("dir");
    let database = SqliteDatabase::open(&dir.path().join("catalog.db"))
        .await
        .expect("open");
    let store: Arc<dyn EventStore> = Arc::new(database.event_store());
    let tools = CatalogEvent::CategoryCreated(CategoryCreated {
        slug: "tools".into(),
        name: "Tools".into(),
        parent: None,
    });
    let category = category_aggregate_id("tools");
    store
        .append(vec![StreamAppend {
            aggregate_id: category,
            expected_version: 0,
            events: vec![new_event(category, 1, &tools)],
            unique_claims: Vec::new(),
            snapshot: None,
        }])
        .await
        .expect("append");
    let ids: Vec<Uuid> = (0..products).map(|_| Uuid::now_v7()).collect();
    for chunk in ids.chunks(500) {
        let appends = chunk
            .iter()
            .map(|id| {
                let sku = format!("B-{}", id.simple());
                let created = CatalogEvent::ProductCreated(events::conformance::published_product(
                    &sku, &sku, "tools",
                ));
                let sale = CatalogEvent::SaleRecorded(SaleRecorded { quantity: 1 });
                StreamAppend {
                    aggregate_id: *id,
                    expected_version: 0,
                    events: vec![new_event(*id, 1, &created), new_event(*id, 2, &sale)],
                    unique_claims: Vec::new(),
                    snapshot: None,
                }
            })
            .collect();
        store.append(appends).await.expect("append");
    }
    (dir, store, ids)
}

#[tokio::test]
async fn an_empty_view_over_a_long_store_is_built_in_batches() {
    let products = BULK_CATCH_UP_FROM as usize / 2;
    let (_dir, store, ids) = store_of(products).await;
    let model = Arc::new(MemoryReadModel::new());
    let projector = Projector::new(model.clone(), store.clone());
    let head = projector.catch_up().await.expect("catches up");
    assert_eq!(head, 1 + 2 * products as u64);
    // Built as generation 2 beside the empty generation 1.
    assert_eq!(projector.status().generation, 2);
    assert_eq!(projector.status().position, head);
    for id in [ids[0], ids[products / 2], ids[products - 1]] {
        let (product, _) = model.product(id, MinPosition::ANY).await.expect("read");
        let product = product.expect("the product is in the view");
        assert_eq!((product.sales, product.version), (1, 2));
    }
    let (categories, position) = model.categories(MinPosition::ANY).await.expect("read");
    assert_eq!(categories[0].product_count, products as u64);
    assert_eq!(position, head);
}

#[tokio::test]
async fn a_short_store_is_caught_up_event_by_event() {
    let (_dir, store, ids) = store_of(10).await;
    let model = Arc::new(MemoryReadModel::new());
    let projector = Projector::new(model.clone(), store);
    let head = projector.catch_up().await.expect("catches up");
    assert_eq!(head, 21);
    assert_eq!(projector.status().generation, 1);
    let (product, _) = model.product(ids[3], MinPosition::ANY).await.expect("read");
    assert_eq!(product.map(|p| p.sales), Some(1));
}
