use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::accounts::sql::{self, rotation_outcome, unexpected, RotationOutcome};
use crate::accounts::{AccountError, Rotation, SessionStore};
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

async fn insert_token(
    transaction: &mut Transaction<'_, Postgres>,
    token_hash: &str,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), AccountError> {
    let token = sqlx::query(sql::INSERT_TOKEN)
        .bind(token_hash)
        .bind(session_id)
        .bind(expires_at);
    token
        .execute(&mut **transaction)
        .await
        .map_err(store_error)?;
    Ok(())
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
        let session = sqlx::query(sql::INSERT_SESSION)
            .bind(session_id)
            .bind(user_id)
            .bind(Utc::now());
        session
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        insert_token(&mut transaction, token_hash, session_id, expires_at).await?;
        transaction.commit().await.map_err(store_error)
    }

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<Uuid, AccountError> {
        let mut transaction = self.pool.begin().await.map_err(store_error)?;
        let mark = sqlx::query(sql::MARK_TOKEN_USED).bind(rotation.old_hash);
        let marked = mark
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?
            .rows_affected();
        let select = sqlx::query(sql::TOKEN_AND_SESSION).bind(rotation.old_hash);
        let Some(row) = select
            .fetch_optional(&mut *transaction)
            .await
            .map_err(store_error)?
        else {
            return Err(AccountError::InvalidToken);
        };
        let session_id: Uuid = row.try_get("session_id").map_err(unexpected)?;
        let token_expires_at: DateTime<Utc> = row.try_get("expires_at").map_err(unexpected)?;
        let revoked: bool = row.try_get("revoked").map_err(unexpected)?;
        let user_id: Uuid = row.try_get("user_id").map_err(unexpected)?;
        match rotation_outcome(marked == 1, revoked, token_expires_at <= rotation.now) {
            RotationOutcome::Refuse => return Err(AccountError::InvalidToken),
            RotationOutcome::RevokeSession(answer) => {
                let revoke = sqlx::query(sql::REVOKE_SESSION).bind(session_id);
                revoke
                    .execute(&mut *transaction)
                    .await
                    .map_err(store_error)?;
                transaction.commit().await.map_err(store_error)?;
                return Err(answer);
            }
            RotationOutcome::Rotate => {}
        }
        insert_token(
            &mut transaction,
            rotation.new_hash,
            session_id,
            token_expires_at.min(rotation.expires_at),
        )
        .await?;
        transaction.commit().await.map_err(store_error)?;
        Ok(user_id)
    }

    async fn revoke(&self, token_hash: &str) -> Result<(), AccountError> {
        let revoke = sqlx::query(sql::REVOKE_SESSION_OF_TOKEN).bind(token_hash);
        revoke.execute(&self.pool).await.map_err(store_error)?;
        Ok(())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, AccountError> {
        let pool = &self.pool;
        let tokens = sqlx::query(sql::PURGE_TOKENS)
            .bind(now)
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
