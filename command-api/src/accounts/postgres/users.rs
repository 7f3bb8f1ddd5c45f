use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;
use uuid::Uuid;

use crate::accounts::sql::{self, unexpected};
use crate::accounts::{AccountError, User, UserStore};
use event_store::postgres::{classify, is_unique_violation};

/// Users in PostgreSQL, shared by every command-api replica.
#[derive(Clone)]
pub struct PostgresUserStore {
    pool: PgPool,
}

impl PostgresUserStore {
    pub fn new(pool: PgPool) -> Self {
        PostgresUserStore { pool }
    }
}

fn decode(row: &PgRow) -> Result<User, AccountError> {
    let role: String = row.try_get("role").map_err(unexpected)?;
    sql::user(
        row.try_get("id").map_err(unexpected)?,
        row.try_get("email").map_err(unexpected)?,
        row.try_get("password_hash").map_err(unexpected)?,
        &role,
        row.try_get::<DateTime<Utc>, _>("created_at")
            .map_err(unexpected)?,
    )
}

#[async_trait]
impl UserStore for PostgresUserStore {
    async fn create(&self, user: &User) -> Result<(), AccountError> {
        let insert = sqlx::query(sql::INSERT_USER)
            .bind(user.id)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(user.created_at);
        match insert.execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(AccountError::DuplicateEmail),
            Err(error) => Err(classify(error).into()),
        }
    }

    async fn by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        let select = sqlx::query(sql::USER_BY_EMAIL).bind(email);
        let row = select
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| AccountError::from(classify(error)))?;
        row.as_ref().map(decode).transpose()
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        let select = sqlx::query(sql::USER_BY_ID).bind(id);
        let row = select
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| AccountError::from(classify(error)))?;
        row.as_ref().map(decode).transpose()
    }
}
