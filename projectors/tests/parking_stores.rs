//! The parked-event stores keep the same contract: in memory, in SQLite (the embedded mode's
//! `catalog.db`) and in PostgreSQL (each case a database of its own).

use chrono::{DurationRound, TimeDelta, Utc};
use event_store::sqlite::SqliteDatabase;
use projectors::parking::{
    MemoryParking, ParkedAction, ParkedEvent, ParkedState, ParkingStore, PostgresParking,
    SqliteParking,
};
use projectors::read_model::postgres::migrate;
use testkit::TestDatabase;
use uuid::Uuid;

fn record(view: &str, position: u64, state: ParkedState) -> ParkedEvent {
    // Microseconds: what PostgreSQL keeps of a time.
    let now = Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .expect("truncate");
    ParkedEvent {
        view: view.to_owned(),
        position,
        aggregate_id: Uuid::now_v7(),
        event_type: "SaleRecorded".to_owned(),
        state,
        error: (state == ParkedState::Failed).then(|| "cannot read it".to_owned()),
        attempts: 5,
        first_attempt_at: now,
        last_attempt_at: now,
        requested: None,
        decided_by: None,
        decided_at: None,
    }
}

async fn contract(store: &dyn ParkingStore) {
    let failed = record("read-model", 7, ParkedState::Failed);
    let waiting = ParkedEvent {
        aggregate_id: failed.aggregate_id,
        ..record("read-model", 9, ParkedState::Waiting)
    };
    let other_view = record("search", 7, ParkedState::Failed);
    for saved in [&waiting, &failed, &other_view] {
        store.save(saved).await.expect("save");
    }
    assert_eq!(
        store.list("read-model").await.expect("list"),
        vec![failed.clone(), waiting.clone()],
        "a view's records, by position, as saved"
    );
    let counts = store.held_counts().await.expect("counts");
    assert_eq!(
        (counts.get("read-model"), counts.get("search")),
        (Some(&2), Some(&1))
    );

    // Only a failed event takes a request.
    for (position, accepted) in [(9, false), (8, false), (7, true)] {
        let taken = store
            .request("read-model", position, ParkedAction::Skip, "ops")
            .await
            .expect("request");
        assert_eq!(taken, accepted, "position {position}");
    }
    let asked = &store.list("read-model").await.expect("list")[0];
    assert_eq!(asked.requested, Some(ParkedAction::Skip));
    assert_eq!(asked.decided_by.as_deref(), Some("ops"));
    assert!(asked.decided_at.is_some());

    // Saving again replaces the record; a decided one no longer counts as held.
    let skipped = ParkedEvent {
        state: ParkedState::Skipped,
        requested: None,
        ..asked.clone()
    };
    store.save(&skipped).await.expect("save");
    let listed = store.list("read-model").await.expect("list");
    assert_eq!(listed[0], skipped);
    assert_eq!(
        store.held_counts().await.expect("counts").get("read-model"),
        Some(&1)
    );
    assert!(!store
        .request("read-model", 7, ParkedAction::Retry, "ops")
        .await
        .expect("request"));
}

#[tokio::test]
async fn in_memory() {
    contract(&MemoryParking::default()).await;
}

#[tokio::test]
async fn in_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let database = SqliteDatabase::open(&dir.path().join("catalog.db"))
        .await
        .expect("open");
    contract(&SqliteParking::new(database.writer().clone())).await;
}

#[tokio::test]
async fn in_postgres() {
    let test = TestDatabase::create().await;
    let pool = test.pool(2).await;
    migrate(&pool).await.expect("migrate");
    contract(&PostgresParking::new(pool)).await;
}
