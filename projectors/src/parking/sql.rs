//! The parked-event records in SQL: `parked_events` in the embedded mode's SQLite database
//! (`event-store/migrations`) and in PostgreSQL (`projectors/migrations-postgres`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, SqlitePool};
use uuid::Uuid;

use super::{
    ParkedAction, ParkedEvent, ParkedState, ParkingError, ParkingStore, ViewAction, ViewRequest,
};

fn unavailable(error: sqlx::Error) -> ParkingError {
    ParkingError::Unavailable(error.to_string())
}

fn corrupt(what: &str) -> ParkingError {
    ParkingError::Unavailable(format!("a parked-event record has a malformed {what}"))
}

fn position(value: i64) -> Result<u64, ParkingError> {
    u64::try_from(value).map_err(|_| corrupt("position"))
}

fn signed(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

fn state(text: &str) -> Result<ParkedState, ParkingError> {
    ParkedState::parse(text).ok_or_else(|| corrupt("state"))
}

fn action(text: Option<String>) -> Option<ParkedAction> {
    text.as_deref().and_then(ParkedAction::parse)
}

/// A record from a row of `parked_events` (`aggregate_id` decoded by the caller: TEXT in SQLite,
/// UUID in PostgreSQL).
fn record<R>(row: &R, aggregate_id: Uuid) -> Result<ParkedEvent, ParkingError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ParkedEvent {
        view: row.try_get("view").map_err(unavailable)?,
        position: position(row.try_get("position").map_err(unavailable)?)?,
        aggregate_id,
        event_type: row.try_get("event_type").map_err(unavailable)?,
        state: state(&row.try_get::<String, _>("state").map_err(unavailable)?)?,
        error: row.try_get("error").map_err(unavailable)?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(unavailable)?)
            .unwrap_or(u32::MAX),
        first_attempt_at: row.try_get("first_attempt_at").map_err(unavailable)?,
        last_attempt_at: row.try_get("last_attempt_at").map_err(unavailable)?,
        requested: action(row.try_get("requested").map_err(unavailable)?),
        decided_by: row.try_get("decided_by").map_err(unavailable)?,
        decided_at: row.try_get("decided_at").map_err(unavailable)?,
    })
}

/// The held counts per view from rows of `(view, held)`.
fn counts<R>(rows: &[R]) -> Result<BTreeMap<String, u64>, ParkingError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|row| {
            let held: i64 = row.try_get("held").map_err(unavailable)?;
            Ok((row.try_get("view").map_err(unavailable)?, position(held)?))
        })
        .collect()
}

/// Binds every column of `record` but the aggregate id, in the order of the `INSERT`s below;
/// the caller binds the aggregate id last (TEXT in SQLite, UUID in PostgreSQL).
fn bind_record<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    record: &'q ParkedEvent,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(record.view.as_str())
        .bind(signed(record.position))
        .bind(record.event_type.as_str())
        .bind(record.state.as_str())
        .bind(record.error.as_deref())
        .bind(i64::from(record.attempts))
        .bind(record.first_attempt_at)
        .bind(record.last_attempt_at)
        .bind(record.requested.map(ParkedAction::as_str))
        .bind(record.decided_by.as_deref())
        .bind(record.decided_at)
}

const SELECT: &str = "SELECT view, position, aggregate_id, event_type, state, error, attempts, \
     first_attempt_at, last_attempt_at, requested, decided_by, decided_at FROM parked_events";
const HELD_COUNTS: &str = "SELECT view, COUNT(*) AS held FROM parked_events \
     WHERE state IN ('failed', 'waiting') GROUP BY view";

/// View requests from rows of `(id, action, requested_by)`, oldest first.
fn view_requests<R>(mut rows: Vec<R>) -> Result<Vec<ViewRequest>, ParkingError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.sort_by_key(|row| row.try_get::<i64, _>("id").unwrap_or(0));
    rows.iter()
        .map(|row| {
            let action: String = row.try_get("action").map_err(unavailable)?;
            Ok(ViewRequest {
                action: ViewAction::parse(&action).ok_or_else(|| corrupt("view action"))?,
                requested_by: row.try_get("requested_by").map_err(unavailable)?,
            })
        })
        .collect()
}

/// Deletes and returns one view's requests, oldest first (both engines speak this SQL but
/// for the placeholder).
fn take_requests_sql(placeholder: &str) -> String {
    format!(
        "DELETE FROM projection_requests WHERE id IN \
         (SELECT id FROM projection_requests WHERE view = {placeholder} ORDER BY id) \
         RETURNING id, action, requested_by"
    )
}

/// `parked_events` in SQLite (the embedded mode's `catalog.db`).
#[derive(Clone)]
pub struct SqliteParking {
    pool: SqlitePool,
}

impl SqliteParking {
    /// `pool` writes the database (SQLite has one writer).
    pub fn new(pool: SqlitePool) -> Self {
        SqliteParking { pool }
    }
}

#[async_trait]
impl ParkingStore for SqliteParking {
    async fn save(&self, record: &ParkedEvent) -> Result<(), ParkingError> {
        bind_record(
            sqlx::query(
                "INSERT OR REPLACE INTO parked_events (view, position, event_type, state, error, \
                 attempts, first_attempt_at, last_attempt_at, requested, decided_by, decided_at, \
                 aggregate_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ),
            record,
        )
        .bind(record.aggregate_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn list(&self, view: &str) -> Result<Vec<ParkedEvent>, ParkingError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE view = ? ORDER BY position"))
            .bind(view)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("aggregate_id").map_err(unavailable)?;
                record(
                    row,
                    Uuid::parse_str(&id).map_err(|_| corrupt("aggregate id"))?,
                )
            })
            .collect()
    }

    async fn held_counts(&self) -> Result<BTreeMap<String, u64>, ParkingError> {
        let rows = sqlx::query(HELD_COUNTS)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        counts(&rows)
    }

    async fn request(
        &self,
        view: &str,
        position: u64,
        action: ParkedAction,
        by: &str,
    ) -> Result<bool, ParkingError> {
        let done = sqlx::query(
            "UPDATE parked_events SET requested = ?, decided_by = ?, decided_at = ? \
             WHERE view = ? AND position = ? AND state = 'failed'",
        )
        .bind(action.as_str())
        .bind(by)
        .bind(Utc::now())
        .bind(view)
        .bind(signed(position))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn request_view(
        &self,
        view: &str,
        action: ViewAction,
        by: &str,
    ) -> Result<(), ParkingError> {
        sqlx::query(
            "INSERT INTO projection_requests (view, action, requested_by, requested_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(view)
        .bind(action.as_str())
        .bind(by)
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn take_view_requests(&self, view: &str) -> Result<Vec<ViewRequest>, ParkingError> {
        view_requests(
            sqlx::query(&take_requests_sql("?"))
                .bind(view)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?,
        )
    }
}

/// `parked_events` in PostgreSQL (the distributed mode), shared by every projector process.
#[derive(Clone)]
pub struct PostgresParking {
    pool: PgPool,
}

impl PostgresParking {
    pub fn new(pool: PgPool) -> Self {
        PostgresParking { pool }
    }
}

#[async_trait]
impl ParkingStore for PostgresParking {
    async fn save(&self, record: &ParkedEvent) -> Result<(), ParkingError> {
        bind_record(
            sqlx::query(
                "INSERT INTO parked_events (view, position, event_type, state, error, attempts, \
                 first_attempt_at, last_attempt_at, requested, decided_by, decided_at, aggregate_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (view, position) DO UPDATE SET aggregate_id = EXCLUDED.aggregate_id, \
                 event_type = EXCLUDED.event_type, state = EXCLUDED.state, error = EXCLUDED.error, \
                 attempts = EXCLUDED.attempts, first_attempt_at = EXCLUDED.first_attempt_at, \
                 last_attempt_at = EXCLUDED.last_attempt_at, requested = EXCLUDED.requested, \
                 decided_by = EXCLUDED.decided_by, decided_at = EXCLUDED.decided_at",
            ),
            record,
        )
        .bind(record.aggregate_id)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn list(&self, view: &str) -> Result<Vec<ParkedEvent>, ParkingError> {
        let rows = sqlx::query(&format!("{SELECT} WHERE view = $1 ORDER BY position"))
            .bind(view)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| record(row, row.try_get("aggregate_id").map_err(unavailable)?))
            .collect()
    }

    async fn held_counts(&self) -> Result<BTreeMap<String, u64>, ParkingError> {
        let rows = sqlx::query(HELD_COUNTS)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        counts(&rows)
    }

    async fn request(
        &self,
        view: &str,
        position: u64,
        action: ParkedAction,
        by: &str,
    ) -> Result<bool, ParkingError> {
        let done = sqlx::query(
            "UPDATE parked_events SET requested = $1, decided_by = $2, decided_at = now() \
             WHERE view = $3 AND position = $4 AND state = 'failed'",
        )
        .bind(action.as_str())
        .bind(by)
        .bind(view)
        .bind(signed(position))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn request_view(
        &self,
        view: &str,
        action: ViewAction,
        by: &str,
    ) -> Result<(), ParkingError> {
        sqlx::query(
            "INSERT INTO projection_requests (view, action, requested_by) VALUES ($1, $2, $3)",
        )
        .bind(view)
        .bind(action.as_str())
        .bind(by)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn take_view_requests(&self, view: &str) -> Result<Vec<ViewRequest>, ParkingError> {
        view_requests(
            sqlx::query(&take_requests_sql("$1"))
                .bind(view)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?,
        )
    }
}
