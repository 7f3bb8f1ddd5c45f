//! The catalog's events: a product's, a category's and the search settings'. Past tense, one
//! struct each, versioned.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A product attribute value: attributes are a flat object of string, number or bool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AttributeValue {
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
}

/// A product's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Draft,
    Published,
    Archived,
}

impl ProductStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductStatus::Draft => "draft",
            ProductStatus::Published => "published",
            ProductStatus::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "draft" => Some(ProductStatus::Draft),
            "published" => Some(ProductStatus::Published),
            "archived" => Some(ProductStatus::Archived),
            _ => None,
        }
    }
}

/// A product was added to the catalog. `aggregate_version` is 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductCreated {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: Option<String>,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub status: ProductStatus,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub images: Vec<String>,
}

/// Some descriptive fields changed; absent fields kept their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductDetailsChanged {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `Some(None)` clears the brand.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    #[schemars(with = "Option<String>")]
    pub brand: Option<Option<String>>,
    /// Replaces the whole attribute set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, AttributeValue>>,
    /// Replaces the whole image list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Option<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
}

/// The price changed (schema version 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceChanged {
    pub price_cents: i64,
    pub currency: String,
    /// The price before this change. `null` (or absent) when it is not known: events
    /// written as version 1, which did not carry it, read as version 2 with `null` here.
    #[serde(default)]
    pub previous_price_cents: Option<i64>,
}

/// The price changed: version 1 of `PriceChanged`, as written before version 2 existed.
/// Stored events keep this shape; [`CatalogEvent::decode`] upcasts them to [`PriceChanged`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PriceChanged")]
pub struct PriceChangedV1 {
    pub price_cents: i64,
    pub currency: String,
}

impl PriceChangedV1 {
    /// The version 2 event this one reads as.
    pub fn upcast(self) -> PriceChanged {
        PriceChanged {
            price_cents: self.price_cents,
            currency: self.currency,
            previous_price_cents: None,
        }
    }
}

/// Reads an event written in an older schema version as the current one: `Ok(None)` when
/// `(event_type, schema_version)` is not an older version this code knows.
fn decode_older(
    event_type: &str,
    schema_version: u32,
    data: &serde_json::Value,
) -> Result<Option<CatalogEvent>, DecodeError> {
    let malformed = |source| DecodeError::Malformed {
        event_type: event_type.to_owned(),
        source,
    };
    match (event_type, schema_version) {
        ("PriceChanged", 1) => serde_json::from_value::<PriceChangedV1>(data.clone())
            .map(|v1| Some(CatalogEvent::PriceChanged(v1.upcast())))
            .map_err(malformed),
        _ => Ok(None),
    }
}

/// Stock was corrected by `delta` (a recount, a delivery, breakage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StockAdjusted {
    pub delta: i64,
    pub reason: Option<String>,
}

/// `quantity` units were sold: stock goes down and sales go up by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleRecorded {
    pub quantity: i64,
}

/// The product became visible to shoppers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPublished {}

/// The product is hidden from shoppers again (back to draft).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductUnpublished {}

/// The product was removed from the catalog; it accepts no further commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductArchived {}

/// An uploaded image of a product, as its renditions (in `ImagesAdded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddedImage {
    /// 32 lower-case hex digits, derived from the uploaded bytes.
    pub id: String,
    /// The page-size rendition (at most 1200 pixels a side), JPEG; this is what the product's
    /// `images` lists.
    pub url: String,
    /// The thumbnail (at most 320 pixels a side), JPEG.
    pub thumbnail_url: String,
    /// The page-size rendition's width in pixels.
    pub width: u32,
    /// The page-size rendition's height in pixels.
    pub height: u32,
}

/// Images were uploaded for the product: their page-size URLs are appended to its `images`, in
/// this order (a URL the list holds already is not repeated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagesAdded {
    pub images: Vec<AddedImage>,
}

/// An uploaded image was taken off the product: `url` leaves its `images`. The files stay in
/// the image store (names are content-addressed and may be shared).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRemoved {
    pub image_id: String,
    pub url: String,
}

/// A category was created. Its aggregate id is derived from the slug
/// ([`category_aggregate_id`]), so a slug can be created only once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryCreated {
    pub slug: String,
    pub name: String,
    pub parent: Option<String>,
}

/// The namespace for category aggregate ids (UUID v5 of the slug).
const CATEGORY_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6d1c_2a4e_9f3b_4c1d_8e2a_0b5c_7d9e_1f30);

/// The aggregate id of the category with `slug`.
pub fn category_aggregate_id(slug: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&CATEGORY_NAMESPACE, slug.as_bytes())
}

/// The search synonyms were replaced as a whole: each group lists words a shopper means alike
/// ("tv", "television"), so a search for one also finds the others. An empty list clears them.
/// Not a product's event: its aggregate is the search settings, always the aggregate id
/// 5ea2c4e5-0000-8000-8000-000000000001 (`SEARCH_SETTINGS_ID`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynonymsChanged {
    /// At most 500 groups; each group 2 to 20 distinct words, each word 1 to 50 lower-case
    /// letters or digits.
    pub groups: Vec<Vec<String>>,
}

/// The aggregate id of the search settings, the one stream `SynonymsChanged` is appended to
/// (with optimistic concurrency, like any aggregate): `5ea2c4e5-0000-8000-8000-000000000001`.
/// A fixed id (UUID version 8, "custom"), not generated: every process and every consumer
/// names the same stream.
pub const SEARCH_SETTINGS_ID: uuid::Uuid =
    uuid::Uuid::from_u128(0x5ea2_c4e5_0000_8000_8000_0000_0000_0001);

/// Why an envelope's `data` could not be read as a typed event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {event_type} version {schema_version}")]
    UnknownType {
        event_type: String,
        schema_version: u32,
    },
    #[error("event {event_type} has malformed data: {source}")]
    Malformed {
        event_type: String,
        source: serde_json::Error,
    },
}

macro_rules! catalog_events {
    ($($variant:ident($ty:ident) = $version:literal),* $(,)?) => {
        /// Every event the catalog writes.
        #[derive(Debug, Clone, PartialEq)]
        pub enum CatalogEvent {
            $($variant($ty),)*
        }

        impl CatalogEvent {
            /// The `event_type` name on the wire.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(CatalogEvent::$variant(_) => stringify!($ty),)*
                }
            }

            /// The schema version this code writes.
            pub fn schema_version(&self) -> u32 {
                match self {
                    $(CatalogEvent::$variant(_) => $version,)*
                }
            }

            /// The event body as JSON.
            pub fn to_data(&self) -> serde_json::Value {
                let result = match self {
                    $(CatalogEvent::$variant(event) => serde_json::to_value(event),)*
                };
                // Serialising these plain structs to a Value cannot fail: no maps with
                // non-string keys, no custom serialisers that error.
                result.unwrap_or(serde_json::Value::Null)
            }

            /// Reads a typed event from its wire parts; an event written in an older schema
            /// version is upcast to the version this code writes.
            pub fn decode(
                event_type: &str,
                schema_version: u32,
                data: &serde_json::Value,
            ) -> Result<Self, DecodeError> {
                match (event_type, schema_version) {
                    $((stringify!($ty), $version) => serde_json::from_value(data.clone())
                        .map(CatalogEvent::$variant)
                        .map_err(|source| DecodeError::Malformed {
                            event_type: event_type.to_owned(),
                            source,
                        }),)*
                    _ => decode_older(event_type, schema_version, data)?.ok_or_else(|| {
                        DecodeError::UnknownType {
                            event_type: event_type.to_owned(),
                            schema_version,
                        }
                    }),
                }
            }

            /// `(event_type, schema_version, JSON Schema of data)` for every event version,
            /// the older versions that are still read included.
            pub fn schemas() -> Vec<(&'static str, u32, schemars::schema::RootSchema)> {
                vec![
                    $((stringify!($ty), $version, schemars::schema_for!($ty)),)*
                    ("PriceChanged", 1, schemars::schema_for!(PriceChangedV1)),
                ]
            }
        }
    };
}

catalog_events! {
    ProductCreated(ProductCreated) = 1,
    ProductDetailsChanged(ProductDetailsChanged) = 1,
    PriceChanged(PriceChanged) = 2,
    StockAdjusted(StockAdjusted) = 1,
    SaleRecorded(SaleRecorded) = 1,
    ProductPublished(ProductPublished) = 1,
    ProductUnpublished(ProductUnpublished) = 1,
    ProductArchived(ProductArchived) = 1,
    ImagesAdded(ImagesAdded) = 1,
    ImageRemoved(ImageRemoved) = 1,
    CategoryCreated(CategoryCreated) = 1,
    SynonymsChanged(SynonymsChanged) = 1,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_details_change_that_clears_the_brand_says_so_on_the_wire() {
        let event = ProductDetailsChanged {
            brand: Some(None),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"brand": null})
        );
        let untouched = ProductDetailsChanged::default();
        assert_eq!(
            serde_json::to_value(&untouched).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn a_stored_version_1_price_change_reads_as_version_2_without_a_previous_price() {
        let v1 = serde_json::json!({"price_cents": 1999, "currency": "USD"});
        let decoded = CatalogEvent::decode("PriceChanged", 1, &v1).expect("decodes");
        assert_eq!(
            decoded,
            CatalogEvent::PriceChanged(PriceChanged {
                price_cents: 1999,
                currency: "USD".into(),
                previous_price_cents: None,
            })
        );
        // Our code writes version 2 only.
        assert_eq!(decoded.schema_version(), 2);
        // A version 2 body is not a valid version 1 body.
        let v2 =
            serde_json::json!({"price_cents": 1, "currency": "USD", "previous_price_cents": 5});
        assert!(CatalogEvent::decode("PriceChanged", 1, &v2).is_err());
    }

    #[test]
    fn synonyms_changed_is_on_the_wire_as_its_groups() {
        let event = CatalogEvent::SynonymsChanged(SynonymsChanged {
            groups: vec![vec!["tv".into(), "television".into()]],
        });
        assert_eq!(
            (event.event_type(), event.schema_version()),
            ("SynonymsChanged", 1)
        );
        assert_eq!(
            event.to_data(),
            serde_json::json!({"groups": [["tv", "television"]]})
        );
        assert_eq!(
            SEARCH_SETTINGS_ID.to_string(),
            "5ea2c4e5-0000-8000-8000-000000000001"
        );
    }

    #[test]
    fn an_unknown_type_or_version_is_an_error_not_a_guess() {
        let result = CatalogEvent::decode("PriceChanged", 99, &serde_json::json!({}));
        assert!(matches!(result, Err(DecodeError::UnknownType { .. })));
    }
}
