use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::accounts::{AccountError, SessionStore};
use event_store::sqlite::{classify, SqliteDatabase};

/// Sessions in the embedded SQLite file.
#[derive(Clone)]
pub struct SqliteSessionStore {
    database: SqliteDatabase,
}

impl SqliteSessionStore {
    pub fn new(database: SqliteDatabase) -> Self {
        SqliteSessionStore { database }
    }
}

fn store_error(error: sqlx::Error) -> AccountError {
    classify(error).into()
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn start(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError> {
        let session_id = Uuid::now_v7().to_string();
        let mut transaction = self.database.writer().begin().await.map_err(store_error)?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at) VALUES (?, ?, ?)")
            .bind(&session_id)
            .bind(user_id.to_string())
            .bind(Utc::now().timestamp())
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash)
        .bind(&session_id)
        .bind(expires_at.timestamp())
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
        let mut transaction = self.database.writer().begin().await.map_err(store_error)?;
        // Mark the token used first: the write takes the lock, so of two racing refreshes
        // exactly one sees `used = 0`.
        let marked =
            sqlx::query("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ? AND used = 0")
                .bind(old_hash)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?
                .rows_affected();
        let row = sqlx::query(
            "SELECT t.session_id, t.expires_at, s.revoked, s.user_id FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = ?",
        )
        .bind(old_hash)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(store_error)?;
        let Some(row) = row else {
            return Err(AccountError::InvalidToken);
        };
        let unexpected = |error: sqlx::Error| AccountError::Unexpected(error.to_string());
        let session_id: String = row.try_get("session_id").map_err(unexpected)?;
        let token_expires_at: i64 = row.try_get("expires_at").map_err(unexpected)?;
        let revoked: i64 = row.try_get("revoked").map_err(unexpected)?;
        let user_id: String = row.try_get("user_id").map_err(unexpected)?;
        if marked == 0 {
            // Reuse of a rotated token: end the session for everyone holding its tokens.
            sqlx::query("UPDATE sessions SET revoked = 1 WHERE id = ?")
                .bind(&session_id)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
            transaction.commit().await.map_err(store_error)?;
            return Err(if revoked == 1 {
                AccountError::InvalidToken
            } else {
                AccountError::TokenReused
            });
        }
        if revoked == 1 || token_expires_at <= now.timestamp() {
            return Err(AccountError::InvalidToken);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(new_hash)
        .bind(&session_id)
        .bind(expires_at.timestamp())
        .execute(&mut *transaction)
        .await
        .map_err(store_error)?;
        transaction.commit().await.map_err(store_error)?;
        Uuid::parse_str(&user_id).map_err(|error| AccountError::Unexpected(error.to_string()))
    }

    async fn revoke(&self, token_hash: &str) -> Result<(), AccountError> {
        sqlx::query(
            "UPDATE sessions SET revoked = 1 WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = ?)",
        )
        .bind(token_hash)
        .execute(self.database.writer())
        .await
        .map_err(store_error)?;
        Ok(())
    }
}
