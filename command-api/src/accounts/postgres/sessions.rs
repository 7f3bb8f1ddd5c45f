use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::Row;
use uuid::Uuid;

use crate::accounts::{AccountError, SessionStore};
use event_store::postgres::classify;

/// Refresh-token sessions in PostgreSQL, shared by every command-api replica.
#[derive(Clone)]
pub struct PostgresSessionStore {
    pool: PgPool,
}

impl PostgresSessionStore {
    pub fn new(pool: PgPool) -> Self {
        PostgresSessionStore { pool }
    }
}

fn store_error(error: sqlx::Error) -> AccountError {
    classify(error).into()
}

#[async_trait]
impl SessionStore for PostgresSessionStore {
    async fn start(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let session_id = Uuid::now_v7();
        let mut transaction = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, now())")
            .bind(session_id)
            .bind(user_id)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash)
        .bind(session_id)
        .bind(expires_at)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
        transaction.commit().await.map_err(store_error)
    }

    async fn rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Uuid, AccountError> {
        let mut transaction = self.pool.begin().await.map_err(store_error)?;
        // The conditional UPDATE takes the row lock: of two racing refreshes with one token,
        // exactly one sees `used = false`.
        let marked =
            sqlx::query("UPDATE refresh_tokens SET used = TRUE WHERE token_hash = $1 AND NOT used")
                .bind(old_hash)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?
                .rows_affected();
        let row = sqlx::query(
            "SELECT t.session_id, t.expires_at, s.revoked, s.user_id FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Err(AccountError::InvalidToken);
        };
        let unexpected = |error: sqlx::Error| AccountError::Unexpected(error.to_string());
        let session_id: Uuid = row.try_get("session_id").map_err(unexpected)?;
        let token_expires_at: DateTime<Utc> = row.try_get("expires_at").map_err(unexpected)?;
        let revoked: bool = row.try_get("revoked").map_err(unexpected)?;
        let user_id: Uuid = row.try_get("user_id").map_err(unexpected)?;
        if marked == 0 {
            // Reuse of a rotated token: end the session for everyone holding its tokens.
            sqlx::query("UPDATE sessions SET revoked = TRUE WHERE id = $1")
                .bind(session_id)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
            transaction.commit().await.map_err(store_error)?;
            return Err(if revoked {
                AccountError::InvalidToken
            } else {
                AccountError::TokenReused
            });
        }
        if revoked || token_expires_at <= now {
            return Err(AccountError::InvalidToken);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(new_hash)
        .bind(session_id)
        .bind(expires_at)
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
        transaction.commit().await.map_err(store_error)?;
        Ok(user_id)
    }

    async fn revoke(&self, token_hash: &str) -> Result<(), AccountError> {
        sqlx::query(
            "UPDATE sessions SET revoked = TRUE WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(token_hash)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}
