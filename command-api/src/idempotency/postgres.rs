use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::types::Json;
use sqlx::Row;

use crate::idempotency::{Begin, IdempotencyError, IdempotencyStore, StoredResponse};

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

fn error(error: impl std::fmt::Display) -> IdempotencyError {
    IdempotencyError(error.to_string())
}

#[async_trait]
impl IdempotencyStore for PostgresIdempotencyStore {
    async fn begin(
        &self,
        caller: &str,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Begin, IdempotencyError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (caller, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (caller, key) DO NOTHING",
        )
        .bind(caller)
        .bind(key)
        .bind(request_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(error)?
        .rows_affected();
        if inserted == 1 {
            return Ok(Begin::Started);
        }
        let row = sqlx::query(
            "SELECT request_hash, completed, status, headers, body FROM idempotency_keys \
             WHERE caller = $1 AND key = $2",
        )
        .bind(caller)
        .bind(key)
        .fetch_optional(&self.pool)
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
        let completed: bool = row.try_get("completed").map_err(error)?;
        if !completed {
            return Ok(Begin::InProgress);
        }
        let status: i32 = row.try_get("status").map_err(error)?;
        let headers: Json<Vec<(String, String)>> = row.try_get("headers").map_err(error)?;
        let body: Vec<u8> = row.try_get("body").map_err(error)?;
        Ok(Begin::Replay(StoredResponse {
            status: status as u16,
            headers: headers.0,
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
            "UPDATE idempotency_keys SET completed = TRUE, status = $1, headers = $2, body = $3 \
             WHERE caller = $4 AND key = $5",
        )
        .bind(i32::from(response.status))
        .bind(Json(&response.headers))
        .bind(&response.body)
        .bind(caller)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(error)?;
        Ok(())
    }

    async fn abandon(&self, caller: &str, key: &str) -> Result<(), IdempotencyError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2")
            .bind(caller)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn purge(&self, before: DateTime<Utc>) -> Result<u64, IdempotencyError> {
        let removed = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(error)?
            .rows_affected();
        Ok(removed)
    }
}
