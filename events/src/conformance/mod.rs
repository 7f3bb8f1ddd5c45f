//! The conformance suites of the ports this crate defines, behind the `testsuite` feature (so
//! they are built only for the tests that run them): [`store`] for every
//! [`EventStore`](crate::store::EventStore) adapter, [`bus`] for every
//! [`EventBus`](crate::bus::EventBus) adapter. Each is a macro
//! ([`event_store_suite!`](crate::event_store_suite), [`event_bus_suite!`](crate::event_bus_suite))
//! that expands into one `#[tokio::test]` per case, so one failure does not hide the rest.

pub mod bus;
pub mod store;

pub use store::{sample_event, sample_stream};
