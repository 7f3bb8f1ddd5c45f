//! HTTP pieces every catalog service shares.
//!
//! - [`problem`]: the one error type, rendered as RFC 9457 `application/problem+json`.
//! - [`extract`]: `Json`, `Query` and `Path` extractors whose rejections are problems too.
//! - [`client`]: the client's address, behind trusted proxies too.
//! - [`rate_limit`]: rate limits per client and route class.
//! - [`guard`]: both as one layer, request-id hygiene and the security headers.
//! - [`slots`]: counted slots per key with a cap.
//! - [`server`]: the HTTP server with header and idle timeouts and connection caps.
//! - [`middleware`]: request ids, tracing, metrics, limits and the problem fallback.
//! - [`ops`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`telemetry`]: the tracing subscriber and the process-wide Prometheus recorder.

pub mod client;
pub mod extract;
pub mod guard;
pub mod middleware;
pub mod ops;
pub mod problem;
pub mod rate_limit;
pub mod server;
pub mod slots;
pub mod telemetry;
mod traces;

pub use problem::{FieldErrors, Problem};
