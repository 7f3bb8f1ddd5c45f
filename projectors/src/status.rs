//! Projector heartbeats in PostgreSQL: projector processes report their status every few
//! seconds; whichever process answers `GET /api/admin/projections` reads them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::Row;

use crate::runner::{Projector, ProjectorStatus, RebuildProgress};

/// How often a projector process reports.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A report older than this means the projector is not running.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// Reports the status of `projectors` every [`HEARTBEAT`] until the task is dropped.
pub async fn report(pool: PgPool, projectors: Vec<Projector>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        for projector in &projectors {
            let status = projector.status();
            let written = sqlx::query(
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
            .await;
            if let Err(error) = written {
                tracing::debug!(%error, "cannot report projector status");
            }
        }
    }
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
    let mut statuses = Vec::with_capacity(rows.len());
    for row in rows {
        let updated_at: DateTime<Utc> = row.try_get("updated_at")?;
        let stale = (Utc::now() - updated_at).to_std().unwrap_or_default() > STALE_AFTER;
        let state: String = row.try_get("state")?;
        statuses.push(ProjectorStatus {
            name: row.try_get("name")?,
            state: if stale { "stopped".to_owned() } else { state },
            position: row.try_get::<i64, _>("position")?.max(0) as u64,
            last_event_at: None,
            last_error: row.try_get("last_error")?,
            generation: row.try_get::<i64, _>("generation")?.max(1) as u64,
            rebuild: row
                .try_get::<Option<sqlx::types::Json<RebuildProgress>>, _>("rebuild")?
                .filter(|_| !stale)
                .map(|json| json.0),
            // The parked-event store says; see `parking::ParkingStore::held_counts`.
            parked: 0,
        });
    }
    Ok(statuses)
}
