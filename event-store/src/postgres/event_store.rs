use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::store::{validate_streams, EventStore, StoreError, StreamAppend};
use events::{Envelope, NewEvent};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::classify;

/// The channel the store notifies (in the append's transaction, so at commit) when it wrote
/// outbox rows; relays listen on it instead of polling hard.
pub const OUTBOX_CHANNEL: &str = "catalog_outbox";

/// Appends waiting for the writer are grouped up to this many per transaction.
const MAX_BATCH_APPENDS: usize = 256;
/// … or this many events, whichever comes first (one oversized append still goes alone).
const MAX_BATCH_EVENTS: usize = 5_000;

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
    writer: mpsc::Sender<AppendRequest>,
}

struct AppendRequest {
    streams: Vec<StreamAppend>,
    answer: oneshot::Sender<Result<Vec<Envelope>, StoreError>>,
}

impl AppendRequest {
    fn event_count(&self) -> usize {
        self.streams.iter().map(|stream| stream.events.len()).sum()
    }
}

impl PostgresEventStore {
    /// Starts the writer task; it ends when the last clone of the store is dropped.
    pub fn new(pool: PgPool, outbox: bool) -> Self {
        let (writer, requests) = mpsc::channel(4 * MAX_BATCH_APPENDS);
        tokio::spawn(write_loop(pool.clone(), requests, outbox));
        PostgresEventStore { pool, writer }
    }
}

async fn write_loop(pool: PgPool, mut requests: mpsc::Receiver<AppendRequest>, outbox: bool) {
    while let Some(first) = requests.recv().await {
        let mut events = first.event_count();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_APPENDS && events < MAX_BATCH_EVENTS {
            match requests.try_recv() {
                Ok(request) => {
                    events += request.event_count();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("catalog_event_store_group_commit_appends").record(batch.len() as f64);
        let streams: Vec<&[StreamAppend]> = batch.iter().map(|r| r.streams.as_slice()).collect();
        match commit_group(&pool, &streams, outbox).await {
            Ok(results) => {
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.answer.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, appends = batch.len(), "group commit failed");
                let message = error.to_string();
                for request in batch {
                    let _ = request.answer.send(Err(match &error {
                        StoreError::Unavailable(_) => StoreError::Unavailable(message.clone()),
                        _ => StoreError::Unexpected(message.clone()),
                    }));
                }
            }
        }
    }
}

/// One column per array: the events of a group, inserted with one `UNNEST`.
#[derive(Default)]
struct EventColumns {
    position: Vec<i64>,
    event_id: Vec<Uuid>,
    event_type: Vec<String>,
    schema_version: Vec<i32>,
    aggregate_id: Vec<Uuid>,
    aggregate_version: Vec<i64>,
    occurred_at: Vec<DateTime<Utc>>,
    actor: Vec<Option<String>>,
    correlation_id: Vec<Option<String>>,
    causation_id: Vec<Option<String>>,
    data: Vec<String>,
}

impl EventColumns {
    fn push(&mut self, position: i64, event: &NewEvent) {
        self.position.push(position);
        self.event_id.push(event.event_id);
        self.event_type.push(event.event_type.clone());
        self.schema_version.push(event.schema_version as i32);
        self.aggregate_id.push(event.aggregate_id);
        self.aggregate_version.push(event.aggregate_version as i64);
        self.occurred_at.push(event.occurred_at);
        self.actor.push(event.metadata.actor.clone());
        self.correlation_id
            .push(event.metadata.correlation_id.clone());
        self.causation_id.push(event.metadata.causation_id.clone());
        self.data.push(event.data.to_string());
    }
}

/// The unique claims a group takes for the first time, one column per array.
#[derive(Default)]
struct ClaimColumns {
    scope: Vec<String>,
    value: Vec<String>,
    aggregate_id: Vec<Uuid>,
}

/// What a group writes, decided in Rust before anything is written: the rows of its accepted
/// appends and each append's answer, in the group's order.
struct GroupPlan {
    results: Vec<Result<Vec<Envelope>, StoreError>>,
    events: EventColumns,
    new_claims: ClaimColumns,
    /// The head after the group: the last position it takes.
    last_position: i64,
}

/// Writes every acceptable append of the group in one transaction. `Err` only when the
/// transaction itself failed (then nothing of the group was written).
async fn commit_group(
    pool: &PgPool,
    group: &[&[StreamAppend]],
    outbox: bool,
) -> Result<Vec<Result<Vec<Envelope>, StoreError>>, StoreError> {
    let mut transaction = pool.begin().await.map_err(classify)?;
    let head = lock_head(&mut transaction).await?;
    let (versions, claims) = current_state(&mut transaction, group).await?;
    let plan = plan_group(group, head, versions, claims);
    if plan.events.position.is_empty() {
        transaction.rollback().await.map_err(classify)?;
        return Ok(plan.results);
    }
    insert_events(&mut transaction, &plan.events).await?;
    insert_claims(&mut transaction, &plan.new_claims).await?;
    if outbox {
        insert_outbox(&mut transaction, &plan.events).await?;
    }
    sqlx::query("UPDATE event_head SET position = $1 WHERE id")
        .bind(plan.last_position)
        .execute(&mut *transaction)
        .await
        .map_err(classify)?;
    transaction.commit().await.map_err(classify)?;
    Ok(plan.results)
}

/// Locks the one `event_head` row until the transaction ends; the current head.
async fn lock_head(transaction: &mut Transaction<'_, Postgres>) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT position FROM event_head WHERE id FOR UPDATE")
        .fetch_one(&mut **transaction)
        .await
        .map_err(classify)
}

/// Checks each append of the group against the state read under the head lock, as updated by
/// the appends accepted before it, and gives the accepted ones the positions after `head`.
fn plan_group(
    group: &[&[StreamAppend]],
    head: i64,
    mut versions: Versions,
    mut claims: Claims,
) -> GroupPlan {
    let mut next_position = head + 1;
    let mut events = EventColumns::default();
    let mut new_claims = ClaimColumns::default();
    let mut results = Vec::with_capacity(group.len());
    for streams in group {
        if let Err(error) = check_append(streams, &versions, &claims) {
            results.push(Err(error));
            continue;
        }
        let mut stored = Vec::new();
        for stream in streams.iter() {
            versions.insert(
                stream.aggregate_id,
                stream.expected_version + stream.events.len() as u64,
            );
            for claim in &stream.unique_claims {
                let key = (claim.scope.clone(), claim.value.clone());
                if claims.insert(key, stream.aggregate_id).is_none() {
                    new_claims.scope.push(claim.scope.clone());
                    new_claims.value.push(claim.value.clone());
                    new_claims.aggregate_id.push(stream.aggregate_id);
                }
            }
            for event in &stream.events {
                events.push(next_position, event);
                stored.push(event.clone().into_envelope(next_position as u64));
                next_position += 1;
            }
        }
        results.push(Ok(stored));
    }
    GroupPlan {
        results,
        events,
        new_claims,
        last_position: next_position - 1,
    }
}

async fn insert_events(
    transaction: &mut Transaction<'_, Postgres>,
    columns: &EventColumns,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (position, event_id, event_type, schema_version, aggregate_id, \
         aggregate_version, occurred_at, actor, correlation_id, causation_id, data) \
         SELECT p, i, t, v, a, av, o, ac, co, ca, d::jsonb FROM UNNEST($1::bigint[], $2::uuid[], \
         $3::text[], $4::int[], $5::uuid[], $6::bigint[], $7::timestamptz[], $8::text[], \
         $9::text[], $10::text[], $11::text[]) AS u(p, i, t, v, a, av, o, ac, co, ca, d)",
    )
    .bind(&columns.position)
    .bind(&columns.event_id)
    .bind(&columns.event_type)
    .bind(&columns.schema_version)
    .bind(&columns.aggregate_id)
    .bind(&columns.aggregate_version)
    .bind(&columns.occurred_at)
    .bind(&columns.actor)
    .bind(&columns.correlation_id)
    .bind(&columns.causation_id)
    .bind(&columns.data)
    .execute(&mut **transaction)
    .await
    .map_err(|error| {
        // The checks of `plan_group` ran under the head lock; a constraint failing here is a
        // bug.
        if super::is_unique_violation(&error) {
            StoreError::Unexpected(format!(
                "constraint failed after the checks passed: {error}"
            ))
        } else {
            classify(error)
        }
    })?;
    Ok(())
}

async fn insert_claims(
    transaction: &mut Transaction<'_, Postgres>,
    new_claims: &ClaimColumns,
) -> Result<(), StoreError> {
    if new_claims.scope.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO unique_claims (scope, value, aggregate_id) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[])",
    )
    .bind(&new_claims.scope)
    .bind(&new_claims.value)
    .bind(&new_claims.aggregate_id)
    .execute(&mut **transaction)
    .await
    .map_err(classify)?;
    Ok(())
}

/// An outbox row per event, and a notification the relays receive at commit.
async fn insert_outbox(
    transaction: &mut Transaction<'_, Postgres>,
    columns: &EventColumns,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (position, aggregate_id) SELECT * FROM UNNEST($1::bigint[], $2::uuid[])",
    )
    .bind(&columns.position)
    .bind(&columns.aggregate_id)
    .execute(&mut **transaction)
    .await
    .map_err(classify)?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(OUTBOX_CHANNEL)
        .execute(&mut **transaction)
        .await
        .map_err(classify)?;
    Ok(())
}

type Versions = HashMap<Uuid, u64>;
type Claims = HashMap<(String, String), Uuid>;

/// The current version of every aggregate in the group and the holders of every claim it
/// asks for, read under the head lock.
async fn current_state(
    transaction: &mut Transaction<'_, Postgres>,
    group: &[&[StreamAppend]],
) -> Result<(Versions, Claims), StoreError> {
    let mut ids = HashSet::new();
    let mut scopes = Vec::new();
    let mut values = Vec::new();
    for stream in group.iter().flat_map(|streams| streams.iter()) {
        ids.insert(stream.aggregate_id);
        for claim in &stream.unique_claims {
            scopes.push(claim.scope.clone());
            values.push(claim.value.clone());
        }
    }
    let ids: Vec<Uuid> = ids.into_iter().collect();
    let rows = sqlx::query(
        "SELECT aggregate_id, MAX(aggregate_version) AS version FROM events \
         WHERE aggregate_id = ANY($1) GROUP BY aggregate_id",
    )
    .bind(&ids)
    .fetch_all(&mut **transaction)
    .await
    .map_err(classify)?;
    let mut versions = Versions::new();
    for row in rows {
        let id: Uuid = row.try_get("aggregate_id").map_err(unexpected)?;
        let version: i64 = row.try_get("version").map_err(unexpected)?;
        versions.insert(id, version as u64);
    }
    let mut claims = Claims::new();
    if !scopes.is_empty() {
        let rows = sqlx::query(
            "SELECT c.scope, c.value, c.aggregate_id FROM unique_claims c \
             JOIN UNNEST($1::text[], $2::text[]) AS w(scope, value) \
             ON c.scope = w.scope AND c.value = w.value",
        )
        .bind(&scopes)
        .bind(&values)
        .fetch_all(&mut **transaction)
        .await
        .map_err(classify)?;
        for row in rows {
            claims.insert(
                (
                    row.try_get("scope").map_err(unexpected)?,
                    row.try_get("value").map_err(unexpected)?,
                ),
                row.try_get("aggregate_id").map_err(unexpected)?,
            );
        }
    }
    Ok((versions, claims))
}

/// Whether one append (all its streams) fits the current state.
fn check_append(
    streams: &[StreamAppend],
    versions: &Versions,
    claims: &Claims,
) -> Result<(), StoreError> {
    for stream in streams {
        let current = versions.get(&stream.aggregate_id).copied().unwrap_or(0);
        if current != stream.expected_version {
            return Err(StoreError::Conflict {
                aggregate_id: stream.aggregate_id,
                expected_version: stream.expected_version,
            });
        }
        for claim in &stream.unique_claims {
            let key = (claim.scope.clone(), claim.value.clone());
            let taken_by_other = claims
                .get(&key)
                .is_some_and(|holder| *holder != stream.aggregate_id);
            // Two streams of one append claiming the same value for different aggregates.
            let claimed_in_append = streams.iter().any(|other| {
                other.aggregate_id != stream.aggregate_id && other.unique_claims.contains(claim)
            });
            if taken_by_other || claimed_in_append {
                return Err(StoreError::UniqueViolation {
                    scope: claim.scope.clone(),
                    value: claim.value.clone(),
                });
            }
        }
    }
    Ok(())
}

fn unexpected(error: impl std::fmt::Display) -> StoreError {
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
    #[tracing::instrument(skip_all, fields(streams = streams.len()))]
    async fn append(&self, streams: Vec<StreamAppend>) -> Result<Vec<Envelope>, StoreError> {
        validate_streams(&streams)?;
        let (answer, answered) = oneshot::channel();
        self.writer
            .send(AppendRequest { streams, answer })
            .await
            .map_err(|_| StoreError::Unavailable("the event store writer stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Unavailable("the event store writer stopped".into()))?
    }

    #[tracing::instrument(skip_all, fields(aggregate_id = %aggregate_id))]
    async fn read_aggregate(&self, aggregate_id: Uuid) -> Result<Vec<Envelope>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_id = $1 ORDER BY aggregate_version"
        ))
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.iter().map(decode_row).collect()
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

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}
