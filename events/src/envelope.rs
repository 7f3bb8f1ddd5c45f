//! The envelope: one event with the metadata every consumer needs.

use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog_events::{CatalogEvent, DecodeError};

/// An event as stored and published: API.md's "Event envelope".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Unique id of this event; consumers may dedupe by it.
    pub event_id: Uuid,
    /// The event's type name, such as `PriceChanged`.
    pub event_type: String,
    /// The version of `data`'s schema for this event type.
    pub schema_version: u32,
    /// The product (or category) the event belongs to.
    pub aggregate_id: Uuid,
    /// 1 for the aggregate's first event, raised by one per event.
    pub aggregate_version: u64,
    /// Dense, global, commit-ordered position in the log, starting at 1.
    pub position: u64,
    /// When the command that caused the event was accepted.
    pub occurred_at: DateTime<Utc>,
    /// The user who issued the command.
    pub actor: Option<String>,
    /// Correlates every event caused by one request (the request id).
    pub correlation_id: Option<String>,
    /// The id of what caused this event (the request id for commands).
    pub causation_id: Option<String>,
    /// The event body; its shape is given by `event_type` and `schema_version`.
    pub data: serde_json::Value,
}

impl Envelope {
    /// Decodes `data` into the typed event named by `event_type`.
    pub fn decode(&self) -> Result<CatalogEvent, DecodeError> {
        CatalogEvent::decode(&self.event_type, self.schema_version, &self.data)
    }
}

/// Who and what caused a batch of events; copied into every envelope of the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventMetadata {
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The W3C trace context of the append (when traces are exported): kept with the event's
    /// outbox row, so the relay's publish and the projectors' work join the command's trace.
    /// Not part of the envelope.
    pub traceparent: Option<String>,
}

/// An event about to be appended: an envelope without its position.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub aggregate_id: Uuid,
    pub aggregate_version: u64,
    pub occurred_at: DateTime<Utc>,
    pub metadata: EventMetadata,
    pub data: serde_json::Value,
}

impl NewEvent {
    /// Wraps a typed event for `aggregate_id` at `aggregate_version`. `occurred_at` is cut to
    /// microseconds, the precision every store keeps, so an envelope reads back equal.
    pub fn from_event(
        aggregate_id: Uuid,
        aggregate_version: u64,
        event: &CatalogEvent,
        occurred_at: DateTime<Utc>,
        metadata: EventMetadata,
    ) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            aggregate_id,
            aggregate_version,
            occurred_at: occurred_at.trunc_subsecs(6),
            metadata,
            data: event.to_data(),
        }
    }

    /// The envelope this event becomes once the store gave it `position`.
    pub fn into_envelope(self, position: u64) -> Envelope {
        Envelope {
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            aggregate_id: self.aggregate_id,
            aggregate_version: self.aggregate_version,
            position,
            occurred_at: self.occurred_at,
            actor: self.metadata.actor,
            correlation_id: self.metadata.correlation_id,
            causation_id: self.metadata.causation_id,
            data: self.data,
        }
    }
}
