use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use sqlx::Row;

use super::sql::{self, begin_outcome, store_error, StoredKey};
use crate::idempotency::{Begin, IdempotencyError, IdempotencyStore, KeyedRequest, StoredResponse};

/// Idempotency keys in PostgreSQL: a retry may reach any command-api replica.
#[derive(Clone)]
pub struct PostgresIdempotencyStore {
    pool: PgPool,
}

impl PostgresIdempotencyStore {
    pub fn new(pool: PgPool) -> Self {
        PostgresIdempotencyStore { pool }
    }
}

fn decode(row: &PgRow) -> Result<StoredKey, IdempotencyError> {
    let completed: bool = row.try_get("completed").map_err(store_error)?;
    let response = if completed {
        let status: i32 = row.try_get("status").map_err(store_error)?;
        let headers: Json<Vec<(String, String)>> = row.try_get("headers").map_err(store_error)?;
        Some(StoredResponse {
            status: status as u16,
            headers: headers.0,
            body: row.try_get("body").map_err(store_error)?,
        })
    } else {
        None
    };
    Ok(StoredKey {
        request_hash: row.try_get("request_hash").map_err(store_error)?,
        response,
    })
}

#[async_trait]
impl IdempotencyStore for PostgresIdempotencyStore {
    async fn begin(&self, request: KeyedRequest<'_>) -> Result<Begin, IdempotencyError> {
        let insert = sqlx::query(sql::INSERT_KEY)
            .bind(request.caller)
            .bind(request.key)
            .bind(request.request_hash)
            .bind(request.now);
        let inserted = insert
            .execute(&self.pool)
            .await
            .map_err(store_error)?
            .rows_affected();
        if inserted == 1 {
            return Ok(Begin::Started);
        }
        let select = sqlx::query(sql::SELECT_KEY)
            .bind(request.caller)
            .bind(request.key);
        let row = select
            .fetch_optional(&self.pool)
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
        let update = sqlx::query(sql::COMPLETE_KEY)
            .bind(i32::from(response.status))
            .bind(Json(&response.headers))
            .bind(&response.body)
            .bind(caller)
            .bind(key);
        update.execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn abandon(&self, caller: &str, key: &str) -> Result<(), IdempotencyError> {
        let delete = sqlx::query(sql::DELETE_KEY).bind(caller).bind(key);
        delete.execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, IdempotencyError> {
        let delete = sqlx::query(sql::PURGE_KEYS).bind(before);
        let done = delete.execute(&self.pool).await.map_err(store_error)?;
        Ok(done.rows_affected())
    }
}
