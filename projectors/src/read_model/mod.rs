//! The catalog read model: what product pages, listings, bestsellers and categories read.

pub mod conformance;
mod memory;
pub mod postgres;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use events::{AttributeValue, ProductStatus};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use memory::MemoryReadModel;

use crate::Applied;
use events::{CatalogEvent, Envelope};

/// A product as API.md shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub brand: Option<String>,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub sales: i64,
    #[schema(value_type = String, example = "published")]
    pub status: ProductStatus,
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, AttributeValue>,
    pub images: Vec<String>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A category with the number of published products in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryView {
    pub slug: String,
    pub name: String,
    pub parent: Option<String>,
    pub product_count: u64,
}

/// A listing's order. Ties are broken by id (ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// `created_at` descending (the default).
    Newest,
    PriceAsc,
    PriceDesc,
    Bestselling,
    Name,
}

impl SortOrder {
    pub const ALL: [SortOrder; 5] = [
        SortOrder::Newest,
        SortOrder::PriceAsc,
        SortOrder::PriceDesc,
        SortOrder::Bestselling,
        SortOrder::Name,
    ];

    pub fn parse(text: &str) -> Option<SortOrder> {
        match text {
            "newest" => Some(SortOrder::Newest),
            "price_asc" => Some(SortOrder::PriceAsc),
            "price_desc" => Some(SortOrder::PriceDesc),
            "bestselling" => Some(SortOrder::Bestselling),
            "name" => Some(SortOrder::Name),
            _ => None,
        }
    }

    /// The key a product sorts by, ascending.
    pub fn key(self, product: &ProductView) -> SortKey {
        let part = match self {
            SortOrder::Newest => KeyPart::Int(-product.created_at.timestamp_micros()),
            SortOrder::PriceAsc => KeyPart::Int(product.price_cents),
            SortOrder::PriceDesc => KeyPart::Int(-product.price_cents),
            SortOrder::Bestselling => KeyPart::Int(-product.sales),
            SortOrder::Name => KeyPart::Text(product.name.to_lowercase()),
        };
        SortKey {
            part,
            id: product.id,
        }
    }
}

/// One part of a sort key: numbers are stored so that ascending order is the listing's order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyPart {
    Int(i64),
    Text(String),
}

/// A product's position in one listing order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SortKey {
    pub part: KeyPart,
    pub id: Uuid,
}

/// Where the next page starts: strictly after this key, in this order. Keyset pagination: a
/// product that does not change keeps its key, so it is never shown twice nor skipped, however
/// others change between pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub sort: SortOrder,
    pub after: SortKey,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether the key has the kind its sort order uses (text for `name`, a number otherwise):
    /// a hand-made cursor could pair them wrongly.
    pub fn is_well_formed(&self) -> bool {
        matches!(
            (self.sort, &self.after.part),
            (SortOrder::Name, KeyPart::Text(_))
                | (
                    SortOrder::Newest
                        | SortOrder::PriceAsc
                        | SortOrder::PriceDesc
                        | SortOrder::Bestselling,
                    KeyPart::Int(_)
                )
        )
    }
}

/// A listing request, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub category: Option<String>,
    /// Case-insensitive exact match.
    pub brand: Option<String>,
    /// Inclusive bounds.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// `true`: only products with stock > 0.
    pub in_stock: bool,
    pub sort: SortOrder,
    pub limit: usize,
    pub after: Option<SortKey>,
}

/// A page of products and the position the view had when it was read.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Arc<ProductView>>,
    pub next_cursor: Option<Cursor>,
    pub position: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    /// This view would have to scan too much to answer (a very selective filter on a view
    /// without an index for it): ask another view.
    #[error("the view cannot answer this query cheaply")]
    TooCostly,
}

/// What the query side reads. Every answer carries the position the view had reached.
///
/// Only `published` products are visible through it.
#[async_trait]
pub trait CatalogReadModel: Send + Sync + 'static {
    /// A published product, or `None`.
    async fn product(&self, id: Uuid) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError>;
    /// A product whatever its status (draft, published, archived): for admins.
    async fn product_any_status(
        &self,
        id: Uuid,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError>;
    async fn list(&self, query: &ListQuery) -> Result<Page, ReadModelError>;
    /// The top `limit` by sales, optionally in one category.
    async fn bestsellers(
        &self,
        category: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Arc<ProductView>>, u64), ReadModelError>;
    /// Every category, by slug, with counts of published products.
    async fn categories(&self) -> Result<(Vec<CategoryView>, u64), ReadModelError>;
    /// The position the view has applied everything up to.
    fn position(&self) -> u64;
    /// Waits until the view has applied `position`; `false` after `timeout`.
    async fn wait_for(&self, position: u64, timeout: Duration) -> bool;
}

/// What one event does to a product view: the pure step both read models share.
pub enum Evolved {
    /// The view after the event.
    Changed(Box<ProductView>),
    /// Nothing changed: a duplicate, or a gap to repair first.
    Unchanged(Applied),
}

/// Applies `event` (of `envelope`) to `current`, the view's product at its version, if any.
pub fn evolve(current: Option<&ProductView>, envelope: &Envelope, event: CatalogEvent) -> Evolved {
    let id = envelope.aggregate_id;
    let mut product = match (current, event) {
        (Some(current), _) if envelope.aggregate_version <= current.version => {
            return Evolved::Unchanged(Applied::Duplicate)
        }
        (Some(current), _) if envelope.aggregate_version > current.version + 1 => {
            return Evolved::Unchanged(Applied::Gap {
                applied_version: current.version,
            })
        }
        (None, _) if envelope.aggregate_version > 1 => {
            return Evolved::Unchanged(Applied::Gap { applied_version: 0 })
        }
        (None, CatalogEvent::ProductCreated(created)) => ProductView {
            id,
            sku: created.sku,
            name: created.name,
            description: created.description,
            category: created.category,
            brand: created.brand,
            price_cents: created.price_cents,
            currency: created.currency,
            stock: created.stock,
            sales: 0,
            status: created.status,
            attributes: created.attributes,
            images: created.images,
            version: envelope.aggregate_version,
            created_at: envelope.occurred_at,
            updated_at: envelope.occurred_at,
        },
        (None, other) => {
            tracing::warn!(product_id = %id, event_type = other.event_type(), "version 1 of a product is not ProductCreated");
            return Evolved::Unchanged(Applied::Duplicate);
        }
        (Some(current), event) => {
            let mut product = ProductView::clone(current);
            match event {
                CatalogEvent::ProductCreated(_) | CatalogEvent::CategoryCreated(_) => {
                    return Evolved::Unchanged(Applied::Duplicate)
                }
                CatalogEvent::ProductDetailsChanged(changed) => {
                    if let Some(name) = changed.name {
                        product.name = name;
                    }
                    if let Some(description) = changed.description {
                        product.description = description;
                    }
                    if let Some(category) = changed.category {
                        product.category = category;
                    }
                    if let Some(brand) = changed.brand {
                        product.brand = brand;
                    }
                    if let Some(attributes) = changed.attributes {
                        product.attributes = attributes;
                    }
                    if let Some(images) = changed.images {
                        product.images = images;
                    }
                }
                CatalogEvent::PriceChanged(price) => {
                    product.price_cents = price.price_cents;
                    product.currency = price.currency;
                }
                CatalogEvent::StockAdjusted(adjusted) => product.stock += adjusted.delta,
                CatalogEvent::SaleRecorded(sale) => {
                    product.stock -= sale.quantity;
                    product.sales += sale.quantity;
                }
                CatalogEvent::ProductPublished(_) => product.status = ProductStatus::Published,
                CatalogEvent::ProductUnpublished(_) => product.status = ProductStatus::Draft,
                CatalogEvent::ProductArchived(_) => product.status = ProductStatus::Archived,
            }
            product.version = envelope.aggregate_version;
            product.updated_at = envelope.occurred_at;
            product
        }
    };
    product.version = envelope.aggregate_version;
    Evolved::Changed(Box::new(product))
}
