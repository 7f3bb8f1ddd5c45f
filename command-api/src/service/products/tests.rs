//! The product writer on both event stores: snapshots give exactly the state of replaying
//! everything (a property over random command sequences, checked against the aggregate alone),
//! concurrent commands to one product are batched and each answered as if run one by one, and
//! two writers (two processes' worth: own caches, own store writers) on one PostgreSQL never
//! both win.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use event_store::postgres::PostgresDatabase;
use event_store::sqlite::SqliteDatabase;
use events::store::{EventStore, Snapshot, StoreError, StreamAppend};
use events::values::{
    Currency, Description, Name, PriceCents, Quantity, SaleQuantity, Sku, Slug, StockDelta,
};
use events::{Envelope, EventMetadata, ProductStatus};
use proptest::prelude::*;
use uuid::Uuid;

use crate::aggregate::{DomainError, Product, PRODUCT_STATE_VERSION};
use crate::commands::{
    AdjustStock, ChangeDetails, ChangePrice, CreateCategory, CreateProduct, ProductCommand,
    RecordSale,
};
use crate::service::{CommandError, CommandService, ProductWriter};

/// A real store that counts the appends reaching it (how many transactions the writer asked
/// for), and can hold the next append until told.
struct Counting {
    store: Arc<dyn EventStore>,
    appends: AtomicUsize,
    hold: parking_lot::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl Counting {
    fn new(store: Arc<dyn EventStore>) -> Self {
        Counting {
            store,
            appends: AtomicUsize::new(0),
            hold: parking_lot::Mutex::new(None),
        }
    }
}

#[async_trait]
impl EventStore for Counting {
    async fn append(&self, streams: Vec<StreamAppend>) -> Result<Vec<Envelope>, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let held = self.hold.lock().take();
        if let Some(released) = held {
            let _ = released.await;
        }
        self.store.append(streams).await
    }
    async fn read_aggregate(&self, id: Uuid) -> Result<Vec<Envelope>, StoreError> {
        self.store.read_aggregate(id).await
    }
    async fn read_aggregate_after(
        &self,
        id: Uuid,
        after: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.store.read_aggregate_after(id, after).await
    }
    async fn read_snapshot(&self, id: Uuid, format: u32) -> Result<Option<Snapshot>, StoreError> {
        self.store.read_snapshot(id, format).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.store.save_snapshot(snapshot).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.store.read_all(after, limit).await
    }
    async fn head(&self) -> Result<u64, StoreError> {
        self.store.head().await
    }
    async fn claimed(
        &self,
        scope: &str,
        value: &str,
    ) -> Result<Option<events::store::Claimed>, StoreError> {
        self.store.claimed(scope, value).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: Some("tester".into()),
        correlation_id: None,
        causation_id: None,
        traceparent: None,
    }
}

fn service(store: Arc<dyn EventStore>, snapshot_every: u64) -> CommandService {
    let writer = ProductWriter::new(store.clone(), None).with_snapshot_every(snapshot_every);
    CommandService::with_products(writer, store)
}

async fn sqlite_store() -> (tempfile::TempDir, Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = SqliteDatabase::open(&dir.path().join("store.db"))
        .await
        .expect("open sqlite");
    (dir, Arc::new(database.event_store()))
}

async fn postgres_database() -> (testkit::TestDatabase, PostgresDatabase) {
    let test_database = testkit::TestDatabase::create().await;
    let database = PostgresDatabase::from_pool(test_database.pool(8).await);
    database.migrate().await.expect("migrate");
    (test_database, database)
}

/// A published product in category `kitchen` (created first when missing) with `stock`.
async fn create_product(commands: &CommandService, stock: i64) -> Uuid {
    let category = CreateCategory {
        slug: Slug::parse("kitchen").expect("valid"),
        name: Name::parse("Kitchen").expect("valid"),
        parent: None,
    };
    match commands.create_category(category, metadata()).await {
        Ok(_) | Err(CommandError::DuplicateCategory(_)) => {}
        Err(error) => panic!("cannot create the category: {error}"),
    }
    let create = CreateProduct {
        sku: Sku::parse(&format!("SKU-{}", Uuid::now_v7().simple())).expect("valid"),
        name: Name::parse("Kettle").expect("valid"),
        description: Description::parse("").expect("valid"),
        category: Slug::parse("kitchen").expect("valid"),
        brand: None,
        price_cents: PriceCents::parse(2599).expect("valid"),
        currency: Currency::parse("EUR").expect("valid"),
        stock: Quantity::parse(stock).expect("valid"),
        status: ProductStatus::Published,
        attributes: BTreeMap::new(),
        images: Vec::new(),
    };
    commands
        .create_product(create, metadata())
        .await
        .expect("create")
        .id
}

fn sale(quantity: i64) -> ProductCommand {
    ProductCommand::RecordSale(RecordSale {
        quantity: SaleQuantity::parse(quantity).expect("valid"),
    })
}

fn command_strategy() -> impl Strategy<Value = ProductCommand> {
    prop_oneof![
        8 => (1i64..6).prop_map(sale),
        4 => (-8i64..12).prop_filter("non-zero", |d| *d != 0).prop_map(|delta| {
            ProductCommand::AdjustStock(AdjustStock {
                delta: StockDelta::parse(delta).expect("valid"),
                reason: None,
            })
        }),
        4 => (1i64..10_000).prop_map(|cents| ProductCommand::ChangePrice(ChangePrice {
            price_cents: PriceCents::parse(cents).expect("valid"),
            currency: Currency::parse("EUR").expect("valid"),
        })),
        2 => Just(ProductCommand::Publish),
        2 => Just(ProductCommand::Unpublish),
        2 => Just(ProductCommand::ChangeDetails(ChangeDetails {
            name: Some(Name::parse("Kettle II").expect("valid")),
            ..ChangeDetails::default()
        })),
        // Rare: everything after it is refused.
        1 => Just(ProductCommand::Archive),
    ]
}

/// Runs `sequence` through `commands` one by one, each answer checked against the aggregate
/// deciding alone; then a writer with nothing cached loads the product through its snapshot
/// and must find the state of replaying every event.
async fn check_sequence(
    store: Arc<dyn EventStore>,
    commands: &CommandService,
    stock: i64,
    sequence: &[ProductCommand],
) {
    let id = create_product(commands, stock).await;
    let mut model =
        Product::from_history(&store.read_aggregate(id).await.expect("read")).expect("decode");
    for command in sequence {
        let answer = commands
            .execute(id, command.clone(), None, metadata())
            .await;
        match model.decide(command) {
            Ok(events) => {
                for event in &events {
                    model.apply(event);
                }
                model.version += events.len() as u64;
                let accepted = answer.expect("the aggregate accepts it, so must the writer");
                assert_eq!(accepted.version, model.version);
            }
            Err(refusal) => match answer {
                Err(CommandError::Domain(error)) => assert_eq!(error, refusal),
                other => panic!("expected {refusal:?}, got {other:?}"),
            },
        }
    }
    let replayed =
        Product::from_history(&store.read_aggregate(id).await.expect("read")).expect("decode");
    assert_eq!(replayed, model);
    let fresh = service(store.clone(), 3);
    assert_eq!(fresh.load_product(id).await.expect("load"), replayed);
    let snapshot = store
        .read_snapshot(id, PRODUCT_STATE_VERSION)
        .await
        .expect("read snapshot");
    if replayed.version >= 3 {
        let snapshot = snapshot.expect("a snapshot every 3 versions");
        assert!(replayed.version - snapshot.aggregate_version < 3);
        assert!(Product::from_snapshot(&snapshot).is_some());
    }
}

fn property_over(store: Arc<dyn EventStore>) {
    let commands = service(store.clone(), 3);
    let handle = tokio::runtime::Handle::current();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
    let strategy = (0i64..30, prop::collection::vec(command_strategy(), 1..40));
    let outcome = runner.run(&strategy, |(stock, sequence)| {
        tokio::task::block_in_place(|| {
            handle.block_on(check_sequence(store.clone(), &commands, stock, &sequence))
        });
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_through_a_snapshot_gives_the_state_of_replaying_everything_sqlite() {
    let (_dir, store) = sqlite_store().await;
    property_over(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_through_a_snapshot_gives_the_state_of_replaying_everything_postgres() {
    let (_guard, database) = postgres_database().await;
    property_over(Arc::new(database.event_store(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_an_older_format_is_ignored_and_replaced() {
    let (_dir, store) = sqlite_store().await;
    let commands = service(store.clone(), 5);
    let id = create_product(&commands, 100).await;
    for _ in 0..7 {
        commands
            .execute(id, sale(1), None, metadata())
            .await
            .expect("sale");
    }
    // A snapshot an older build wrote, in a format this one does not read.
    store
        .save_snapshot(Snapshot {
            aggregate_id: id,
            aggregate_version: 8,
            state_version: PRODUCT_STATE_VERSION + 1,
            state: serde_json::json!({"stock": -1}),
        })
        .await
        .expect("save");
    let loaded = service(store.clone(), 5)
        .load_product(id)
        .await
        .expect("load");
    assert_eq!((loaded.stock, loaded.sales, loaded.version), (93, 7, 8));
}

/// 64 buyers at once for 40 units: exactly 40 sold, 24 refused, each sale its own version,
/// in far fewer transactions than commands.
async fn a_flash_sale_is_exact_and_batched(store: Arc<dyn EventStore>) {
    let counting = Arc::new(Counting::new(store));
    let commands = Arc::new(service(counting.clone(), 100));
    let id = create_product(&commands, 40).await;
    let before = counting.appends.load(Ordering::SeqCst);
    let buyers: Vec<_> = (0..64)
        .map(|_| {
            let commands = commands.clone();
            tokio::spawn(async move { commands.execute(id, sale(1), None, metadata()).await })
        })
        .collect();
    let mut versions = Vec::new();
    let mut refused = 0;
    for buyer in buyers {
        match buyer.await.expect("buyer") {
            Ok(accepted) => versions.push(accepted.version),
            Err(CommandError::Domain(DomainError::InsufficientStock { .. })) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=41).collect::<Vec<u64>>());
    assert_eq!(refused, 24);
    let appends = counting.appends.load(Ordering::SeqCst) - before;
    assert!(appends < 32, "{appends} appends for 64 concurrent sales");
    let state =
        Product::from_history(&counting.read_aggregate(id).await.expect("read")).expect("decode");
    assert_eq!((state.stock, state.sales, state.version), (0, 40, 41));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_is_exact_and_batched_sqlite() {
    let (_dir, store) = sqlite_store().await;
    a_flash_sale_is_exact_and_batched(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flash_sale_is_exact_and_batched_postgres() {
    let (_guard, database) = postgres_database().await;
    a_flash_sale_is_exact_and_batched(Arc::new(database.event_store(false))).await;
}

/// 32 attempts of one keyed sale at once, half of them retries of an attempt never answered,
/// queued behind a held append so that one batch holds them all; then one more on a second
/// writer (another process's worth): one sale appended, one answer for all.
async fn attempts_of_one_request_append_once(store: Arc<dyn EventStore>) {
    use crate::idempotency::RequestClaim;
    let counting = Arc::new(Counting::new(store));
    let writers = [
        Arc::new(service(counting.clone(), 100)),
        Arc::new(service(counting.clone(), 100)),
    ];
    let id = create_product(&writers[0], 100).await;
    let (release, held) = tokio::sync::oneshot::channel();
    *counting.hold.lock() = Some(held);
    let unkeyed = {
        let commands = writers[0].clone();
        tokio::spawn(async move { commands.execute(id, sale(1), None, metadata()).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let attempts: Vec<_> = (0..32)
        .map(|attempt| {
            let commands = writers[0].clone();
            let claim = RequestClaim {
                value: "caller/key-1".into(),
                retried: attempt % 4 > 1,
            };
            tokio::spawn(async move {
                commands
                    .execute_claimed(id, sale(1), None, metadata(), Some(claim))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let _ = release.send(());
    unkeyed.await.expect("unkeyed").expect("the unkeyed sale");
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.expect("attempt").expect("answered"));
    }
    for retried in [false, true] {
        let claim = RequestClaim {
            value: "caller/key-1".into(),
            retried,
        };
        answers.push(
            writers[1]
                .execute_claimed(id, sale(1), None, metadata(), Some(claim))
                .await
                .expect("answered"),
        );
    }
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "{answers:?}"
    );
    let state =
        Product::from_history(&counting.read_aggregate(id).await.expect("read")).expect("decode");
    assert_eq!((state.stock, state.sales, state.version), (98, 2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_of_one_request_append_once_sqlite() {
    let (_dir, store) = sqlite_store().await;
    attempts_of_one_request_append_once(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_of_one_request_append_once_postgres() {
    let (_guard, database) = postgres_database().await;
    attempts_of_one_request_append_once(Arc::new(database.event_store(false))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_with_one_if_match_decided_together_let_one_win() {
    let (_dir, store) = sqlite_store().await;
    let commands = Arc::new(service(store, 100));
    let id = create_product(&commands, 10).await;
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let commands = commands.clone();
            tokio::spawn(async move {
                commands
                    .execute(id, sale(1), Some(vec![1]), metadata())
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for writer in writers {
        match writer.await.expect("writer") {
            Ok(accepted) => {
                assert_eq!(accepted.version, 2);
                won += 1;
            }
            Err(CommandError::VersionMismatch { current, .. }) => assert_eq!(current, 2),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

/// Two command processes' worth on one PostgreSQL: own caches, own pools, own store writers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_postgres_never_both_win() {
    let (guard, first_database) = postgres_database().await;
    let second_database = PostgresDatabase::from_pool(guard.pool(8).await);
    let first = Arc::new(service(Arc::new(first_database.event_store(false)), 10));
    let second = Arc::new(service(Arc::new(second_database.event_store(false)), 10));
    let id = create_product(&first, 100).await;
    // Both cache the product first, so each will decide on a state the other makes stale.
    second
        .execute(id, sale(1), None, metadata())
        .await
        .expect("sale");
    first
        .execute(id, sale(1), None, metadata())
        .await
        .expect("sale");
    let buyers: Vec<_> = (0..150)
        .map(|index| {
            let writer = if index % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { writer.execute(id, sale(1), None, metadata()).await })
        })
        .collect();
    let mut sold = 2;
    let mut refused = 0;
    for buyer in buyers {
        match buyer.await.expect("buyer") {
            Ok(_) => sold += 1,
            Err(CommandError::Domain(DomainError::InsufficientStock { .. })) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((sold, refused), (100, 52));
    // A refusal decided on a stale cache is checked against the store: `first` has stock 0
    // cached; `second` restocks; `first` must sell.
    second
        .execute(
            id,
            ProductCommand::AdjustStock(AdjustStock {
                delta: StockDelta::parse(3).expect("valid"),
                reason: None,
            }),
            None,
            metadata(),
        )
        .await
        .expect("restock");
    first
        .execute(id, sale(2), None, metadata())
        .await
        .expect("sale after a restock elsewhere");
    // And an If-Match of a version the other writer moved past is a 412.
    let stale = first
        .execute(id, sale(1), Some(vec![102]), metadata())
        .await;
    assert!(
        matches!(
            stale,
            Err(CommandError::VersionMismatch { current: 103, .. })
        ),
        "{stale:?}"
    );
    let state = Product::from_history(
        &first_database
            .event_store(false)
            .read_aggregate(id)
            .await
            .expect("read"),
    )
    .expect("decode");
    assert_eq!((state.stock, state.sales, state.version), (1, 102, 103));
}
