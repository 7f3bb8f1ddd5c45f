use async_trait::async_trait;
use auth::Role;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::accounts::{AccountError, User, UserStore};
use event_store::sqlite::{classify, is_unique_violation, SqliteDatabase};

#[derive(Clone)]
pub struct SqliteUserStore {
    database: SqliteDatabase,
}

impl SqliteUserStore {
    pub fn new(database: SqliteDatabase) -> Self {
        SqliteUserStore { database }
    }
}

fn unexpected(error: impl std::fmt::Display) -> AccountError {
    AccountError::Unexpected(error.to_string())
}

#[async_trait]
impl UserStore for SqliteUserStore {
    async fn create(&self, user: &User) -> Result<(), AccountError> {
        let result = sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(user.created_at.to_rfc3339_opts(SecondsFormat::Micros, true))
        .execute(self.database.writer())
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(AccountError::DuplicateEmail),
            Err(error) => Err(classify(error).into()),
        }
    }

    async fn by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        self.find("email", email).await
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        self.find("id", &id.to_string()).await
    }
}

impl SqliteUserStore {
    async fn find(&self, column: &str, value: &str) -> Result<Option<User>, AccountError> {
        // `column` is one of two literals above, never input.
        let row = sqlx::query(&format!(
            "SELECT id, email, password_hash, role, created_at FROM users WHERE {column} = ?"
        ))
        .bind(value)
        .fetch_optional(self.database.writer())
        .await
        .map_err(|error| AccountError::from(classify(error)))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: String = row.try_get("id").map_err(unexpected)?;
        let role: String = row.try_get("role").map_err(unexpected)?;
        let created_at: String = row.try_get("created_at").map_err(unexpected)?;
        Ok(Some(User {
            id: Uuid::parse_str(&id).map_err(unexpected)?,
            email: row.try_get("email").map_err(unexpected)?,
            password_hash: row.try_get("password_hash").map_err(unexpected)?,
            role: Role::parse(&role).ok_or_else(|| unexpected(format!("stored role {role}")))?,
            created_at: DateTime::parse_from_rfc3339(&created_at)
                .map_err(unexpected)?
                .with_timezone(&Utc),
        }))
    }
}
