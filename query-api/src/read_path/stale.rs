//! Stale answers: when Redis and the databases all fail, an L1 entry past its freshness (but
//! within `stale_if_error`) answers instead of a 503, and the answer says how stale it is in
//! `X-Stale-Seconds` (and is `Cache-Control: no-store`, so no shared cache keeps it).
//!
//! The read path notes the age of the stalest entry a request used in a task-local cell that
//! the consistency middleware opens around every handler ([`scope`]) and reads after it
//! ([`seconds`]).

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use axum::http::HeaderName;

pub const X_STALE_SECONDS: HeaderName = HeaderName::from_static("x-stale-seconds");

tokio::task_local! {
    static STALEST: Cell<Option<Duration>>;
}

/// Runs `future` (a handler) with a cell for the stale answers it uses; with the age of the
/// stalest, if any.
pub async fn scope<F: Future>(future: F) -> (F::Output, Option<Duration>) {
    STALEST
        .scope(Cell::new(None), async move {
            let output = future.await;
            (output, STALEST.with(Cell::get))
        })
        .await
}

/// Notes that the request is answered with an entry `age` old (outside a [`scope`], nothing).
pub(super) fn note(age: Duration) {
    let _ = STALEST.try_with(|cell| {
        cell.set(Some(cell.get().map_or(age, |known| known.max(age))));
    });
}
