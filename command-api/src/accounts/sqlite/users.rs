use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::accounts::sql::{self, unexpected};
use crate::accounts::{AccountError, User, UserStore};
use event_store::sqlite::{classify, is_unique_violation, SqliteDatabase};

/// Users in the embedded SQLite file (ids as text, creation times as RFC 3339 text).
#[derive(Clone)]
pub struct SqliteUserStore {
    database: SqliteDatabase,
}

impl SqliteUserStore {
    pub fn new(database: SqliteDatabase) -> Self {
        SqliteUserStore { database }
    }

    async fn find(&self, statement: &str, value: String) -> Result<Option<User>, AccountError> {
        let row = sqlx::query(statement)
            .bind(value)
            .fetch_optional(self.database.writer())
            .await
            .map_err(|error| AccountError::from(classify(error)))?;
        row.as_ref().map(decode).transpose()
    }
}

fn decode(row: &SqliteRow) -> Result<User, AccountError> {
    let id: String = row.try_get("id").map_err(unexpected)?;
    let role: String = row.try_get("role").map_err(unexpected)?;
    let created_at: String = row.try_get("created_at").map_err(unexpected)?;
    sql::user(
        Uuid::parse_str(&id).map_err(unexpected)?,
        row.try_get("email").map_err(unexpected)?,
        row.try_get("password_hash").map_err(unexpected)?,
        &role,
        DateTime::parse_from_rfc3339(&created_at)
            .map_err(unexpected)?
            .with_timezone(&Utc),
    )
}

#[async_trait]
impl UserStore for SqliteUserStore {
    async fn create(&self, user: &User) -> Result<(), AccountError> {
        let insert = sqlx::query(sql::INSERT_USER)
            .bind(user.id.to_string())
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(user.created_at.to_rfc3339_opts(SecondsFormat::Micros, true));
        match insert.execute(self.database.writer()).await {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(AccountError::DuplicateEmail),
            Err(error) => Err(classify(error).into()),
        }
    }

    async fn by_email(&self, email: &str) -> Result<Option<User>, AccountError> {
        self.find(sql::USER_BY_EMAIL, email.to_owned()).await
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        self.find(sql::USER_BY_ID, id.to_string()).await
    }
}
