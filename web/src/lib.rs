//! HTTP pieces every catalog service shares.
//!
//! - [`problem`]: the one error type, rendered as RFC 9457 `application/problem+json`.
//! - [`extract`]: `Json`, `Query` and `Path` extractors whose rejections are problems too.
//! - [`middleware`]: request ids, tracing, metrics, limits and the problem fallback.
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`telemetry`]: the tracing subscriber and the process-wide Prometheus recorder.

pub mod extract;
pub mod middleware;
pub mod ops;
pub mod problem;
pub mod telemetry;

pub use problem::{FieldErrors, Problem};
