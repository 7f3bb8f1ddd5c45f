//! The idempotency store's behaviour as a suite, run against every adapter (SQLite,
//! PostgreSQL): what [`IdempotencyStore`]'s contract promises, case by case.
//!
//! A macro expands it into one `#[tokio::test]` per case inside a module of its own:
//!
//! ```ignore
//! command_api::idempotency_store_suite!(postgres, postgres_idempotency);
//! ```
//!
//! The second argument is an async function (or closure) of no arguments making a fresh,
//! empty store for one case (an [`IdempotencyFixture`]). Built only with the `testsuite`
//! feature (or for this crate's own tests).

use std::any::Any;
use std::sync::Arc;

use chrono::{Duration, Utc};

use crate::idempotency::{Begin, IdempotencyStore, KeyedRequest, StoredResponse};

/// A fresh, empty idempotency store for one case, and whatever must outlive it.
pub struct IdempotencyFixture {
    pub store: Arc<dyn IdempotencyStore>,
    pub keep: Box<dyn Any + Send>,
}

/// Expands the idempotency store suite into a module `$module` of tests, each on a fresh
/// [`IdempotencyFixture`] from `$make`.
#[macro_export]
macro_rules! idempotency_store_suite {
    ($module:ident, $make:expr) => {
        $crate::idempotency_store_suite!(@cases $module, $make;
            a_new_key_starts_and_begins_again_while_it_runs_are_in_progress,
            a_completed_key_replays_its_response,
            the_same_key_with_another_request_is_a_mismatch,
            keys_are_scoped_to_their_caller,
            an_abandoned_key_starts_again,
            of_concurrent_begins_with_one_key_exactly_one_starts,
            purge_forgets_the_keys_created_before_the_cutoff_and_counts_them,
        );
    };
    (@cases $module:ident, $make:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture: $crate::idempotency::conformance::IdempotencyFixture =
                        ($make)().await;
                    $crate::idempotency::conformance::$case(&*fixture.store).await;
                }
            )+
        }
    };
}

fn response() -> StoredResponse {
    StoredResponse {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/api/products/1".into()),
            ("x-position".into(), "7".into()),
        ],
        body: br#"{"id":"1"}"#.to_vec(),
    }
}

async fn begin(store: &dyn IdempotencyStore, caller: &str, key: &str, hash: &str) -> Begin {
    store
        .begin(KeyedRequest {
            caller,
            key,
            request_hash: hash,
            now: Utc::now(),
        })
        .await
        .expect("begin")
}

pub async fn a_new_key_starts_and_begins_again_while_it_runs_are_in_progress(
    store: &dyn IdempotencyStore,
) {
    assert_eq!(begin(store, "alice", "k1", "hash-a").await, Begin::Started);
    assert_eq!(
        begin(store, "alice", "k1", "hash-a").await,
        Begin::InProgress
    );
}

pub async fn a_completed_key_replays_its_response(store: &dyn IdempotencyStore) {
    assert_eq!(begin(store, "alice", "k1", "hash-a").await, Begin::Started);
    store
        .complete("alice", "k1", &response())
        .await
        .expect("complete");
    assert_eq!(
        begin(store, "alice", "k1", "hash-a").await,
        Begin::Replay(response())
    );
    // Replays do not use the key up.
    assert_eq!(
        begin(store, "alice", "k1", "hash-a").await,
        Begin::Replay(response())
    );
}

pub async fn the_same_key_with_another_request_is_a_mismatch(store: &dyn IdempotencyStore) {
    assert_eq!(begin(store, "alice", "k1", "hash-a").await, Begin::Started);
    assert_eq!(begin(store, "alice", "k1", "hash-b").await, Begin::Mismatch);
    store
        .complete("alice", "k1", &response())
        .await
        .expect("complete");
    assert_eq!(begin(store, "alice", "k1", "hash-b").await, Begin::Mismatch);
}

pub async fn keys_are_scoped_to_their_caller(store: &dyn IdempotencyStore) {
    assert_eq!(begin(store, "alice", "k1", "hash-a").await, Begin::Started);
    store
        .complete("alice", "k1", &response())
        .await
        .expect("complete");
    assert_eq!(begin(store, "bob", "k1", "hash-b").await, Begin::Started);
}

pub async fn an_abandoned_key_starts_again(store: &dyn IdempotencyStore) {
    assert_eq!(begin(store, "alice", "k1", "hash-a").await, Begin::Started);
    store.abandon("alice", "k1").await.expect("abandon");
    // Even for another request: nothing was decided under the key.
    assert_eq!(begin(store, "alice", "k1", "hash-b").await, Begin::Started);
    store
        .abandon("alice", "never-begun")
        .await
        .expect("abandoning an unknown key changes nothing");
}

pub async fn of_concurrent_begins_with_one_key_exactly_one_starts(store: &dyn IdempotencyStore) {
    let attempts: Vec<_> = (0..10)
        .map(|_| {
            store.begin(KeyedRequest {
                caller: "alice",
                key: "raced",
                request_hash: "hash-a",
                now: Utc::now(),
            })
        })
        .collect();
    let results = futures::future::join_all(attempts).await;
    let started = results
        .iter()
        .filter(|result| matches!(result, Ok(Begin::Started)))
        .count();
    assert_eq!(started, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|result| matches!(result, Ok(Begin::Started | Begin::InProgress))),
        "{results:?}"
    );
}

pub async fn purge_forgets_the_keys_created_before_the_cutoff_and_counts_them(
    store: &dyn IdempotencyStore,
) {
    let now = Utc::now();
    let old = now - Duration::hours(25);
    for key in ["old-1", "old-2"] {
        let begun = store
            .begin(KeyedRequest {
                caller: "alice",
                key,
                request_hash: "hash-a",
                now: old,
            })
            .await
            .expect("begin");
        assert_eq!(begun, Begin::Started);
    }
    assert_eq!(begin(store, "alice", "new", "hash-a").await, Begin::Started);
    let removed = store.purge(now - Duration::hours(24)).await.expect("purge");
    assert_eq!(removed, 2);
    // A purged key is new again; a kept one is still held.
    assert_eq!(
        begin(store, "alice", "old-1", "hash-b").await,
        Begin::Started
    );
    assert_eq!(
        begin(store, "alice", "new", "hash-a").await,
        Begin::InProgress
    );
    assert_eq!(
        store
            .purge(now - Duration::hours(24))
            .await
            .expect("purge again"),
        0
    );
}
