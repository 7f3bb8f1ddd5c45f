//! Request and response shapes for the OpenAPI document. Handlers validate bodies field by
//! field (see `validation`); these types describe the same contract to clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/products` and each bulk item.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProductInput {
    /// 1–64 of `[A-Za-z0-9._-]`, unique.
    pub sku: String,
    /// 1–200 characters.
    pub name: String,
    /// At most 10,000 characters.
    pub description: Option<String>,
    /// The slug of an existing category.
    pub category: String,
    pub brand: Option<String>,
    /// Minor units, ≥ 0.
    pub price_cents: i64,
    /// ISO 4217, three upper-case letters.
    pub currency: String,
    /// ≥ 0, default 0.
    pub stock: Option<i64>,
    /// `draft` (default), `published` or `archived`.
    pub status: Option<String>,
    /// Flat object of string, number or boolean values, at most 50 keys.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    pub images: Option<Vec<String>>,
}

/// `PATCH /api/products/{id}`: any of these; `brand: null` clears the brand.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ProductPatch {
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[schema(nullable = false)]
    pub description: Option<String>,
    #[schema(nullable = false)]
    pub category: Option<String>,
    /// `null` clears the brand.
    pub brand: Option<String>,
    /// Replaces the whole attribute set.
    #[schema(value_type = Option<Object>, nullable = false)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    /// Replaces the whole image list.
    #[schema(nullable = false)]
    pub images: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct PriceInput {
    pub price_cents: i64,
    pub currency: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct StockInput {
    /// Non-zero; the resulting stock may not go below 0 (409).
    pub delta: i64,
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SaleInput {
    /// ≥ 1; more than the stock is 409.
    pub quantity: i64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CategoryInput {
    pub slug: String,
    pub name: String,
    pub parent: Option<String>,
}

/// `PUT /api/search/synonyms`: the whole set of synonym groups (`[]` clears them).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SynonymsInput {
    /// At most 500 groups; each 2 to 20 words; each word 1 to 50 letters or digits (trimmed
    /// and lower-cased; a word repeated in a group is kept once).
    #[schema(example = json!([["tv", "television"], ["sofa", "couch"]]))]
    pub groups: Vec<Vec<String>>,
}

/// One bulk item's outcome, in input order.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct BulkItemResult {
    pub index: usize,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub problem: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct BulkResults {
    pub results: Vec<BulkItemResult>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RefreshInput {
    pub refresh_token: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct NewUserInput {
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// `admin`, `analyst` or `shopper`.
    #[schema(value_type = auth::Role)]
    pub role: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct UserOutput {
    pub id: uuid::Uuid,
    pub email: String,
    #[schema(value_type = auth::Role)]
    pub role: String,
}
