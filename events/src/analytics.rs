//! Shopper analytics events: what shoppers looked at and searched for. They travel on their
//! own stream (`catalog.analytics-events`) and never enter the catalog's event store, so they
//! have no position and no aggregate version.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog_events::DecodeError;

/// The analytics stream's name on Kafka (and SNS).
pub const ANALYTICS_TOPIC: &str = "catalog.analytics-events";

/// One analytics event on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsEnvelope {
    /// Unique id of this event; consumers may dedupe by it.
    pub event_id: Uuid,
    /// `ProductViewed` or `SearchPerformed`.
    pub event_type: String,
    /// The version of `data`'s schema for this event type.
    pub schema_version: u32,
    /// When the shopper's request was served.
    pub occurred_at: DateTime<Utc>,
    /// The event body; its shape is given by `event_type` and `schema_version`.
    pub data: serde_json::Value,
}

/// A product page was served to a shopper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductViewed {
    pub product_id: Uuid,
    /// The product's category slug at the time of the view.
    pub category: String,
}

/// A shopper searched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchPerformed {
    /// The words, normalised: lower-cased, whitespace collapsed, trimmed.
    pub query: String,
    /// The filters given, by parameter name (`category`, `brand`, `min_price`, …).
    pub filters: BTreeMap<String, String>,
    /// How many products matched (`total` of the answer).
    pub result_count: u64,
}

/// Every analytics event.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyticsEvent {
    ProductViewed(ProductViewed),
    SearchPerformed(SearchPerformed),
}

impl AnalyticsEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            AnalyticsEvent::ProductViewed(_) => "ProductViewed",
            AnalyticsEvent::SearchPerformed(_) => "SearchPerformed",
        }
    }

    /// Wraps the event, stamped `occurred_at`.
    pub fn into_envelope(self, occurred_at: DateTime<Utc>) -> AnalyticsEnvelope {
        let event_type = self.event_type().to_owned();
        let data = match &self {
            AnalyticsEvent::ProductViewed(event) => serde_json::to_value(event),
            AnalyticsEvent::SearchPerformed(event) => serde_json::to_value(event),
        }
        // Plain structs with string keys: serialising to a Value cannot fail.
        .unwrap_or(serde_json::Value::Null);
        AnalyticsEnvelope {
            event_id: Uuid::now_v7(),
            event_type,
            schema_version: 1,
            occurred_at: occurred_at.trunc_subsecs(6),
            data,
        }
    }

    /// Reads the typed event of an envelope.
    pub fn decode(envelope: &AnalyticsEnvelope) -> Result<Self, DecodeError> {
        let malformed = |source| DecodeError::Malformed {
            event_type: envelope.event_type.clone(),
            source,
        };
        match (envelope.event_type.as_str(), envelope.schema_version) {
            ("ProductViewed", 1) => serde_json::from_value(envelope.data.clone())
                .map(AnalyticsEvent::ProductViewed)
                .map_err(malformed),
            ("SearchPerformed", 1) => serde_json::from_value(envelope.data.clone())
                .map(AnalyticsEvent::SearchPerformed)
                .map_err(malformed),
            (event_type, schema_version) => Err(DecodeError::UnknownType {
                event_type: event_type.to_owned(),
                schema_version,
            }),
        }
    }

    /// `(file name under schemas/, schema)` of the analytics stream.
    pub fn schemas() -> Vec<(&'static str, schemars::schema::RootSchema)> {
        vec![
            (
                "analytics/envelope.v1.json",
                schemars::schema_for!(AnalyticsEnvelope),
            ),
            (
                "analytics/ProductViewed.v1.json",
                schemars::schema_for!(ProductViewed),
            ),
            (
                "analytics/SearchPerformed.v1.json",
                schemars::schema_for!(SearchPerformed),
            ),
        ]
    }
}

/// An analytics event as captured: the typed event and when it happened. The envelope (and
/// its id) is made only when the event leaves the process.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub event: AnalyticsEvent,
    pub at: DateTime<Utc>,
}

impl Observation {
    pub fn now(event: AnalyticsEvent) -> Self {
        Observation {
            event,
            at: Utc::now(),
        }
    }

    /// The wire form (a new event id).
    pub fn to_envelope(&self) -> AnalyticsEnvelope {
        self.event.clone().into_envelope(self.at)
    }

    /// Reads an envelope from the wire.
    pub fn from_envelope(envelope: &AnalyticsEnvelope) -> Result<Self, DecodeError> {
        Ok(Observation {
            event: AnalyticsEvent::decode(envelope)?,
            at: envelope.occurred_at,
        })
    }
}

/// The longest normalised search text kept (characters).
pub const MAX_QUERY_CHARS: usize = 100;

/// The normalised form of a search text, as analytics keep it: lower-cased; only letters,
/// digits and the punctuation of product names (`-`, `'`, `.`, `&`, `+`) kept, anything
/// else (markup, control characters) read as a space; whitespace collapsed; at most the
/// first 10 words (what search uses) and [`MAX_QUERY_CHARS`] characters.
pub fn normalise_query(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .take(MAX_QUERY_CHARS * 4)
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '\'' | '.' | '&' | '+') {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut normalised = cleaned
        .split_whitespace()
        .take(10)
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((cut, _)) = normalised.char_indices().nth(MAX_QUERY_CHARS) {
        normalised.truncate(cut);
        normalised.truncate(normalised.trim_end().len());
    }
    normalised
}

#[cfg(test)]
mod normalise_tests {
    use super::*;

    #[test]
    fn markup_is_not_kept_and_long_texts_are_cut() {
        assert_eq!(
            normalise_query("<script>alert(1)</script> TV"),
            "script alert 1 script tv"
        );
        assert_eq!(
            normalise_query("  Wireless\u{0}  HEADPHONES "),
            "wireless headphones"
        );
        assert_eq!(
            normalise_query("usb-c 3.5mm jack & o'neill"),
            "usb-c 3.5mm jack & o'neill"
        );
        let long = "abcdefghij ".repeat(50);
        let cut = normalise_query(&long);
        assert!(cut.chars().count() <= MAX_QUERY_CHARS, "{cut}");
        assert_eq!(cut.split(' ').count(), 10);
        assert_eq!(
            normalise_query(&"é".repeat(500)).chars().count(),
            MAX_QUERY_CHARS
        );
    }
}
