use async_trait::async_trait;
use auth::Role;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::Row;
use uuid::Uuid;

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

fn unexpected(error: impl std::fmt::Display) -> AccountError {
    AccountError::Unexpected(error.to_string())
}

fn decode(row: &sqlx::postgres::PgRow) -> Result<User, AccountError> {
    let role: String = row.try_get("role").map_err(unexpected)?;
    Ok(User {
        id: row.try_get("id").map_err(unexpected)?,
        email: row.try_get("email").map_err(unexpected)?,
        password_hash: row.try_get("password_hash").map_err(unexpected)?,
        role: Role::parse(&role).ok_or_else(|| unexpected(format!("stored role {role}")))?,
        created_at: row
            .try_get::<DateTime<Utc>, _>("created_at")
            .map_err(unexpected)?,
    })
}

#[async_trait]
impl UserStore for PostgresUserStore {
    async fn create(&self, user: &User) -> Result<(), AccountError> {
        let result = sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(AccountError::DuplicateEmail),
            Err(error) => Err(classify(error).into()),
        }
    }

    async fn by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        let row = sqlx::query(
            "SELECT id, email, password_hash, role, created_at FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| AccountError::from(classify(error)))?;
        row.as_ref().map(decode).transpose()
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        let row = sqlx::query(
            "SELECT id, email, password_hash, role, created_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| AccountError::from(classify(error)))?;
        row.as_ref().map(decode).transpose()
    }
}
