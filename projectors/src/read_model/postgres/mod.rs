//! The distributed read model: PostgreSQL tables written by the read-model projector on the
//! primary ([`PostgresReadModelProjection`]) and read by query-api replicas, normally through
//! a streaming replica ([`PostgresReadModel`]).
//!
//! Each event is applied in one transaction that also moves the projection's checkpoint, so a
//! crash leaves rows and checkpoint in step. The row update is guarded by the version that was
//! read (`WHERE version = $read`), so two projector workers racing on one product (possible
//! for a moment during a consumer-group rebalance) cannot both apply an event.
//!
//! A rebuild builds the next generation of the tables beside the live ones and swaps them in
//! one transaction (`generations.rs`).

mod generations;
mod projection;
mod reader;

pub use generations::READ_MODEL_VERSION;
pub use projection::{migrate, PostgresReadModelProjection};
pub use reader::PostgresReadModel;
