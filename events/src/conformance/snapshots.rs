//! The event store's snapshot cases, part of [`event_store_suite!`](crate::event_store_suite).

use serde_json::json;
use uuid::Uuid;

use super::store::sample_stream;
use crate::store::{EventStore, Snapshot, StoreError};

fn snapshot(aggregate_id: Uuid, version: u64, state_version: u32) -> Snapshot {
    Snapshot {
        aggregate_id,
        aggregate_version: version,
        state_version,
        state: json!({"version": version, "note": "état"}),
    }
}

pub async fn events_after_a_version_are_the_tail_of_the_aggregate(store: impl EventStore) {
    let id = Uuid::now_v7();
    let other = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 5), sample_stream(other, 0, 2)])
        .await
        .expect("append");
    let all = store.read_aggregate(id).await.expect("read");
    let tail = store.read_aggregate_after(id, 3).await.expect("tail");
    assert_eq!(tail, all[3..].to_vec());
    assert!(store
        .read_aggregate_after(id, 5)
        .await
        .expect("tail")
        .is_empty());
    assert_eq!(store.read_aggregate_after(id, 0).await.expect("tail"), all);
}

pub async fn a_snapshot_appended_with_events_is_read_back_with_the_events_after_it(
    store: impl EventStore,
) {
    let id = Uuid::now_v7();
    let mut first = sample_stream(id, 0, 3);
    first.snapshot = Some(snapshot(id, 3, 1));
    store.append(vec![first]).await.expect("append");
    store
        .append(vec![sample_stream(id, 3, 2)])
        .await
        .expect("append");
    let read = store.read_aggregate_state(id, 1).await.expect("read state");
    assert_eq!(read.snapshot, Some(snapshot(id, 3, 1)));
    let all = store.read_aggregate(id).await.expect("read");
    assert_eq!(read.events, all[3..].to_vec());
    // Another format is not there: everything is replayed.
    let other_format = store.read_aggregate_state(id, 2).await.expect("read state");
    assert_eq!(other_format.snapshot, None);
    assert_eq!(other_format.events, all);
}

pub async fn a_snapshot_never_replaces_a_newer_one_and_a_new_format_drops_the_old(
    store: impl EventStore,
) {
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 6)])
        .await
        .expect("append");
    store.save_snapshot(snapshot(id, 5, 1)).await.expect("save");
    store
        .save_snapshot(snapshot(id, 2, 1))
        .await
        .expect("save an older one");
    assert_eq!(
        store.read_snapshot(id, 1).await.expect("read"),
        Some(snapshot(id, 5, 1))
    );
    store
        .save_snapshot(snapshot(id, 6, 2))
        .await
        .expect("save format 2");
    assert_eq!(
        store.read_snapshot(id, 2).await.expect("read"),
        Some(snapshot(id, 6, 2))
    );
    assert_eq!(store.read_snapshot(id, 1).await.expect("read"), None);
    // The same through an append: the later version wins.
    let mut next = sample_stream(id, 6, 1);
    next.snapshot = Some(snapshot(id, 7, 2));
    store.append(vec![next]).await.expect("append");
    assert_eq!(
        store.read_snapshot(id, 2).await.expect("read"),
        Some(snapshot(id, 7, 2))
    );
}

pub async fn a_snapshot_of_a_version_the_aggregate_lacks_is_refused(store: impl EventStore) {
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 2)])
        .await
        .expect("append");
    let saved = store.save_snapshot(snapshot(id, 3, 1)).await;
    assert!(matches!(saved, Err(StoreError::Invalid(_))), "{saved:?}");
    let mut wrong_version = sample_stream(id, 2, 1);
    wrong_version.snapshot = Some(snapshot(id, 2, 1));
    let appended = store.append(vec![wrong_version]).await;
    assert!(
        matches!(appended, Err(StoreError::Invalid(_))),
        "{appended:?}"
    );
    assert_eq!(store.read_snapshot(id, 1).await.expect("read"), None);
}

pub async fn a_conflicting_append_writes_no_snapshot(store: impl EventStore) {
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 2)])
        .await
        .expect("append");
    let mut stale = sample_stream(id, 1, 1);
    stale.snapshot = Some(snapshot(id, 2, 1));
    let appended = store.append(vec![stale]).await;
    assert!(
        matches!(appended, Err(StoreError::Conflict { .. })),
        "{appended:?}"
    );
    assert_eq!(store.read_snapshot(id, 1).await.expect("read"), None);
}

/// Two appends of one aggregate committed in one group (concurrent callers), each with a
/// snapshot: the later one is kept.
pub async fn concurrent_appends_keep_the_latest_snapshot(store: impl EventStore) {
    let id = Uuid::now_v7();
    store
        .append(vec![sample_stream(id, 0, 1)])
        .await
        .expect("append");
    let mut first = sample_stream(id, 1, 1);
    first.snapshot = Some(snapshot(id, 2, 1));
    let mut second = sample_stream(id, 2, 1);
    second.snapshot = Some(snapshot(id, 3, 1));
    let (a, b) = tokio::join!(store.append(vec![first]), store.append(vec![second]));
    match (a, b) {
        (Ok(_), Ok(_)) => assert_eq!(
            store.read_snapshot(id, 1).await.expect("read"),
            Some(snapshot(id, 3, 1))
        ),
        // The second was checked before the first committed: only the first is there.
        (Ok(_), Err(StoreError::Conflict { .. })) => assert_eq!(
            store.read_snapshot(id, 1).await.expect("read"),
            Some(snapshot(id, 2, 1))
        ),
        other => panic!("unexpected outcome {other:?}"),
    }
}
