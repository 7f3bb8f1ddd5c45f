//! The outbox relay: publishes the events the PostgreSQL store wrote to its `outbox` table, in
//! position order, and deletes each row once the bus has acknowledged the event.
//!
//! # One leader
//!
//! Every command-api replica runs a relay, but only one publishes at a time: the one holding
//! a PostgreSQL session-level advisory lock ([`RELAY_LOCK_KEY`]) on a connection of its own.
//! The others stand by and try again every second. A single publisher reading the outbox in
//! position order cannot publish one product's events out of order; when the leader dies its
//! connection closes, PostgreSQL releases the lock, and a stand-by takes over where the table
//! says the work stands. Partitioned leases would spread the publishing load, but one relay
//! publishing batches keeps up with the single-writer store by construction (both move whole
//! groups of events per round trip), so the simpler design wins.
//!
//! # At least once
//!
//! A row is deleted only after `publish` returned `Ok` for it. A relay killed between the two
//! leaves the row, and the next leader publishes it again: a duplicate, which consumers ignore
//! because they apply by `aggregate_version`. A leader that lost its connection (and so its
//! lock) mid-batch may still finish publishing that batch while a new leader republishes it:
//! again only duplicates, and each publisher's own sequence is in order.

use std::sync::Arc;
use std::time::Duration;

use events::bus::{BusError, EventBus};
use events::store::StoreError;
use events::Envelope;
use sqlx::postgres::{PgConnection, PgListener, PgPool};
use sqlx::{Connection, Row};

use crate::postgres::{classify, decode_row, event_columns, OUTBOX_CHANNEL};

/// The advisory lock key whose holder is the publishing relay ("catalog" + 1).
pub const RELAY_LOCK_KEY: i64 = 0x6361_7461_6c6f_6701;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Publishes outbox rows to the bus; see the module documentation.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    bus: Arc<dyn EventBus>,
    batch_size: usize,
    idle_poll: Duration,
}

impl OutboxRelay {
    pub fn new(pool: PgPool, bus: Arc<dyn EventBus>) -> Self {
        OutboxRelay {
            pool,
            bus,
            batch_size: 500,
            idle_poll: Duration::from_secs(1),
        }
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Runs until the task is dropped: waits to be the leader, then relays.
    pub async fn run(self) {
        loop {
            if let Err(error) = self.lead().await {
                tracing::warn!(%error, "outbox relay stopped leading; retrying");
            }
            metrics::gauge!("catalog_outbox_relay_leader").set(0.0);
            tokio::time::sleep(self.idle_poll).await;
        }
    }

    /// Takes the leader lock on a connection of its own (waiting as a stand-by until it is
    /// free), then relays until that connection fails.
    async fn lead(&self) -> Result<(), RelayError> {
        let mut connection = self.pool.acquire().await.map_err(classify)?.detach();
        loop {
            if try_lock(&mut connection).await? {
                break;
            }
            update_backlog(&mut connection).await?;
            tokio::time::sleep(self.idle_poll).await;
        }
        tracing::info!("this process is now the outbox relay leader");
        metrics::gauge!("catalog_outbox_relay_leader").set(1.0);
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(classify)?;
        listener.listen(OUTBOX_CHANNEL).await.map_err(classify)?;
        loop {
            match self.relay_batch(&mut connection).await {
                Ok(count) if count == self.batch_size => continue,
                Ok(_) => {}
                Err(RelayError::Bus(error)) => {
                    // Keep the lead: nothing was deleted, the same rows go again shortly.
                    tracing::warn!(%error, "cannot publish to the bus; retrying");
                    metrics::counter!("catalog_outbox_publish_failures_total").increment(1);
                    tokio::time::sleep(self.idle_poll).await;
                    continue;
                }
                Err(error) => {
                    let _ = connection.close().await;
                    return Err(error);
                }
            }
            update_backlog(&mut connection).await?;
            // Sleep until an append notifies, or poll anyway after `idle_poll`.
            match tokio::time::timeout(self.idle_poll, listener.recv()).await {
                Ok(Ok(_)) | Err(_) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "outbox listener lost; polling");
                    tokio::time::sleep(self.idle_poll.min(Duration::from_millis(100))).await;
                }
            }
        }
    }

    /// Publishes up to one batch of outbox rows in position order and deletes them once the
    /// bus acknowledged them. Returns how many rows it relayed.
    pub async fn relay_batch(&self, connection: &mut PgConnection) -> Result<usize, RelayError> {
        let rows = sqlx::query(&format!(
            "SELECT {}, o.traceparent FROM outbox o JOIN events e ON e.position = o.position \
             ORDER BY o.position LIMIT $1",
            event_columns("e")
        ))
        .bind(self.batch_size as i64)
        .fetch_all(&mut *connection)
        .await
        .map_err(classify)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let envelopes: Vec<Envelope> = rows
            .iter()
            .map(decode_row)
            .collect::<Result<_, StoreError>>()?;
        // A traced append's events are published each under a span of its own, a child of
        // the append's; the bus message carries that span's context. The spans end when the
        // bus has acknowledged the batch.
        let spans: Vec<Option<tracing::Span>> = rows
            .iter()
            .zip(&envelopes)
            .map(|(row, envelope)| {
                let traceparent: Option<String> = row.try_get("traceparent").ok().flatten();
                traceparent.map(|traceparent| publish_span(envelope, &traceparent))
            })
            .collect();
        let traceparents: Vec<Option<String>> = spans
            .iter()
            .map(|span| span.as_ref().and_then(events::trace::of))
            .collect();
        self.bus.publish_traced(&envelopes, &traceparents).await?;
        drop(spans);
        let positions: Vec<i64> = envelopes.iter().map(|e| e.position as i64).collect();
        sqlx::query("DELETE FROM outbox WHERE position = ANY($1)")
            .bind(&positions)
            .execute(&mut *connection)
            .await
            .map_err(classify)?;
        metrics::counter!("catalog_outbox_published_total").increment(envelopes.len() as u64);
        if let Some(oldest) = envelopes.first() {
            let lag = chrono::Utc::now().signed_duration_since(oldest.occurred_at);
            metrics::histogram!("catalog_outbox_relay_lag_seconds")
                .record(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
        }
        Ok(envelopes.len())
    }
}

/// The relay's span for publishing `envelope`, a child of the append span `traceparent` names.
fn publish_span(envelope: &Envelope, traceparent: &str) -> tracing::Span {
    let span = tracing::debug_span!(
        "outbox.publish",
        otel.kind = "producer",
        position = envelope.position,
        event_type = %envelope.event_type,
        aggregate_id = %envelope.aggregate_id,
    );
    events::trace::follow(&span, Some(traceparent));
    span
}

async fn try_lock(connection: &mut PgConnection) -> Result<bool, RelayError> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RELAY_LOCK_KEY)
        .fetch_one(&mut *connection)
        .await
        .map_err(|error| classify(error).into())
}

/// Sets `catalog_outbox_backlog` to the rows waiting and `catalog_outbox_oldest_age_seconds`
/// to how long ago the oldest of them was accepted (0 when none waits); returns the rows.
async fn update_backlog(connection: &mut PgConnection) -> Result<i64, RelayError> {
    let (backlog, age): (i64, f64) = sqlx::query_as(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - (SELECT e.occurred_at \
         FROM events e WHERE e.position = (SELECT min(position) FROM outbox)))::float8, 0) \
         FROM outbox",
    )
    .fetch_one(&mut *connection)
    .await
    .map_err(classify)?;
    metrics::gauge!("catalog_outbox_backlog").set(backlog as f64);
    metrics::gauge!("catalog_outbox_oldest_age_seconds").set(age.max(0.0));
    Ok(backlog)
}

/// The rows waiting in the outbox.
pub async fn backlog(pool: &PgPool) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
        .map_err(classify)
}
