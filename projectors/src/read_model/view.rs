//! The documents the read model answers with, and a listing request.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use events::{AttributeValue, ProductStatus};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// This document's JSON, encoded on its first answer and shared by every answer after it;
    /// not part of the document.
    #[serde(skip)]
    pub encoded: Encoded,
}

impl ProductView {
    /// The document as API.md shows it, as JSON: encoded once per document (a changed product
    /// is a new document), however many answers show it.
    pub fn json(&self) -> Bytes {
        self.encoded
            .get_or_encode(|| serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A document's encoded form, made once on first use. A clone starts empty: a clone is made
/// to be changed, and must not answer with the bytes of what it was cloned from.
#[derive(Default)]
pub struct Encoded(OnceLock<Bytes>);

impl Encoded {
    /// The bytes, `encode`d on the first call.
    pub fn get_or_encode(&self, encode: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.0.get_or_init(|| Bytes::from(encode())).clone()
    }
}

impl Clone for Encoded {
    fn clone(&self) -> Self {
        Encoded::default()
    }
}

/// A cache of the document, not part of it: two documents are equal whatever they cached.
impl PartialEq for Encoded {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(if self.0.get().is_some() {
            "Encoded(..)"
        } else {
            "Encoded(empty)"
        })
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KeyPart {
    Int(i64),
    Text(String),
}

/// A product's position in one listing order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
///
/// `categories` and `brands` are each "any of these" (OR), and every filter must hold (AND):
/// `categories = [a, b], brands = [x]` lists the products in `a` or `b` whose brand is `x`.
/// An empty list is no filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListQuery {
    /// Category slugs, exact match; any of them.
    pub categories: Vec<String>,
    /// Brands, case-insensitive exact match; any of them.
    pub brands: Vec<String>,
    /// Inclusive bounds.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// `true`: only products with stock > 0.
    pub in_stock: bool,
    pub sort: SortOrder,
    pub limit: usize,
    pub after: Option<SortKey>,
}

impl ListQuery {
    /// The query behind a bestseller list: published products by sales, no filters.
    pub fn bestsellers(category: Option<&str>, limit: usize) -> ListQuery {
        ListQuery {
            categories: category.map(str::to_owned).into_iter().collect(),
            brands: Vec::new(),
            min_price: None,
            max_price: None,
            in_stock: false,
            sort: SortOrder::Bestselling,
            limit,
            after: None,
        }
    }

    /// The same query in one canonical form: categories sorted and distinct, brands
    /// lowercased, sorted and distinct. OR is indifferent to order and brands match
    /// case-insensitively, so two queries that list the same products have the same
    /// normalised form (what a cache keys on), and each adapter answers both the same.
    pub fn normalized(&self) -> ListQuery {
        let mut categories = self.categories.clone();
        categories.sort();
        categories.dedup();
        let mut brands: Vec<String> = self.brands.iter().map(|b| b.to_lowercase()).collect();
        brands.sort();
        brands.dedup();
        ListQuery {
            categories,
            brands,
            ..self.clone()
        }
    }

    /// Whether any filter beyond the categories is set.
    pub fn is_filtered(&self) -> bool {
        !self.brands.is_empty()
            || self.min_price.is_some()
            || self.max_price.is_some()
            || self.in_stock
    }

    /// Whether `product` is in one of the categories (any product when there are none).
    pub fn in_categories(&self, product: &ProductView) -> bool {
        self.categories.is_empty() || self.categories.contains(&product.category)
    }

    /// Whether `product` passes the filters beyond the categories (brand, price, stock).
    pub fn matches(&self, product: &ProductView) -> bool {
        if !self.brands.is_empty() {
            let Some(own) = product.brand.as_deref().map(str::to_lowercase) else {
                return false;
            };
            if !self.brands.iter().any(|brand| brand.to_lowercase() == own) {
                return false;
            }
        }
        if self.min_price.is_some_and(|min| product.price_cents < min) {
            return false;
        }
        if self.max_price.is_some_and(|max| product.price_cents > max) {
            return false;
        }
        !(self.in_stock && product.stock <= 0)
    }
}

/// A page of products and the position the view had when it was read.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Arc<ProductView>>,
    pub next_cursor: Option<Cursor>,
    pub position: u64,
}

impl Page {
    /// The page of `query` from `candidates`: the matching products in order, up to one more
    /// than the limit (that one only says that a next page exists, and is cut).
    pub fn cut(mut candidates: Vec<Arc<ProductView>>, query: &ListQuery, position: u64) -> Page {
        let next_cursor = if candidates.len() > query.limit {
            candidates.truncate(query.limit);
            candidates.last().map(|last| Cursor {
                sort: query.sort,
                after: query.sort.key(last),
            })
        } else {
            None
        };
        Page {
            items: candidates,
            next_cursor,
            position,
        }
    }
}

/// How a product's change moves the published-product counts of categories: -1 for the
/// category it was published in, +1 for the one it is published in now (nothing when both
/// are the same, or it was and is unpublished).
pub fn count_deltas(before: Option<&ProductView>, after: &ProductView) -> Vec<(String, i64)> {
    let published_in = |view: &ProductView| {
        (view.status == ProductStatus::Published).then(|| view.category.clone())
    };
    let was = before.and_then(published_in);
    let now = published_in(after);
    if was == now {
        return Vec::new();
    }
    [(was, -1), (now, 1)]
        .into_iter()
        .filter_map(|(category, delta)| category.map(|category| (category, delta)))
        .collect()
}
