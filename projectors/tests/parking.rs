//! Poison events parked, per product: a view that cannot apply one event of product A parks
//! it (in the real SQLite `parked_events`), holds A's later events behind it, and keeps
//! applying every other product's; an operator's retry (after a fix) or skip releases A's
//! waiting events in order; a view rebuilt from the log meets the decisions again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_store::sqlite::SqliteDatabase;
use events::bus::InProcessBus;
use events::catalog_events::category_aggregate_id;
use events::store::{EventStore, StreamAppend};
use events::{CatalogEvent, CategoryCreated, Envelope, EventMetadata, NewEvent, SaleRecorded};
use projectors::parking::{
    ParkedAction, ParkedEvent, ParkedState, ParkingStore, SqliteParking, PARK_AFTER_TRIES,
};
use projectors::read_model::{CatalogReadModel, MemoryReadModel, MinPosition};
use projectors::runner::Projector;
use projectors::{Applied, Projection, ProjectionError};
use uuid::Uuid;

/// The in-memory read model, refusing the sales at the positions in `poisoned` as a view
/// refuses a body it cannot decode.
struct Poisoned {
    model: Arc<MemoryReadModel>,
    poisoned: parking_lot::Mutex<HashSet<u64>>,
}

#[async_trait]
impl Projection for Poisoned {
    fn name(&self) -> &str {
        "read-model"
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        if envelope.event_type == "SaleRecorded"
            && self.poisoned.lock().contains(&envelope.position)
        {
            return Err(ProjectionError::Invalid {
                position: envelope.position,
                message: "a body this view cannot read".into(),
            });
        }
        self.model.apply(envelope, checkpoint).await
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        self.model.checkpoint().await
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        self.model.advance(checkpoint).await
    }
}

async fn append(store: &dyn EventStore, id: Uuid, version: u64, event: CatalogEvent) -> u64 {
    let new = NewEvent::from_event(
        id,
        version,
        &event,
        chrono::Utc::now(),
        EventMetadata::default(),
    );
    store
        .append(vec![StreamAppend {
            aggregate_id: id,
            expected_version: version - 1,
            events: vec![new],
            unique_claims: Vec::new(),
            snapshot: None,
        }])
        .await
        .expect("append")
        .remove(0)
        .position
}

fn created(sku: &str) -> CatalogEvent {
    CatalogEvent::ProductCreated(events::conformance::published_product(sku, sku, "tools"))
}

fn sale() -> CatalogEvent {
    CatalogEvent::SaleRecorded(SaleRecorded { quantity: 1 })
}

async fn sales_and_version(model: &MemoryReadModel, id: Uuid) -> (i64, u64) {
    let (product, _) = model.product(id, MinPosition::ANY).await.expect("read");
    let product = product.expect("the product is in the view");
    (product.sales, product.version)
}

fn states(records: &[ParkedEvent]) -> Vec<(u64, ParkedState)> {
    records
        .iter()
        .map(|record| (record.position, record.state))
        .collect()
}

/// Waits (at most 10 s) until the view's records at `positions` are all in `state`.
async fn until(
    parking: &dyn ParkingStore,
    positions: &[u64],
    state: ParkedState,
) -> Vec<ParkedEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = parking.list("read-model").await.expect("list");
        let reached = positions.iter().all(|position| {
            records
                .iter()
                .any(|r| r.position == *position && r.state == state && r.requested.is_none())
        });
        if reached {
            return records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not {state:?} in time: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_poison_event_is_parked_its_product_waits_and_retry_or_skip_release_it() {
    let dir = tempfile::tempdir().expect("dir");
    let database = SqliteDatabase::open(&dir.path().join("catalog.db"))
        .await
        .expect("open");
    let store: Arc<dyn EventStore> = Arc::new(database.event_store());
    let parking: Arc<dyn ParkingStore> = Arc::new(SqliteParking::new(database.writer().clone()));
    let tools = CatalogEvent::CategoryCreated(CategoryCreated {
        slug: "tools".into(),
        name: "Tools".into(),
        parent: None,
    });
    append(store.as_ref(), category_aggregate_id("tools"), 1, tools).await;
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    append(store.as_ref(), a, 1, created("A")).await;
    append(store.as_ref(), b, 1, created("B")).await;
    let poison = append(store.as_ref(), a, 2, sale()).await;
    let a3 = append(store.as_ref(), a, 3, sale()).await;
    append(store.as_ref(), b, 2, sale()).await;
    let a4 = append(store.as_ref(), a, 4, sale()).await;

    let model = Arc::new(MemoryReadModel::new());
    let view = Arc::new(Poisoned {
        model: model.clone(),
        poisoned: parking_lot::Mutex::new(HashSet::from([poison])),
    });
    let projector = Projector::new(view.clone(), store.clone()).with_parking(parking.clone());
    let head = projector
        .catch_up()
        .await
        .expect("the catch-up ends despite the poison");
    assert_eq!(head, a4);

    // A stays before its poisoned sale; B went on; every position is handled.
    assert_eq!(sales_and_version(&model, a).await, (0, 1));
    assert_eq!(sales_and_version(&model, b).await, (1, 2));
    assert_eq!(projector.status().position, a4);
    assert_eq!(projector.status().parked, 3);
    let records = parking.list("read-model").await.expect("list");
    assert_eq!(
        states(&records),
        vec![
            (poison, ParkedState::Failed),
            (a3, ParkedState::Waiting),
            (a4, ParkedState::Waiting)
        ]
    );
    assert_eq!(records[0].attempts, PARK_AFTER_TRIES);
    assert!(
        records[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cannot read")),
        "{records:?}"
    );
    assert_eq!(
        parking
            .held_counts()
            .await
            .expect("counts")
            .get("read-model"),
        Some(&3)
    );
    // Only a failed event can be retried or skipped; the waiting ones follow it.
    assert!(!parking
        .request("read-model", a3, ParkedAction::Skip, "test")
        .await
        .expect("request"));

    // Live: another product's events keep flowing, A's new ones wait too.
    let running = tokio::spawn(
        projector
            .clone()
            .run(Arc::new(InProcessBus::new(store.clone()))),
    );
    append(store.as_ref(), c, 1, created("C")).await;
    let a5 = append(store.as_ref(), a, 5, sale()).await;
    assert!(
        model.wait_for(a5, Duration::from_secs(5)).await,
        "the checkpoint passes the waiting events"
    );
    let (product, _) = model.product(c, MinPosition::ANY).await.expect("read");
    assert!(product.is_some(), "C is in the view");
    until(parking.as_ref(), &[a5], ParkedState::Waiting).await;

    // A retry while the bug is still there parks it again, with the attempts counted.
    assert!(parking
        .request("read-model", poison, ParkedAction::Retry, "test")
        .await
        .expect("request"));
    let records = until(parking.as_ref(), &[poison], ParkedState::Failed).await;
    assert_eq!(records[0].attempts, 2 * PARK_AFTER_TRIES);
    assert_eq!(sales_and_version(&model, a).await, (0, 1));

    // Fixed: a retry applies it, and A's waiting sales follow in order.
    view.poisoned.lock().clear();
    assert!(parking
        .request("read-model", poison, ParkedAction::Retry, "ops")
        .await
        .expect("request"));
    until(
        parking.as_ref(),
        &[poison, a3, a4, a5],
        ParkedState::Applied,
    )
    .await;
    assert_eq!(sales_and_version(&model, a).await, (4, 5));
    assert_eq!(projector.status().parked, 0);

    // Skip: the decision is recorded and the product's version moves on without the sale.
    let c2 = append(store.as_ref(), c, 2, sale()).await;
    view.poisoned.lock().insert(c2);
    let c3 = append(store.as_ref(), c, 3, sale()).await;
    until(parking.as_ref(), &[c2], ParkedState::Failed).await;
    until(parking.as_ref(), &[c3], ParkedState::Waiting).await;
    assert!(parking
        .request("read-model", c2, ParkedAction::Skip, "ops")
        .await
        .expect("request"));
    let records = until(parking.as_ref(), &[c2], ParkedState::Skipped).await;
    until(parking.as_ref(), &[c3], ParkedState::Applied).await;
    assert_eq!(sales_and_version(&model, c).await, (1, 3));
    let skipped = records.iter().find(|r| r.position == c2).expect("c2");
    assert_eq!(skipped.decided_by.as_deref(), Some("ops"));
    running.abort();

    // Rebuilt from the log (as the embedded read model is at every start), the view meets the
    // decisions again: the skipped sale is still nothing, the retried one applies.
    let rebuilt = Arc::new(MemoryReadModel::new());
    let view = Arc::new(Poisoned {
        model: rebuilt.clone(),
        poisoned: parking_lot::Mutex::new(HashSet::from([c2])),
    });
    let projector = Projector::new(view, store.clone()).with_parking(parking.clone());
    projector.catch_up().await.expect("catch up");
    assert_eq!(sales_and_version(&rebuilt, a).await, (4, 5));
    assert_eq!(sales_and_version(&rebuilt, c).await, (1, 3));
    assert_eq!(projector.status().parked, 0);
}
