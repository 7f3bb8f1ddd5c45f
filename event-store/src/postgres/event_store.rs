use async_trait::async_trait;
use events::store::{validate_streams, Claimed, EventStore, Snapshot, StoreError, StreamAppend};
use events::Envelope;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{append, classify};
use crate::group::{self, AppendRequest, Appender};

/// The channel the store notifies (in the append's transaction, so at commit) when it wrote
/// outbox rows; relays listen on it instead of polling hard.
pub const OUTBOX_CHANNEL: &str = "catalog_outbox";

/// The distributed event store on PostgreSQL.
///
/// # Dense, commit-ordered positions
///
/// A `BIGSERIAL` would hand out positions at insert time, before commit: a reader could see
/// position N+1 committed while N's transaction is still open, skip N, and never see it (the
/// reserved-before-commit gap). Here every append transaction first locks the single row of
/// `event_head` (`SELECT … FOR UPDATE`), takes the positions after it, and writes the new head
/// before it commits. The row lock is released only after the commit is visible, so the next
/// appender — in this process or in any other command-api replica — reads a head that already
/// includes every committed position, and commits after it. Positions are therefore dense (a
/// rolled-back transaction never moved the head) and commit-ordered.
///
/// # Group commit
///
/// Serialising appends on one row would cap throughput at one commit (one WAL flush) at a
/// time. So each process has one writer task that takes every append waiting for it and
/// commits them together in one transaction: under load, 64 concurrent commands cost one
/// flush, not 64. Each append in a group still succeeds or fails on its own: versions and
/// unique claims are checked in Rust against one read of the current state (made under the
/// head lock, so nothing else can change it), before anything is written.
///
/// # Outbox
///
/// With `outbox`, each appended event also gets an `outbox` row in the same transaction; the
/// relay ([`crate::outbox::OutboxRelay`]) publishes and deletes them.
#[derive(Clone)]
pub struct PostgresEventStore {
    pool: PgPool,
    writer: Appender,
}

impl PostgresEventStore {
    /// Starts the writer task; it ends when the last clone of the store is dropped.
    pub fn new(pool: PgPool, outbox: bool) -> Self {
        let (writer, requests) = group::queue();
        tokio::spawn(write_loop(pool.clone(), requests, outbox));
        PostgresEventStore { pool, writer }
    }
}

async fn write_loop(pool: PgPool, mut requests: mpsc::Receiver<AppendRequest>, outbox: bool) {
    while let Some(batch) = group::next_group(&mut requests).await {
        let streams: Vec<&[StreamAppend]> = batch.iter().map(|r| r.streams.as_slice()).collect();
        let mut outcome = append::commit_group(&pool, &streams, outbox).await;
        if let Err(StoreError::Conflict { .. }) = outcome {
            // Another writer took a version after our check (see `append::write_error`):
            // checked again, each append now fails or succeeds on its own.
            outcome = append::commit_group(&pool, &streams, outbox).await;
        }
        group::answer_group(batch, outcome);
    }
}

pub(super) fn unexpected(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(error.to_string())
}

const COLUMNS: &str = "position, event_id, event_type, schema_version, aggregate_id, \
    aggregate_version, occurred_at, actor, correlation_id, causation_id, data";

/// Reads one `events` row (selected with [`COLUMNS`]).
pub fn decode_row(row: &PgRow) -> Result<Envelope, StoreError> {
    Ok(Envelope {
        position: row.try_get::<i64, _>("position").map_err(unexpected)? as u64,
        event_id: row.try_get("event_id").map_err(unexpected)?,
        event_type: row.try_get("event_type").map_err(unexpected)?,
        schema_version: row
            .try_get::<i32, _>("schema_version")
            .map_err(unexpected)? as u32,
        aggregate_id: row.try_get("aggregate_id").map_err(unexpected)?,
        aggregate_version: row
            .try_get::<i64, _>("aggregate_version")
            .map_err(unexpected)? as u64,
        occurred_at: row.try_get("occurred_at").map_err(unexpected)?,
        actor: row.try_get("actor").map_err(unexpected)?,
        correlation_id: row.try_get("correlation_id").map_err(unexpected)?,
        causation_id: row.try_get("causation_id").map_err(unexpected)?,
        data: row
            .try_get::<sqlx::types::Json<serde_json::Value>, _>("data")
            .map_err(unexpected)?
            .0,
    })
}

/// The `SELECT` list of an events row, for queries elsewhere (the outbox relay).
pub fn event_columns(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl EventStore for PostgresEventStore {
    #[tracing::instrument(name = "event_store.append", level = "debug", skip_all, fields(streams = streams.len()))]
    async fn append(&self, mut streams: Vec<StreamAppend>) -> Result<Vec<Envelope>, StoreError> {
        validate_streams(&streams)?;
        // The outbox rows keep this span's context (unless the command's own is there
        // already, from a batch of several requests): the relay's publish is its child.
        if let Some(traceparent) = events::trace::current() {
            for event in streams
                .iter_mut()
                .flat_map(|stream| stream.events.iter_mut())
            {
                event
                    .metadata
                    .traceparent
                    .get_or_insert_with(|| traceparent.clone());
            }
        }
        self.writer.append(streams).await
    }

    #[tracing::instrument(skip_all, fields(aggregate_id = %aggregate_id))]
    async fn read_aggregate(&self, aggregate_id: Uuid) -> Result<Vec<Envelope>, StoreError> {
        // Versions start at 1: everything after 0 is the whole stream.
        self.read_aggregate_after(aggregate_id, 0).await
    }

    async fn read_aggregate_after(
        &self,
        aggregate_id: Uuid,
        after: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_id = $1 AND aggregate_version > $2 \
             ORDER BY aggregate_version"
        ))
        .bind(aggregate_id)
        .bind(after.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(decode_row).collect()
    }

    async fn read_snapshot(
        &self,
        aggregate_id: Uuid,
        state_version: u32,
    ) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT aggregate_version, state FROM snapshots \
             WHERE aggregate_id = $1 AND state_version = $2",
        )
        .bind(aggregate_id)
        .bind(state_version as i32)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.map(|row| {
            Ok(Snapshot {
                aggregate_id,
                aggregate_version: row
                    .try_get::<i64, _>("aggregate_version")
                    .map_err(unexpected)? as u64,
                state_version,
                state: row
                    .try_get::<sqlx::types::Json<serde_json::Value>, _>("state")
                    .map_err(unexpected)?
                    .0,
            })
        })
        .transpose()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let saved = sqlx::query(
            "WITH s AS ( \
                 INSERT INTO snapshots (aggregate_id, state_version, aggregate_version, state, \
                     taken_at) \
                 SELECT $1, $2, $3, $4::jsonb, now() WHERE EXISTS (SELECT 1 FROM events \
                     WHERE aggregate_id = $1 AND aggregate_version = $3) \
                 ON CONFLICT (aggregate_id, state_version) DO UPDATE \
                 SET aggregate_version = excluded.aggregate_version, state = excluded.state, \
                     taken_at = excluded.taken_at \
                 WHERE snapshots.aggregate_version < excluded.aggregate_version \
                 RETURNING 1 \
             ), x AS ( \
                 DELETE FROM snapshots WHERE aggregate_id = $1 AND state_version <> $2 \
                     AND EXISTS (SELECT 1 FROM s) \
             ) \
             SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_id = $1 \
                 AND aggregate_version = $3)",
        )
        .bind(snapshot.aggregate_id)
        .bind(snapshot.state_version as i32)
        .bind(snapshot.aggregate_version.min(i64::MAX as u64) as i64)
        .bind(snapshot.state.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        let has_event: bool = saved.try_get(0).map_err(unexpected)?;
        if !has_event {
            return Err(StoreError::Invalid(format!(
                "aggregate {} has no version {}",
                snapshot.aggregate_id, snapshot.aggregate_version
            )));
        }
        Ok(())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(decode_row).collect()
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_head WHERE id")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(head as u64)
    }

    async fn claimed(&self, scope: &str, value: &str) -> Result<Option<Claimed>, StoreError> {
        let row: Option<(Uuid, Option<i64>)> = sqlx::query_as(
            "SELECT aggregate_id, position FROM unique_claims WHERE scope = $1 AND value = $2",
        )
        .bind(scope)
        .bind(value)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.map(|(aggregate_id, position)| Claimed {
            aggregate_id,
            position: position.map(|position| position as u64),
        }))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}
