//! What every remote read of the query side and every Redis write goes through:
//!
//! - [`redis`]: a Redis connection chosen by URL, standalone (`redis://host:6379`) or cluster
//!   (`redis+cluster://host:7000,host:7001`), with connect and response timeouts, and the key
//!   naming that keeps one view in one hash slot.
//! - [`breaker`]: a circuit breaker that trips at a share of failures over a sliding window and
//!   lets one probe through after a pause.

pub mod breaker;
pub mod redis;
