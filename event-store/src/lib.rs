//! The event store's adapters and the outbox: where every accepted change is made durable.
//!
//! The port itself ([`events::store::EventStore`]) and its conformance suite live in `events`,
//! so that every reader of the log (command handling, projectors, the analysts' feed, the CLI)
//! depends on this crate and the port only, never on the write API's HTTP crate.
//!
//! - [`sqlite`]: the embedded adapter ([`sqlite::SqliteEventStore`]) and the database file it
//!   lives in ([`sqlite::SqliteDatabase`], pools and migrations, shared with the write side's
//!   accounts and idempotency keys).
//! - [`postgres`]: the distributed adapter ([`postgres::PostgresEventStore`]: group commit,
//!   commit-ordered positions, and the outbox rows written in the same transaction) and
//!   [`postgres::PostgresDatabase`].
//! - [`outbox`]: the relay that publishes the outbox to the bus and deletes what the bus took.

mod group;
pub mod outbox;
pub mod postgres;
pub mod sqlite;
