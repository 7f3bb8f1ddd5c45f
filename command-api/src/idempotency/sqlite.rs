use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::sql::{self, begin_outcome, store_error, StoredKey};
use crate::idempotency::{Begin, IdempotencyError, IdempotencyStore, KeyedRequest, StoredResponse};
use event_store::sqlite::SqliteDatabase;

/// Idempotency keys in the embedded SQLite file (creation times in whole seconds, headers as
/// JSON text).
#[derive(Clone)]
pub struct SqliteIdempotencyStore {
    database: SqliteDatabase,
}

impl SqliteIdempotencyStore {
    pub fn new(database: SqliteDatabase) -> Self {
        SqliteIdempotencyStore { database }
    }
}

fn decode(row: &SqliteRow) -> Result<StoredKey, IdempotencyError> {
    let completed: i64 = row.try_get("completed").map_err(store_error)?;
    let response = if completed == 0 {
        None
    } else {
        let status: i64 = row.try_get("status").map_err(store_error)?;
        let headers: String = row.try_get("headers").map_err(store_error)?;
        Some(StoredResponse {
            status: status as u16,
            headers: serde_json::from_str(&headers).map_err(store_error)?,
            body: row.try_get("body").map_err(store_error)?,
        })
    };
    Ok(StoredKey {
        request_hash: row.try_get("request_hash").map_err(store_error)?,
        response,
    })
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn begin(&self, request: KeyedRequest<'_>) -> Result<Begin, IdempotencyError> {
        let inserted = sqlx::query(sql::INSERT_KEY)
            .bind(request.caller)
            .bind(request.key)
            .bind(request.request_hash)
            .bind(request.now.timestamp())
            .execute(self.database.writer())
            .await
            .map_err(store_error)?
            .rows_affected();
        if inserted == 1 {
            return Ok(Begin::Started);
        }
        let row = sqlx::query(sql::SELECT_KEY)
            .bind(request.caller)
            .bind(request.key)
            .fetch_optional(self.database.writer())
            .await
            .map_err(store_error)?;
        let stored = row.as_ref().map(decode).transpose()?;
        Ok(begin_outcome(stored, request.request_hash))
    }

    async fn complete(
        &self,
        caller: &str,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), IdempotencyError> {
        let headers = serde_json::to_string(&response.headers).map_err(store_error)?;
        sqlx::query(sql::COMPLETE_KEY)
            .bind(i64::from(response.status))
            .bind(headers)
            .bind(&response.body)
            .bind(caller)
            .bind(key)
            .execute(self.database.writer())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn abandon(&self, caller: &str, key: &str) -> Result<(), IdempotencyError> {
        let query = sqlx::query(sql::DELETE_KEY).bind(caller).bind(key);
        query
            .execute(self.database.writer())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, IdempotencyError> {
        let query = sqlx::query(sql::PURGE_KEYS).bind(before.timestamp());
        let done = query
            .execute(self.database.writer())
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
