use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::idempotency::{Begin, IdempotencyError, IdempotencyStore, StoredResponse};
use event_store::sqlite::SqliteDatabase;

#[derive(Clone)]
pub struct SqliteIdempotencyStore {
    database: SqliteDatabase,
}

impl SqliteIdempotencyStore {
    pub fn new(database: SqliteDatabase) -> Self {
        SqliteIdempotencyStore { database }
    }
}

fn error(error: impl std::fmt::Display) -> IdempotencyError {
    IdempotencyError(error.to_string())
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn begin(
        &self,
        caller: &str,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Begin, IdempotencyError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (caller, key, request_hash, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (caller, key) DO NOTHING",
        )
        .bind(caller)
        .bind(key)
        .bind(request_hash)
        .bind(now.timestamp())
        .execute(self.database.writer())
        .await
        .map_err(error)?
        .rows_affected();
        if inserted == 1 {
            return Ok(Begin::Started);
        }
        let row = sqlx::query(
            "SELECT request_hash, completed, status, headers, body FROM idempotency_keys WHERE caller = ? AND key = ?",
        )
        .bind(caller)
        .bind(key)
        .fetch_optional(self.database.writer())
        .await
        .map_err(error)?;
        let Some(row) = row else {
            // Abandoned between our insert and read: the caller may retry.
            return Ok(Begin::InProgress);
        };
        let stored_hash: String = row.try_get("request_hash").map_err(error)?;
        if stored_hash != request_hash {
            return Ok(Begin::Mismatch);
        }
        let completed: i64 = row.try_get("completed").map_err(error)?;
        if completed == 0 {
            return Ok(Begin::InProgress);
        }
        let status: i64 = row.try_get("status").map_err(error)?;
        let headers: String = row.try_get("headers").map_err(error)?;
        let body: Vec<u8> = row.try_get("body").map_err(error)?;
        Ok(Begin::Replay(StoredResponse {
            status: status as u16,
            headers: serde_json::from_str(&headers).map_err(error)?,
            body,
        }))
    }

    async fn complete(
        &self,
        caller: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        sqlx::query(
            "UPDATE idempotency_keys SET completed = 1, status = ?, headers = ?, body = ? WHERE caller = ? AND key = ?",
        )
        .bind(i64::from(response.status))
        .bind(serde_json::to_string(&response.headers).map_err(error)?)
        .bind(&response.body)
        .bind(caller)
        .bind(key)
        .execute(self.database.writer())
        .await
        .map_err(error)?;
        Ok(())
    }

    async fn abandon(&self, caller: &str, key: &str) -> Result<(), IdempotencyError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE caller = ? AND key = ?")
            .bind(caller)
            .bind(key)
            .execute(self.database.writer())
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, IdempotencyError> {
        let removed = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(before.timestamp())
            .execute(self.database.writer())
            .await
            .map_err(error)?
            .rows_affected();
        Ok(removed)
    }
}
