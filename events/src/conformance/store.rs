//! The event store's behaviour as one suite, run against every adapter: each case a
//! `pub async fn` taking a fresh, empty store, and [`event_store_suite!`](crate::event_store_suite)
//! expanding them into one `#[tokio::test]` each.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

use crate::catalog_events::{CatalogEvent, PriceChanged};
use crate::envelope::{EventMetadata, NewEvent};
use crate::store::{EventStore, StoreError, StreamAppend, UniqueClaim};

pub use super::snapshots::{
    a_conflicting_append_writes_no_snapshot,
    a_snapshot_appended_with_events_is_read_back_with_the_events_after_it,
    a_snapshot_never_replaces_a_newer_one_and_a_new_format_drops_the_old,
    a_snapshot_of_a_version_the_aggregate_lacks_is_refused,
    concurrent_appends_keep_the_latest_snapshot,
    events_after_a_version_are_the_tail_of_the_aggregate,
};

/// A test event for `aggregate_id` at `version`.
pub fn sample_event(aggregate_id: Uuid, version: u64) -> NewEvent {
    let event = CatalogEvent::PriceChanged(PriceChanged {
        price_cents: 100 + version as i64,
        currency: "USD".into(),
        previous_price_cents: Some(99 + version as i64),
    });
    NewEvent::from_event(
        aggregate_id,
        version,
        &event,
        Utc::now().trunc_subsecs(6),
        EventMetadata {
            actor: Some("tester".into()),
            correlation_id: Some(format!("corr-{version}")),
            causation_id: None,
            traceparent: None,
        },
    )
}

/// A stream appending `count` events to `aggregate_id` after `expected_version`.
pub fn sample_stream(aggregate_id: Uuid, expected_version: u64, count: u64) -> StreamAppend {
    StreamAppend {
        aggregate_id,
        expected_version,
        events: (1..=count)
            .map(|offset| sample_event(aggregate_id, expected_version + offset))
            .collect(),
        unique_claims: Vec::new(),
        snapshot: None,
    }
}

pub async fn an_empty_store_has_nothing(store: impl EventStore) {
    assert_eq!(store.head().await.expect("head"), 0);
    assert!(store.read_all(0, 10).await.expect("read_all").is_empty());
    assert!(store
        .read_aggregate(Uuid::now_v7())
        .await
        .expect("read_aggregate")
        .is_empty());
    store.ping().await.expect("ping");
}

pub async fn appended_events_come_back_with_dense_positions(store: impl EventStore) {
    let first = Uuid::now_v7();
    let second = Uuid::now_v7();
    let stream = sample_stream(first, 0, 3);
    let expected_events = stream.events.clone();
    let stored = store.append(vec![stream]).await.expect("append");
    assert_eq!(
        stored.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for (envelope, new_event) in stored.iter().zip(&expected_events) {
        assert_eq!(
            envelope,
            &new_event.clone().into_envelope(envelope.position)
        );
    }
    let more = store
        .append(vec![
            sample_stream(second, 0, 1),
            sample_stream(first, 3, 1),
        ])
        .await
        .expect("append two streams");
    assert_eq!(
        more.iter()
            .map(|e| (e.aggregate_id, e.aggregate_version, e.position))
            .collect::<Vec<_>>(),
        vec![(second, 1, 4), (first, 4, 5)]
    );
    assert_eq!(store.head().await.expect("head"), 5);
    let read_back = store.read_aggregate(first).await.expect("read_aggregate");
    assert_eq!(
        read_back
            .iter()
            .map(|e| e.aggregate_version)
            .collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(read_back[..3], stored[..]);
}

pub async fn read_all_pages_in_position_order(store: impl EventStore) {
    for _ in 0..5 {
        store
            .append(vec![sample_stream(Uuid::now_v7(), 0, 2)])
            .await
            .expect("append");
    }
    let page = store.read_all(3, 4).await.expect("read_all");
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    let tail = store.read_all(8, 100).await.expect("read_all");
    assert_eq!(
        tail.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![9, 10]
    );
    assert!(store.read_all(10, 100).await.expect("read_all").is_empty());
}

pub async fn a_stale_expected_version_is_a_conflict_and_writes_nothing(store: impl EventStore) {
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 2)])
        .await
        .expect("append");
    for stale in [0, 1, 3] {
        let result = store.append(vec![sample_stream(id, stale, 1)]).await;
        assert!(
            matches!(result, Err(StoreError::Conflict { aggregate_id, .. }) if aggregate_id == id),
            "expected a conflict at expected version {stale}, got {result:?}"
        );
    }
    assert_eq!(store.head().await.expect("head"), 2);
    assert_eq!(store.read_aggregate(id).await.expect("read").len(), 2);
}

pub async fn malformed_appends_are_invalid(store: impl EventStore) {
    let id = Uuid::now_v7();
    let mut gap = sample_stream(id, 0, 1);
    gap.events[0].aggregate_version = 2;
    let empty = StreamAppend {
        events: Vec::new(),
        ..sample_stream(id, 0, 1)
    };
    let mut foreign = sample_stream(id, 0, 1);
    foreign.events[0].aggregate_id = Uuid::now_v7();
    for streams in [vec![], vec![gap], vec![empty], vec![foreign]] {
        let result = store.append(streams).await;
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "got {result:?}"
        );
    }
    assert_eq!(store.head().await.expect("head"), 0);
}

pub async fn a_batch_is_all_or_nothing(store: impl EventStore) {
    let existing = Uuid::now_v7();
    store
        .append(vec![sample_stream(existing, 0, 1)])
        .await
        .expect("append");
    let fresh = Uuid::now_v7();
    let result = store
        .append(vec![
            sample_stream(fresh, 0, 2),
            sample_stream(existing, 0, 1),
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "got {result:?}"
    );
    assert!(store.read_aggregate(fresh).await.expect("read").is_empty());
    assert_eq!(store.head().await.expect("head"), 1);
    let next = store
        .append(vec![sample_stream(fresh, 0, 1)])
        .await
        .expect("append");
    assert_eq!(next[0].position, 2, "a failed batch must not leave a gap");
}

pub async fn a_unique_claim_is_held_by_one_aggregate(store: impl EventStore) {
    let claim = UniqueClaim {
        scope: "sku".into(),
        value: "ELEC-1".into(),
    };
    let owner = Uuid::now_v7();
    let mut first = sample_stream(owner, 0, 1);
    first.unique_claims.push(claim.clone());
    store.append(vec![first]).await.expect("first claim");

    let mut again_by_owner = sample_stream(owner, 1, 1);
    again_by_owner.unique_claims.push(claim.clone());
    store
        .append(vec![again_by_owner])
        .await
        .expect("the owner may claim its value again");

    let mut rival = sample_stream(Uuid::now_v7(), 0, 1);
    rival.unique_claims.push(claim.clone());
    let result = store.append(vec![rival]).await;
    assert!(
        matches!(&result, Err(StoreError::UniqueViolation { scope, value }) if scope == "sku" && value == "ELEC-1"),
        "got {result:?}"
    );
    let mut other_scope = sample_stream(Uuid::now_v7(), 0, 1);
    other_scope.unique_claims.push(UniqueClaim {
        scope: "other".into(),
        value: "ELEC-1".into(),
    });
    store
        .append(vec![other_scope])
        .await
        .expect("claims are per scope");
    assert_eq!(store.head().await.expect("head"), 3);
}

pub async fn a_request_claim_is_taken_once_even_by_its_aggregate_and_names_its_append(
    store: impl EventStore,
) {
    use crate::store::REQUEST_CLAIM_SCOPE;
    let claim = UniqueClaim {
        scope: REQUEST_CLAIM_SCOPE.into(),
        value: "caller-1/key-1".into(),
    };
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 1)])
        .await
        .expect("create");
    let mut first = sample_stream(id, 1, 2);
    first.unique_claims.push(claim.clone());
    let stored = store.append(vec![first]).await.expect("the first attempt");
    assert_eq!(
        store
            .claimed(REQUEST_CLAIM_SCOPE, "caller-1/key-1")
            .await
            .expect("claimed"),
        Some(crate::store::Claimed {
            aggregate_id: id,
            position: Some(stored[1].position),
        })
    );
    // The retry of the same request, decided again on the new version, appends nothing.
    let mut retry = sample_stream(id, 3, 1);
    retry.unique_claims.push(claim.clone());
    let result = store.append(vec![retry]).await;
    assert!(
        matches!(&result, Err(StoreError::UniqueViolation { scope, .. }) if scope == REQUEST_CLAIM_SCOPE),
        "got {result:?}"
    );
    assert_eq!(store.head().await.expect("head"), 3);
    assert_eq!(
        store
            .claimed(REQUEST_CLAIM_SCOPE, "another")
            .await
            .expect("claimed"),
        None
    );
}

pub async fn concurrent_writers_to_one_aggregate_cannot_both_win(store: impl EventStore) {
    let store = Arc::new(store);
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 1)])
        .await
        .expect("append");
    let writers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.append(vec![sample_stream(id, 1, 1)]).await })
        })
        .collect();
    let mut wins = 0;
    for writer in writers {
        match writer.await.expect("task") {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one of 20 concurrent writers wins");
    assert_eq!(store.read_aggregate(id).await.expect("read").len(), 2);
    assert_eq!(store.head().await.expect("head"), 2);
}

pub async fn concurrent_writers_to_many_aggregates_get_dense_positions(store: impl EventStore) {
    let store = Arc::new(store);
    let writers: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(vec![sample_stream(Uuid::now_v7(), 0, 2)])
                    .await
            })
        })
        .collect();
    let mut positions = HashSet::new();
    for writer in writers {
        let stored = writer.await.expect("task").expect("append");
        assert_eq!(
            stored[1].position,
            stored[0].position + 1,
            "one batch is contiguous"
        );
        for envelope in stored {
            assert!(positions.insert(envelope.position), "position given twice");
        }
    }
    assert_eq!(positions, (1..=100).collect::<HashSet<u64>>());
    let all = store.read_all(0, 1000).await.expect("read_all");
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
}

/// Positions are commit-ordered: a reader tailing the log while many appenders commit must
/// find every batch it reads starting right after the last position it saw, with no hole a
/// slower transaction could fill later (the reserved-before-commit gap).
pub async fn a_tail_reader_never_sees_a_gap_filled_later(store: impl EventStore) {
    a_tail_reader_never_sees_a_gap_filled_later_across(vec![Arc::new(store)]).await;
}

/// [`a_tail_reader_never_sees_a_gap_filled_later`] with several handles on one log (for a
/// server store, one per simulated replica): the appenders use them in turn and the reader
/// uses the first.
pub async fn a_tail_reader_never_sees_a_gap_filled_later_across(stores: Vec<Arc<dyn EventStore>>) {
    let store = stores[0].clone();
    const APPENDERS: u64 = 16;
    const APPENDS_EACH: u64 = 25;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut batches = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let batch = store.read_all(last, 500).await.expect("read_all");
                for envelope in &batch {
                    assert_eq!(
                        envelope.position,
                        last + 1,
                        "the tail reader saw position {} right after {last}: a gap",
                        envelope.position
                    );
                    last = envelope.position;
                }
                batches += usize::from(!batch.is_empty());
                if finished && batch.is_empty() {
                    return (last, batches);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|appender| {
            let store = stores[appender as usize % stores.len()].clone();
            tokio::spawn(async move {
                for append in 0..APPENDS_EACH {
                    let count = 1 + (appender + append) % 3;
                    store
                        .append(vec![sample_stream(Uuid::now_v7(), 0, count)])
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for appender in appenders {
        appender.await.expect("appender");
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (last, batches) = reader.await.expect("reader");
    let head = store.head().await.expect("head");
    let expected: u64 = (0..APPENDERS)
        .flat_map(|appender| (0..APPENDS_EACH).map(move |append| 1 + (appender + append) % 3))
        .sum();
    assert_eq!(head, expected);
    assert_eq!(last, head, "the reader saw everything up to the head");
    assert!(batches > 1, "the reader read while appenders wrote");
}

/// Expands into one `#[tokio::test]` per case of the event store suite
/// ([`crate::conformance::store`]).
///
/// `$make` is an expression giving a future of `(guard, store)`: a fresh, empty store for one
/// case, and whatever must live as long as it (a temporary directory, a test database; `()`
/// when nothing). Invoke it inside a module of its own, so the tests are named
/// `<module>::<case>`:
///
/// ```text
/// mod event_store_suite {
///     events::event_store_suite!(super::fresh_store());
/// }
/// ```
#[macro_export]
macro_rules! event_store_suite {
    ($make:expr) => {
        $crate::event_store_suite!(@cases $make;
            an_empty_store_has_nothing,
            appended_events_come_back_with_dense_positions,
            read_all_pages_in_position_order,
            a_stale_expected_version_is_a_conflict_and_writes_nothing,
            malformed_appends_are_invalid,
            a_batch_is_all_or_nothing,
            a_unique_claim_is_held_by_one_aggregate,
            a_request_claim_is_taken_once_even_by_its_aggregate_and_names_its_append,
            concurrent_writers_to_one_aggregate_cannot_both_win,
            concurrent_writers_to_many_aggregates_get_dense_positions,
            a_tail_reader_never_sees_a_gap_filled_later,
            events_after_a_version_are_the_tail_of_the_aggregate,
            a_snapshot_appended_with_events_is_read_back_with_the_events_after_it,
            a_snapshot_never_replaces_a_newer_one_and_a_new_format_drops_the_old,
            a_snapshot_of_a_version_the_aggregate_lacks_is_refused,
            a_conflicting_append_writes_no_snapshot,
            concurrent_appends_keep_the_latest_snapshot,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (_guard, store) = $make.await;
                $crate::conformance::store::$case(store).await;
            }
        )+
    };
}
