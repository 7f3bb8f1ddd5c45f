//! What every message carries beside its body, under the same names on both buses (Kafka
//! record headers, SNS/SQS message attributes), so that a router or a consumer written with
//! another client can route a message without parsing it.

use events::analytics::AnalyticsEnvelope;
use events::Envelope;

/// The W3C trace context of an envelope: the trace id is the command's request id when it is
/// a UUID (it is for every command of the API), so all events of one request share a trace.
pub fn traceparent(envelope: &Envelope) -> String {
    let trace = envelope
        .correlation_id
        .as_deref()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .unwrap_or(envelope.event_id);
    let span = &envelope.event_id.simple().to_string()[16..];
    format!("00-{}-{span}-01", trace.simple())
}

/// The metadata of a catalog event, by name: `event_type`, `schema_version`, `event_id`,
/// `aggregate_id`, `aggregate_version`, `position` and `traceparent` (the publisher's span
/// when given, else the context derived from the envelope).
pub fn envelope_headers(
    envelope: &Envelope,
    traceparent: Option<&str>,
) -> [(&'static str, String); 7] {
    let traceparent = traceparent.map_or_else(|| self::traceparent(envelope), str::to_owned);
    [
        ("event_type", envelope.event_type.clone()),
        ("schema_version", envelope.schema_version.to_string()),
        ("event_id", envelope.event_id.to_string()),
        ("aggregate_id", envelope.aggregate_id.to_string()),
        ("aggregate_version", envelope.aggregate_version.to_string()),
        ("position", envelope.position.to_string()),
        ("traceparent", traceparent),
    ]
}

/// The metadata of a shopper analytics event: `event_type` and `schema_version`.
pub fn analytics_headers(envelope: &AnalyticsEnvelope) -> [(&'static str, String); 2] {
    [
        ("event_type", envelope.event_type.clone()),
        ("schema_version", envelope.schema_version.to_string()),
    ]
}

/// A message body as a catalog envelope; the error says why it is not one.
pub(crate) fn decode_envelope(body: Option<&[u8]>) -> Result<Envelope, String> {
    let body = body.ok_or_else(|| "empty body".to_owned())?;
    serde_json::from_slice(body).map_err(|error| error.to_string())
}
