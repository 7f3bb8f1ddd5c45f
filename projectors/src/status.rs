//! Projector heartbeats: projector processes report their status every few seconds, in
//! PostgreSQL (whichever process answers `GET /api/admin/projections` reads them) or, in the
//! embedded mode, in the SQLite database (for `catalog projections status|rebuild`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::{Row, SqlitePool};

use crate::runner::{Projector, ProjectorStatus, RebuildProgress};

/// How often a projector process reports.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A report older than this means the projector is not running.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// Writes the status of each of `projectors` with `write` every [`HEARTBEAT`] until the task
/// is dropped (a failed write waits for the next beat).
async fn heartbeat<F, Fut>(projectors: Vec<Projector>, write: F)
where
    F: Fn(ProjectorStatus) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        // The projectors of one process read one store: its head once a beat.
        let head = match projectors.first().map(Projector::store_head) {
            Some(head) => head.await,
            None => continue,
        };
        if let Err(error) = &head {
            tracing::debug!(%error, "cannot read the store's head for the projectors' lag");
        }
        for projector in &projectors {
            if let Err(error) = write(projector.status()).await {
                tracing::debug!(%error, "cannot report projector status");
            }
            if let Ok(head) = head {
                if let Err(error) = projector.record_lag(head).await {
                    tracing::debug!(%error, "cannot measure projector lag");
                }
            }
        }
    }
}

/// Reports the status of `projectors` every [`HEARTBEAT`] until the task is dropped.
pub async fn report(pool: PgPool, projectors: Vec<Projector>) {
    heartbeat(projectors, |status| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO projector_status (name, state, position, last_error, updated_at, \
                 generation, rebuild) VALUES ($1, $2, $3, $4, now(), $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET \
                 state = EXCLUDED.state, position = EXCLUDED.position, \
                 last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at, \
                 generation = EXCLUDED.generation, rebuild = EXCLUDED.rebuild",
            )
            .bind(&status.name)
            .bind(&status.state)
            .bind(status.position as i64)
            .bind(&status.last_error)
            .bind(status.generation as i64)
            .bind(status.rebuild.as_ref().map(sqlx::types::Json))
            .execute(&pool)
            .await
            .map(drop)
        }
    })
    .await
}

/// Every reported projector; one whose report is stale shows state `stopped`.
pub async fn read(pool: &PgPool) -> Result<Vec<ProjectorStatus>, sqlx::Error> {
    // The checkpoint is the truth about the position; the heartbeat may be a moment behind.
    let rows = sqlx::query(
        "SELECT s.name, s.state, GREATEST(s.position, COALESCE(c.position, 0)) AS position, \
         s.last_error, s.updated_at, s.generation, s.rebuild FROM projector_status s \
         LEFT JOIN rm_checkpoints c ON c.projection = s.name ORDER BY s.name",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let rebuild =
                row.try_get::<Option<sqlx::types::Json<RebuildProgress>>, _>("rebuild")?;
            from_row(row, rebuild.map(|json| json.0))
        })
        .collect()
}

/// Reports the status of `projectors` into the embedded mode's SQLite database every
/// [`HEARTBEAT`] until the task is dropped.
pub async fn report_sqlite(pool: SqlitePool, projectors: Vec<Projector>) {
    heartbeat(projectors, |status| {
        let pool = pool.clone();
        async move {
            let rebuild = status
                .rebuild
                .as_ref()
                .and_then(|progress| serde_json::to_string(progress).ok());
            sqlx::query(
                "INSERT INTO projector_status (name, state, position, last_error, updated_at, \
                 generation, rebuild) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (name) DO UPDATE SET \
                 state = excluded.state, position = excluded.position, \
                 last_error = excluded.last_error, updated_at = excluded.updated_at, \
                 generation = excluded.generation, rebuild = excluded.rebuild",
            )
            .bind(&status.name)
            .bind(&status.state)
            .bind(status.position as i64)
            .bind(&status.last_error)
            .bind(Utc::now())
            .bind(status.generation as i64)
            .bind(rebuild)
            .execute(&pool)
            .await
            .map(drop)
        }
    })
    .await
}

/// Every projector the embedded serving process reported; stale ones show state `stopped`.
pub async fn read_sqlite(pool: &SqlitePool) -> Result<Vec<ProjectorStatus>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, state, position, last_error, updated_at, generation, rebuild \
         FROM projector_status ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let rebuild = row
                .try_get::<Option<String>, _>("rebuild")?
                .and_then(|text| serde_json::from_str(&text).ok());
            from_row(row, rebuild)
        })
        .collect()
}

/// A status from a heartbeat row (`rebuild` decoded by the caller: JSONB in PostgreSQL, text
/// in SQLite).
fn from_row<R>(row: &R, rebuild: Option<RebuildProgress>) -> Result<ProjectorStatus, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let updated_at: DateTime<Utc> = row.try_get("updated_at")?;
    let stale = (Utc::now() - updated_at).to_std().unwrap_or_default() > STALE_AFTER;
    let state: String = row.try_get("state")?;
    Ok(ProjectorStatus {
        name: row.try_get("name")?,
        state: if stale { "stopped".to_owned() } else { state },
        position: row.try_get::<i64, _>("position")?.max(0) as u64,
        last_event_at: None,
        last_error: row.try_get("last_error")?,
        generation: row.try_get::<i64, _>("generation")?.max(1) as u64,
        rebuild: rebuild.filter(|_| !stale),
        // The parked-event store says; see `parking::ParkingStore::held_counts`.
        parked: 0,
    })
}
