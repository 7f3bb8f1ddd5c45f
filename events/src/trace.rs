//! W3C trace context (OpenTelemetry, through `tracing`) where it crosses a process: the
//! outbox row an append writes, the bus message the relay publishes, the invalidation a
//! projector publishes. Off (every function a no-op returning `None`) until
//! [`enable`] is called, which `web::telemetry::init_tracing` does when traces are exported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns propagation on (traces are exported by this process).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether this process exports traces.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The `traceparent` of the current span, when traces are exported.
pub fn current() -> Option<String> {
    if !enabled() {
        return None;
    }
    of(&tracing::Span::current())
}

/// The `traceparent` of `span` (`00-<trace id>-<span id>-<flags>`), when it is exported.
pub fn of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    let reference = context.span();
    let span_context = reference.span_context();
    if !span_context.is_valid() {
        return None;
    }
    Some(format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    ))
}

/// Makes `span` (just created, not entered yet) a child of the remote span `traceparent`
/// names; a missing or malformed one leaves it a root.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| enabled()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}
