//! Every checked-in JSON Schema validates what our code writes (and refuses what it should),
//! checked with a JSON Schema validator, as an analyst reading `schemas/` would.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use events::{
    AddedImage, AttributeValue, CatalogEvent, CategoryCreated, EventMetadata, ImageRemoved,
    ImagesAdded, NewEvent, PriceChanged, ProductArchived, ProductCreated, ProductDetailsChanged,
    ProductPublished, ProductStatus, ProductUnpublished, SaleRecorded, StockAdjusted,
    SynonymsChanged,
};
use serde_json::{json, Value};
use uuid::Uuid;

fn schema(name: &str) -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate: {errors:?}\n{instance:#}"
    );
}

/// One of each event (two where an optional field changes the wire form), as the command side
/// writes them.
fn produced() -> Vec<CatalogEvent> {
    vec![
        CatalogEvent::ProductCreated(ProductCreated {
            sku: "ELEC-1".into(),
            name: "Headphones".into(),
            description: "Closed-back".into(),
            category: "electronics".into(),
            brand: None,
            price_cents: 12999,
            currency: "USD".into(),
            stock: 3,
            status: ProductStatus::Published,
            attributes: BTreeMap::from([
                ("color".into(), AttributeValue::Text("black".into())),
                ("bluetooth".into(), AttributeValue::Bool(true)),
                ("weight_g".into(), AttributeValue::Number(250.into())),
            ]),
            images: vec!["https://example.com/a.jpg".into()],
        }),
        CatalogEvent::ProductCreated(ProductCreated {
            sku: "ELEC-2".into(),
            name: "Earbuds".into(),
            description: String::new(),
            category: "electronics".into(),
            brand: Some("Acme".into()),
            price_cents: 4999,
            currency: "EUR".into(),
            stock: 0,
            status: ProductStatus::Draft,
            attributes: BTreeMap::new(),
            images: Vec::new(),
        }),
        CatalogEvent::ProductDetailsChanged(ProductDetailsChanged {
            name: Some("Headphones X2".into()),
            brand: Some(None),
            ..Default::default()
        }),
        CatalogEvent::PriceChanged(PriceChanged {
            price_cents: 11999,
            currency: "USD".into(),
            previous_price_cents: Some(12999),
        }),
        CatalogEvent::StockAdjusted(StockAdjusted {
            delta: -1,
            reason: None,
        }),
        CatalogEvent::StockAdjusted(StockAdjusted {
            delta: -3,
            reason: Some("recount".into()),
        }),
        CatalogEvent::SaleRecorded(SaleRecorded { quantity: 2 }),
        CatalogEvent::ProductPublished(ProductPublished {}),
        CatalogEvent::ProductUnpublished(ProductUnpublished {}),
        CatalogEvent::ProductArchived(ProductArchived {}),
        CatalogEvent::ImagesAdded(ImagesAdded {
            images: vec![AddedImage {
                id: "a6685cefb1a43d1b80818ddf7c38c675".into(),
                url: "/images/a6685cefb1a43d1b80818ddf7c38c675.page.jpg".into(),
                thumbnail_url: "/images/a6685cefb1a43d1b80818ddf7c38c675.thumb.jpg".into(),
                width: 1200,
                height: 800,
            }],
        }),
        CatalogEvent::ImageRemoved(ImageRemoved {
            image_id: "a6685cefb1a43d1b80818ddf7c38c675".into(),
            url: "/images/a6685cefb1a43d1b80818ddf7c38c675.page.jpg".into(),
        }),
        CatalogEvent::CategoryCreated(CategoryCreated {
            slug: "audio".into(),
            name: "Audio".into(),
            parent: None,
        }),
        CatalogEvent::CategoryCreated(CategoryCreated {
            slug: "headphones".into(),
            name: "Headphones".into(),
            parent: Some("audio".into()),
        }),
        CatalogEvent::SynonymsChanged(SynonymsChanged {
            groups: vec![
                vec!["tv".into(), "television".into()],
                vec!["sofa".into(), "couch".into(), "settee".into()],
            ],
        }),
        // Clearing every synonym.
        CatalogEvent::SynonymsChanged(SynonymsChanged { groups: Vec::new() }),
    ]
}

#[test]
fn every_event_round_trips_through_its_wire_form() {
    for event in produced() {
        let decoded =
            CatalogEvent::decode(event.event_type(), event.schema_version(), &event.to_data())
                .expect("decodes");
        assert_eq!(decoded, event);
    }
}

#[test]
fn every_event_our_code_writes_validates_against_its_schema_and_the_envelope_schema() {
    let envelope_schema = schema("envelope.v1.json");
    for (index, event) in produced().into_iter().enumerate() {
        let envelope = NewEvent::from_event(
            Uuid::now_v7(),
            index as u64 + 1,
            &event,
            Utc::now(),
            EventMetadata {
                actor: Some(Uuid::now_v7().to_string()),
                correlation_id: Some("req-1".into()),
                causation_id: None,
                traceparent: None,
            },
        )
        .into_envelope(index as u64 + 10);
        let wire = serde_json::to_value(&envelope).expect("envelope to JSON");
        assert_valid(&envelope_schema, &wire, "the envelope");
        let name = format!("{}.v{}.json", envelope.event_type, envelope.schema_version);
        assert_valid(&schema(&name), &wire["data"], &name);
    }
}

#[test]
fn price_changed_v1_and_v2_schemas_each_accept_their_version_and_v1_refuses_v2() {
    let v1 = schema("PriceChanged.v1.json");
    let v2 = schema("PriceChanged.v2.json");
    let stored_v1 = json!({"price_cents": 1999, "currency": "USD"});
    let written_v2 = json!({"price_cents": 1999, "currency": "USD", "previous_price_cents": 2499});
    let unknown_previous =
        json!({"price_cents": 1999, "currency": "USD", "previous_price_cents": null});
    assert_valid(&v1, &stored_v1, "a v1 body under v1");
    assert_valid(&v2, &written_v2, "a v2 body under v2");
    assert_valid(
        &v2,
        &unknown_previous,
        "a v2 body with an unknown previous price",
    );
    assert!(
        !v1.is_valid(&written_v2),
        "v1 must refuse previous_price_cents"
    );
    assert!(!v2.is_valid(&json!({"price_cents": "12", "currency": "USD"})));
    assert!(!v2.is_valid(&json!({"currency": "USD", "previous_price_cents": 1})));
    // What our code reads a v1 event as is a valid v2 body.
    let upcast = CatalogEvent::decode("PriceChanged", 1, &stored_v1).expect("upcasts");
    assert_valid(&v2, &upcast.to_data(), "the upcast v1 event");
}

#[test]
fn the_synonyms_schema_refuses_what_is_not_a_list_of_word_lists() {
    let synonyms = schema("SynonymsChanged.v1.json");
    assert_valid(
        &synonyms,
        &json!({"groups": [["tv", "television"]]}),
        "a synonyms body",
    );
    assert!(!synonyms.is_valid(&json!({})));
    assert!(!synonyms.is_valid(&json!({"groups": ["tv", "television"]})));
    assert!(!synonyms.is_valid(&json!({"groups": [[1, 2]]})));
    assert!(!synonyms.is_valid(&json!({"groups": [], "extra": true})));
}

#[test]
fn analytics_events_validate_against_the_analytics_schemas() {
    use events::analytics::{AnalyticsEvent, ProductViewed, SearchPerformed};
    let envelope_schema = schema("analytics/envelope.v1.json");
    let events = [
        AnalyticsEvent::ProductViewed(ProductViewed {
            product_id: Uuid::now_v7(),
            category: "audio".into(),
        }),
        AnalyticsEvent::SearchPerformed(SearchPerformed {
            query: events::analytics::normalise_query("  Wireless   HEADPHONES "),
            filters: BTreeMap::from([("brand".into(), "Acme".into())]),
            result_count: 0,
        }),
    ];
    for event in events {
        let envelope = event.into_envelope(Utc::now());
        let wire = serde_json::to_value(&envelope).expect("to JSON");
        assert_valid(&envelope_schema, &wire, "the analytics envelope");
        let name = format!("analytics/{}.v1.json", envelope.event_type);
        assert_valid(&schema(&name), &wire["data"], &name);
    }
    assert_eq!(
        events::analytics::normalise_query("  Wireless   HEADPHONES "),
        "wireless headphones"
    );
}
