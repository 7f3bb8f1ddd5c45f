use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use events::store::{
    validate_streams, Claimed, EventStore, Snapshot, StoreError, StreamAppend, REQUEST_CLAIM_SCOPE,
};
use events::Envelope;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Acquire, Row, Sqlite, Transaction};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{classify, is_unique_violation, unexpected, SqliteDatabase};
use crate::group::{self, AppendRequest, AppendResult};

/// The embedded event store.
///
/// Concurrency: appends queue for one writer task on the single writer connection, which
/// commits every append waiting in one transaction (group commit, [`crate::group`]), each in
/// a savepoint. The transaction's first statement is an INSERT, so it holds SQLite's write
/// lock from its start (no read-to-write upgrade that could fail). Conflicts surface as the unique `(aggregate_id,
/// aggregate_version)` constraint; a caller that expected a version the aggregate has not
/// reached is caught by checking that version exists.
#[derive(Clone)]
pub struct SqliteEventStore {
    database: SqliteDatabase,
}

impl SqliteEventStore {
    pub fn new(database: SqliteDatabase) -> Self {
        SqliteEventStore { database }
    }
}

const COLUMNS: &str = "position, event_id, event_type, schema_version, aggregate_id, \
    aggregate_version, occurred_at, actor, correlation_id, causation_id, data";

fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn decode_row(row: &SqliteRow) -> Result<Envelope, StoreError> {
    let get_text = |column: &str| row.try_get::<String, _>(column).map_err(unexpected);
    let parse_uuid = |column: &str| -> Result<Uuid, StoreError> {
        Uuid::parse_str(&get_text(column)?).map_err(unexpected)
    };
    let occurred_at = DateTime::parse_from_rfc3339(&get_text("occurred_at")?)
        .map_err(unexpected)?
        .with_timezone(&Utc);
    Ok(Envelope {
        position: row.try_get::<i64, _>("position").map_err(unexpected)? as u64,
        event_id: parse_uuid("event_id")?,
        event_type: get_text("event_type")?,
        schema_version: row
            .try_get::<i64, _>("schema_version")
            .map_err(unexpected)? as u32,
        aggregate_id: parse_uuid("aggregate_id")?,
        aggregate_version: row
            .try_get::<i64, _>("aggregate_version")
            .map_err(unexpected)? as u64,
        occurred_at,
        actor: row.try_get("actor").map_err(unexpected)?,
        correlation_id: row.try_get("correlation_id").map_err(unexpected)?,
        causation_id: row.try_get("causation_id").map_err(unexpected)?,
        data: serde_json::from_str(&get_text("data")?).map_err(unexpected)?,
    })
}

/// The writer task: every group of waiting appends in one transaction, each append in a
/// savepoint of its own, so one append's conflict rolls back only that append.
pub(super) async fn write_loop(writer: SqlitePool, mut requests: mpsc::Receiver<AppendRequest>) {
    while let Some(batch) = group::next_group(&mut requests).await {
        let outcome = commit_group(&writer, &batch).await;
        group::answer_group(batch, outcome);
    }
}

async fn commit_group(
    writer: &SqlitePool,
    batch: &[AppendRequest],
) -> Result<Vec<AppendResult>, StoreError> {
    let mut transaction = writer.begin().await.map_err(classify)?;
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let outcome = if is_one_statement(&request.streams) {
            // One statement: it writes all its rows or none, no savepoint needed.
            append_streams(&mut transaction, &request.streams).await
        } else {
            let mut savepoint = Acquire::begin(&mut *transaction).await.map_err(classify)?;
            let outcome = append_streams(&mut savepoint, &request.streams).await;
            match &outcome {
                Ok(_) => savepoint.commit().await.map_err(classify)?,
                Err(_) => savepoint.rollback().await.map_err(classify)?,
            }
            outcome
        };
        match outcome {
            Err(StoreError::Unavailable(message)) => return Err(StoreError::Unavailable(message)),
            outcome => results.push(outcome),
        }
    }
    transaction.commit().await.map_err(classify)?;
    Ok(results)
}

/// Events per `INSERT` (ten parameters each, well under SQLite's limit of 32,766).
const EVENTS_PER_STATEMENT: usize = 500;

/// Whether an append is a single statement: one stream, no claims, no snapshot, one chunk.
fn is_one_statement(streams: &[StreamAppend]) -> bool {
    matches!(streams, [stream] if stream.unique_claims.is_empty()
        && stream.snapshot.is_none()
        && stream.events.len() <= EVENTS_PER_STATEMENT)
}

/// One append's streams, inside the group's transaction.
async fn append_streams(
    transaction: &mut Transaction<'_, Sqlite>,
    streams: &[StreamAppend],
) -> Result<Vec<Envelope>, StoreError> {
    let mut stored = Vec::new();
    for stream in streams {
        let conflict = || StoreError::Conflict {
            aggregate_id: stream.aggregate_id,
            expected_version: stream.expected_version,
        };
        for (index, chunk) in stream.events.chunks(EVENTS_PER_STATEMENT).enumerate() {
            // The first chunk checks that the expected version exists (a caller that expected
            // a version the aggregate has not reached); the unique `(aggregate_id,
            // aggregate_version)` catches one that was taken.
            let check = index == 0 && stream.expected_version > 0;
            let positions = match insert_events(transaction, stream, chunk, check).await {
                Ok(positions) => positions,
                Err(error) if is_unique_violation(&error) => return Err(conflict()),
                Err(error) => return Err(classify(error)),
            };
            if positions.len() != chunk.len() {
                return Err(conflict());
            }
            for (event, position) in chunk.iter().zip(positions) {
                stored.push(event.clone().into_envelope(position as u64));
            }
        }
        let last_position = stored.last().map(|envelope| envelope.position as i64);
        for claim in &stream.unique_claims {
            let taken = sqlx::query(
                "INSERT INTO unique_claims (scope, value, aggregate_id, position) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (scope, value) DO NOTHING",
            )
            .bind(&claim.scope)
            .bind(&claim.value)
            .bind(stream.aggregate_id.to_string())
            .bind(last_position)
            .execute(&mut **transaction)
            .await
            .map_err(classify)?
            .rows_affected()
                == 1;
            // A claim in the request scope is taken once, whatever the aggregate.
            if !taken && claim.scope == REQUEST_CLAIM_SCOPE {
                return Err(StoreError::UniqueViolation {
                    scope: claim.scope.clone(),
                    value: claim.value.clone(),
                });
            }
            let owner: String = sqlx::query_scalar(
                "SELECT aggregate_id FROM unique_claims WHERE scope = ? AND value = ?",
            )
            .bind(&claim.scope)
            .bind(&claim.value)
            .fetch_one(&mut **transaction)
            .await
            .map_err(classify)?;
            if owner != stream.aggregate_id.to_string() {
                return Err(StoreError::UniqueViolation {
                    scope: claim.scope.clone(),
                    value: claim.value.clone(),
                });
            }
        }
        if let Some(snapshot) = &stream.snapshot {
            write_snapshot(transaction, snapshot).await?;
        }
    }
    Ok(stored)
}

/// Inserts `chunk` in one statement; the positions it took, in the chunk's order. With
/// `check`, nothing is inserted unless the stream's expected version exists.
async fn insert_events(
    transaction: &mut Transaction<'_, Sqlite>,
    stream: &StreamAppend,
    chunk: &[events::NewEvent],
    check: bool,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut sql = String::from(
        "INSERT INTO events (event_id, event_type, schema_version, aggregate_id, \
         aggregate_version, occurred_at, actor, correlation_id, causation_id, data) \
         SELECT * FROM (VALUES ",
    );
    for index in 0..chunk.len() {
        sql.push_str(if index == 0 { "" } else { ", " });
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    }
    sql.push_str(") WHERE ");
    sql.push_str(if check {
        "EXISTS (SELECT 1 FROM events WHERE aggregate_id = ? AND aggregate_version = ?)"
    } else {
        "1"
    });
    sql.push_str(" RETURNING position");
    let mut query = sqlx::query_scalar::<_, i64>(&sql);
    for event in chunk {
        query = query
            .bind(event.event_id.to_string())
            .bind(&event.event_type)
            .bind(i64::from(event.schema_version))
            .bind(event.aggregate_id.to_string())
            .bind(event.aggregate_version as i64)
            .bind(timestamp(&event.occurred_at))
            .bind(&event.metadata.actor)
            .bind(&event.metadata.correlation_id)
            .bind(&event.metadata.causation_id)
            .bind(event.data.to_string());
    }
    if check {
        query = query
            .bind(stream.aggregate_id.to_string())
            .bind(stream.expected_version as i64);
    }
    let mut positions = query.fetch_all(&mut **transaction).await?;
    // Rowids are taken in insertion order, which is the order of the VALUES rows.
    positions.sort_unstable();
    Ok(positions)
}

/// Saves `snapshot` unless a newer one of its format is there, and drops other formats.
async fn write_snapshot(
    connection: &mut SqliteConnection,
    snapshot: &Snapshot,
) -> Result<(), StoreError> {
    let id = snapshot.aggregate_id.to_string();
    let written = sqlx::query(
        "INSERT INTO snapshots (aggregate_id, state_version, aggregate_version, state, taken_at) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (aggregate_id, state_version) DO UPDATE \
         SET aggregate_version = excluded.aggregate_version, state = excluded.state, \
             taken_at = excluded.taken_at \
         WHERE snapshots.aggregate_version < excluded.aggregate_version",
    )
    .bind(&id)
    .bind(i64::from(snapshot.state_version))
    .bind(snapshot.aggregate_version.min(i64::MAX as u64) as i64)
    .bind(snapshot.state.to_string())
    .bind(timestamp(&Utc::now()))
    .execute(&mut *connection)
    .await
    .map_err(classify)?;
    if written.rows_affected() > 0 {
        sqlx::query("DELETE FROM snapshots WHERE aggregate_id = ? AND state_version <> ?")
            .bind(&id)
            .bind(i64::from(snapshot.state_version))
            .execute(&mut *connection)
            .await
            .map_err(classify)?;
    }
    Ok(())
}

#[async_trait]
impl EventStore for SqliteEventStore {
    #[tracing::instrument(skip_all, fields(streams = streams.len()))]
    async fn append(&self, streams: Vec<StreamAppend>) -> Result<Vec<Envelope>, StoreError> {
        validate_streams(&streams)?;
        self.database.appender.append(streams).await
    }

    async fn read_aggregate_after(
        &self,
        aggregate_id: Uuid,
        after: u64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_id = ? AND aggregate_version > ? \
             ORDER BY aggregate_version"
        ))
        .bind(aggregate_id.to_string())
        .bind(after.min(i64::MAX as u64) as i64)
        .fetch_all(&self.database.reader)
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
             WHERE aggregate_id = ? AND state_version = ?",
        )
        .bind(aggregate_id.to_string())
        .bind(i64::from(state_version))
        .fetch_optional(&self.database.reader)
        .await
        .map_err(classify)?;
        row.map(|row| {
            let state: String = row.try_get("state").map_err(unexpected)?;
            Ok(Snapshot {
                aggregate_id,
                aggregate_version: row
                    .try_get::<i64, _>("aggregate_version")
                    .map_err(unexpected)? as u64,
                state_version,
                state: serde_json::from_str(&state).map_err(unexpected)?,
            })
        })
        .transpose()
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut transaction = self.database.writer.begin().await.map_err(classify)?;
        let event: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM events WHERE aggregate_id = ? AND aggregate_version = ?",
        )
        .bind(snapshot.aggregate_id.to_string())
        .bind(snapshot.aggregate_version.min(i64::MAX as u64) as i64)
        .fetch_optional(&mut *transaction)
        .await
        .map_err(classify)?;
        if event.is_none() {
            return Err(StoreError::Invalid(format!(
                "aggregate {} has no version {}",
                snapshot.aggregate_id, snapshot.aggregate_version
            )));
        }
        write_snapshot(&mut transaction, &snapshot).await?;
        transaction.commit().await.map_err(classify)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(aggregate_id = %aggregate_id))]
    async fn read_aggregate(&self, aggregate_id: Uuid) -> Result<Vec<Envelope>, StoreError> {
        // Versions start at 1: everything after 0 is the whole stream.
        self.read_aggregate_after(aggregate_id, 0).await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        ))
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.database.reader)
        .await
        .map_err(classify)?;
        rows.iter().map(decode_row).collect()
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&self.database.reader)
            .await
            .map_err(classify)?;
        Ok(head.unwrap_or(0) as u64)
    }

    async fn claimed(&self, scope: &str, value: &str) -> Result<Option<Claimed>, StoreError> {
        let row: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT aggregate_id, position FROM unique_claims WHERE scope = ? AND value = ?",
        )
        .bind(scope)
        .bind(value)
        .fetch_optional(&self.database.reader)
        .await
        .map_err(classify)?;
        row.map(|(aggregate_id, position)| {
            Ok(Claimed {
                aggregate_id: aggregate_id.parse().map_err(|_| {
                    StoreError::Unexpected(format!("claim holder {aggregate_id:?}"))
                })?,
                position: position.map(|position| position as u64),
            })
        })
        .transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.database.reader)
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite store in a temporary directory, which lives as long as the returned
    /// guard.
    async fn fresh_store() -> (tempfile::TempDir, SqliteEventStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteDatabase::open(&dir.path().join("store.db"))
            .await
            .expect("open sqlite")
            .event_store();
        (dir, store)
    }

    mod event_store_suite {
        events::event_store_suite!(super::fresh_store());
    }

    #[tokio::test]
    async fn events_survive_closing_and_reopening_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("catalog.db");
        let database = SqliteDatabase::open(&path).await.expect("open");
        let id = Uuid::now_v7();
        let written = database
            .event_store()
            .append(vec![events::conformance::sample_stream(id, 0, 3)])
            .await
            .expect("append");
        database.close().await;
        let reopened = SqliteDatabase::open(&path)
            .await
            .expect("reopen")
            .event_store();
        assert_eq!(reopened.read_aggregate(id).await.expect("read"), written);
        assert_eq!(reopened.head().await.expect("head"), 3);
    }
}
