//! Request and response shapes for the OpenAPI document. Handlers validate bodies field by
//! field (see `validation`); these types describe the same contract to clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/products` and each bulk item. A field the server sets (`id`, `version`, `sales`,
/// `created_at`, `updated_at`) or does not know is refused.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// 1–64 of `[A-Za-z0-9._-]`, unique.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// 1–200 characters, not all blank.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// At most 10,000 characters.
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// The slug of an existing category.
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    pub category: String,
    /// 1–100 characters, not all blank.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub brand: Option<String>,
    /// Minor units, 0 to 10,000,000,000,000.
    #[schema(minimum = 0, maximum = 10_000_000_000_000_i64)]
    pub price_cents: i64,
    /// ISO 4217, three upper-case letters.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// 0 to 1,000,000,000, default 0.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<i64>,
    /// `draft` (default), `published` or `archived`.
    #[schema(pattern = "^(draft|published|archived)$")]
    pub status: Option<String>,
    /// Flat object of string, number or boolean values, at most 50 keys.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    pub images: Option<Vec<String>>,
}

/// `PATCH /api/products/{id}`: any of these; `brand: null` clears the brand.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    /// 1–200 characters, not all blank.
    #[schema(nullable = false, min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// At most 10,000 characters.
    #[schema(nullable = false, max_length = 10000)]
    pub description: Option<String>,
    /// The slug of an existing category.
    #[schema(nullable = false, pattern = "^[a-z0-9-]{1,64}$")]
    pub category: Option<String>,
    /// 1–100 characters, not all blank; `null` clears the brand.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub brand: Option<String>,
    /// Replaces the whole attribute set.
    #[schema(value_type = Option<Object>, nullable = false)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    /// Replaces the whole image list.
    #[schema(nullable = false)]
    pub images: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    /// Minor units, 0 to 10,000,000,000,000.
    #[schema(minimum = 0, maximum = 10_000_000_000_000_i64)]
    pub price_cents: i64,
    /// ISO 4217, three upper-case letters.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockInput {
    /// Non-zero, at most 1,000,000,000 either way; the resulting stock may not go below 0
    /// (409).
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    pub delta: i64,
    /// At most 200 characters.
    #[schema(max_length = 200)]
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleInput {
    /// 1 to 1,000,000; more than the stock is 409.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: i64,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    pub slug: String,
    /// 1–200 characters, not all blank.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    /// The slug of an existing category.
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
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
    #[schema(min_length = 1, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1)]
    pub password: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RefreshInput {
    #[schema(min_length = 1)]
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
