use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use crate::accounts::sql::{self, rotation_outcome, unexpected, RotationOutcome};
use crate::accounts::{AccountError, Rotation, SessionStore};
use event_store::sqlite::{classify, SqliteDatabase};

/// Sessions in the embedded SQLite file (ids as text, times as integer seconds).
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

async fn insert_token(
    transaction: &mut Transaction<'_, Sqlite>,
    token_hash: &str,
    session_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), AccountError> {
    let token = sqlx::query(sql::INSERT_TOKEN)
        .bind(token_hash)
        .bind(session_id)
        .bind(expires_at.timestamp());
    token
        .execute(&mut **transaction)
        .await
        .map_err(store_error)?;
    Ok(())
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
        let session = sqlx::query(sql::INSERT_SESSION)
            .bind(&session_id)
            .bind(user_id.to_string())
            .bind(Utc::now().timestamp());
        session
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        insert_token(&mut transaction, token_hash, &session_id, expires_at).await?;
        transaction.commit().await.map_err(store_error)
    }

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<Uuid, AccountError> {
        let mut transaction = self.database.writer().begin().await.map_err(store_error)?;
        let marked = sqlx::query(sql::MARK_TOKEN_USED)
            .bind(rotation.old_hash)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?
            .rows_affected();
        let row = sqlx::query(sql::TOKEN_AND_SESSION)
            .bind(rotation.old_hash)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Err(AccountError::InvalidToken);
        };
        let session_id: String = row.try_get("session_id").map_err(unexpected)?;
        let token_expires_at: i64 = row.try_get("expires_at").map_err(unexpected)?;
        let revoked: bool = row.try_get("revoked").map_err(unexpected)?;
        let user_id: String = row.try_get("user_id").map_err(unexpected)?;
        match rotation_outcome(
            marked == 1,
            revoked,
            token_expires_at <= rotation.now.timestamp(),
        ) {
            RotationOutcome::Refuse => return Err(AccountError::InvalidToken),
            RotationOutcome::RevokeSession(answer) => {
                let revoke = sqlx::query(sql::REVOKE_SESSION).bind(&session_id);
                revoke
                    .execute(&mut *transaction)
                    .await
                    .map_err(store_error)?;
                transaction.commit().await.map_err(store_error)?;
                return Err(answer);
            }
            RotationOutcome::Rotate => {}
        }
        // The session's lifetime is absolute: the next token expires with the first.
        let expires_at = chrono::DateTime::from_timestamp(token_expires_at, 0)
            .map_or(rotation.expires_at, |first| first.min(rotation.expires_at));
        insert_token(&mut transaction, rotation.new_hash, &session_id, expires_at).await?;
        transaction.commit().await.map_err(store_error)?;
        Uuid::parse_str(&user_id).map_err(unexpected)
    }

    async fn revoke(&self, token_hash: &str) -> Result<(), AccountError> {
        let revoke = sqlx::query(sql::REVOKE_SESSION_OF_TOKEN).bind(token_hash);
        revoke
            .execute(self.database.writer())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, AccountError> {
        let pool = self.database.writer();
        let tokens = sqlx::query(sql::PURGE_TOKENS)
            .bind(now.timestamp())
            .execute(pool)
            .await
            .map_err(store_error)?
            .rows_affected();
        sqlx::query(sql::PURGE_SESSIONS)
            .execute(pool)
            .await
            .map_err(store_error)?;
        Ok(tokens)
    }
}
