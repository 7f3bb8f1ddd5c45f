//! The write path of [`super::PostgresEventStore`]: one group of appends checked in Rust under
//! the head lock and written in one statement.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use events::store::{StoreError, StreamAppend, REQUEST_CLAIM_SCOPE};
use events::NewEvent;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::classify;
use super::event_store::{unexpected, OUTBOX_CHANNEL};
use crate::group::AppendResult;

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
    traceparent: Vec<Option<String>>,
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
        self.traceparent.push(event.metadata.traceparent.clone());
    }
}

/// The snapshots a group saves, one column per array.
#[derive(Default)]
struct SnapshotColumns {
    aggregate_id: Vec<Uuid>,
    state_version: Vec<i32>,
    aggregate_version: Vec<i64>,
    state: Vec<String>,
}

/// The unique claims a group takes for the first time, one column per array.
#[derive(Default)]
struct ClaimColumns {
    scope: Vec<String>,
    value: Vec<String>,
    aggregate_id: Vec<Uuid>,
    /// The position of the last event of the append that took the claim.
    position: Vec<i64>,
}

/// What a group writes, decided in Rust before anything is written: the rows of its accepted
/// appends and each append's answer, in the group's order.
struct GroupPlan {
    results: Vec<AppendResult>,
    events: EventColumns,
    new_claims: ClaimColumns,
    snapshots: SnapshotColumns,
    /// The head after the group: the last position it takes.
    last_position: i64,
}

/// Writes every acceptable append of the group in one transaction. `Err` only when the
/// transaction itself failed (then nothing of the group was written).
///
/// Five round trips whatever the group's size: `BEGIN`, the head lock, the current versions
/// (and, for creates, the claims), one statement that writes everything, `COMMIT`.
pub(super) async fn commit_group(
    pool: &PgPool,
    group: &[&[StreamAppend]],
    outbox: bool,
) -> Result<Vec<AppendResult>, StoreError> {
    let mut transaction = pool.begin().await.map_err(classify)?;
    let head = lock_head(&mut transaction).await?;
    let (versions, claims) = current_state(&mut transaction, group).await?;
    let plan = plan_group(group, head, versions, claims);
    if plan.events.position.is_empty() {
        transaction.rollback().await.map_err(classify)?;
        return Ok(plan.results);
    }
    write_group(&mut transaction, &plan, outbox).await?;
    transaction.commit().await.map_err(classify)?;
    Ok(plan.results)
}

/// Everything a group writes, in one statement of data-modifying CTEs: the events, the
/// outbox rows and the relays' notification (with `outbox`), the new claims, the snapshots
/// (each replacing an older one of its format and dropping other formats), and the head.
const WRITE_GROUP: &str = "\
WITH e AS (
    INSERT INTO events (position, event_id, event_type, schema_version, aggregate_id,
        aggregate_version, occurred_at, actor, correlation_id, causation_id, data)
    SELECT p, i, t, v, a, av, o, ac, co, ca, d::jsonb FROM UNNEST($1::bigint[], $2::uuid[],
        $3::text[], $4::int[], $5::uuid[], $6::bigint[], $7::timestamptz[], $8::text[],
        $9::text[], $10::text[], $11::text[]) AS u(p, i, t, v, a, av, o, ac, co, ca, d)
    RETURNING position, aggregate_id
), o AS (
    INSERT INTO outbox (position, aggregate_id, traceparent)
    SELECT e.position, e.aggregate_id, u.tp FROM e
    JOIN UNNEST($1::bigint[], $23::text[]) AS u(p, tp) ON u.p = e.position WHERE $12
), c AS (
    INSERT INTO unique_claims (scope, value, aggregate_id, position)
    SELECT * FROM UNNEST($13::text[], $14::text[], $15::uuid[], $22::bigint[])
), s AS (
    INSERT INTO snapshots (aggregate_id, state_version, aggregate_version, state, taken_at)
    SELECT a, sv, av, st::jsonb, now()
    FROM UNNEST($16::uuid[], $17::int[], $18::bigint[], $19::text[]) AS u(a, sv, av, st)
    ON CONFLICT (aggregate_id, state_version) DO UPDATE
    SET aggregate_version = excluded.aggregate_version, state = excluded.state,
        taken_at = excluded.taken_at
    WHERE snapshots.aggregate_version < excluded.aggregate_version
), x AS (
    DELETE FROM snapshots old USING UNNEST($16::uuid[], $17::int[]) AS u(a, sv)
    WHERE old.aggregate_id = u.a AND old.state_version <> u.sv
), h AS (
    UPDATE event_head SET position = $20 WHERE id
)
SELECT pg_notify($21, '') WHERE $12";

async fn write_group(
    transaction: &mut Transaction<'_, Postgres>,
    plan: &GroupPlan,
    outbox: bool,
) -> Result<(), StoreError> {
    let events = &plan.events;
    let claims = &plan.new_claims;
    let snapshots = &plan.snapshots;
    sqlx::query(WRITE_GROUP)
        .bind(&events.position)
        .bind(&events.event_id)
        .bind(&events.event_type)
        .bind(&events.schema_version)
        .bind(&events.aggregate_id)
        .bind(&events.aggregate_version)
        .bind(&events.occurred_at)
        .bind(&events.actor)
        .bind(&events.correlation_id)
        .bind(&events.causation_id)
        .bind(&events.data)
        .bind(outbox)
        .bind(&claims.scope)
        .bind(&claims.value)
        .bind(&claims.aggregate_id)
        .bind(&snapshots.aggregate_id)
        .bind(&snapshots.state_version)
        .bind(&snapshots.aggregate_version)
        .bind(&snapshots.state)
        .bind(plan.last_position)
        .bind(OUTBOX_CHANNEL)
        .bind(&claims.position)
        .bind(&events.traceparent)
        .execute(&mut **transaction)
        .await
        .map_err(write_error)?;
    Ok(())
}

/// The checks of `plan_group` ran under the head lock, so a writer that bypassed it (or a
/// bug) is the only way to break `(aggregate_id, aggregate_version)`: that is still what it
/// says, a conflict, and the caller decides again on the new version. Any other constraint
/// failing here is a bug.
pub fn write_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(database_error) = &error {
        if database_error.constraint() == Some("events_aggregate_version_unique") {
            return StoreError::Conflict {
                aggregate_id: Uuid::nil(),
                expected_version: 0,
            };
        }
        if database_error.is_unique_violation() {
            return StoreError::Unexpected(format!(
                "constraint failed after the checks passed: {error}"
            ));
        }
    }
    classify(error)
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
    // The latest snapshot of each aggregate and format: one row may change once per statement.
    let mut latest_snapshots: HashMap<(Uuid, u32), &events::store::Snapshot> = HashMap::new();
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
            let last_position = next_position + stream.events.len() as i64 - 1;
            for claim in &stream.unique_claims {
                let key = (claim.scope.clone(), claim.value.clone());
                if claims.insert(key, stream.aggregate_id).is_none() {
                    new_claims.scope.push(claim.scope.clone());
                    new_claims.value.push(claim.value.clone());
                    new_claims.aggregate_id.push(stream.aggregate_id);
                    new_claims.position.push(last_position);
                }
            }
            if let Some(snapshot) = &stream.snapshot {
                latest_snapshots.insert((snapshot.aggregate_id, snapshot.state_version), snapshot);
            }
            for event in &stream.events {
                events.push(next_position, event);
                stored.push(event.clone().into_envelope(next_position as u64));
                next_position += 1;
            }
        }
        results.push(Ok(stored));
    }
    let mut snapshots = SnapshotColumns::default();
    for snapshot in latest_snapshots.into_values() {
        snapshots.aggregate_id.push(snapshot.aggregate_id);
        snapshots.state_version.push(snapshot.state_version as i32);
        snapshots
            .aggregate_version
            .push(snapshot.aggregate_version as i64);
        snapshots.state.push(snapshot.state.to_string());
    }
    GroupPlan {
        results,
        events,
        new_claims,
        snapshots,
        last_position: next_position - 1,
    }
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
    // One backward step of the `(aggregate_id, aggregate_version)` index per aggregate: a
    // `MAX … GROUP BY` over `= ANY` read every event of each aggregate (a bitmap scan), so an
    // append cost grew with the aggregate's history.
    let rows = sqlx::query(
        "SELECT a.id AS aggregate_id, v.version FROM UNNEST($1::uuid[]) AS a(id) \
         CROSS JOIN LATERAL (SELECT aggregate_version AS version FROM events \
             WHERE aggregate_id = a.id ORDER BY aggregate_version DESC LIMIT 1) AS v",
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
            // A claim in the request scope is taken once, whatever the aggregate.
            let taken_by_other = claims.get(&key).is_some_and(|holder| {
                *holder != stream.aggregate_id || claim.scope == REQUEST_CLAIM_SCOPE
            });
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
