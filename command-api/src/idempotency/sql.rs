//! The SQL both idempotency adapters send: one text per statement, with `$n` parameters
//! (SQLite reads `$n` as the n-th bound value, as PostgreSQL does), and what a stored key
//! means for a new request. The adapters differ only in how they bind and read timestamps,
//! flags and headers (integer seconds, `0`/`1` and JSON text in SQLite; `timestamptz`,
//! `boolean` and `jsonb` in PostgreSQL).

use super::{Begin, IdempotencyError, StoredResponse};

/// Reserves a key; affects no row when the caller already used it.
pub(super) const INSERT_KEY: &str =
    "INSERT INTO idempotency_keys (caller, key, request_hash, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (caller, key) DO NOTHING";

pub(super) const SELECT_KEY: &str = "SELECT request_hash, completed, status, headers, body \
     FROM idempotency_keys WHERE caller = $1 AND key = $2";

pub(super) const COMPLETE_KEY: &str =
    "UPDATE idempotency_keys SET completed = TRUE, status = $1, headers = $2, body = $3 \
     WHERE caller = $4 AND key = $5";

pub(super) const DELETE_KEY: &str = "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2";

pub(super) const PURGE_KEYS: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";

pub(super) fn store_error(error: impl std::fmt::Display) -> IdempotencyError {
    IdempotencyError(error.to_string())
}

/// A key's row, read by either adapter.
pub(super) struct StoredKey {
    pub request_hash: String,
    /// The stored response once the first request completed.
    pub response: Option<StoredResponse>,
}

/// What `begin` answers when its insert found the key taken: `stored` is `None` when the key
/// was abandoned between the insert and the read (the caller may retry).
pub(super) fn begin_outcome(stored: Option<StoredKey>, request_hash: &str) -> Begin {
    let Some(stored) = stored else {
        return Begin::InProgress;
    };
    if stored.request_hash != request_hash {
        return Begin::Mismatch;
    }
    match stored.response {
        Some(response) => Begin::Replay(response),
        None => Begin::InProgress,
    }
}
