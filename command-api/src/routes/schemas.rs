//! Request and response shapes for the OpenAPI document. Handlers validate bodies field by
//! field (see `validation`); these types describe the same contract to clients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
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
    #[schema(nullable = false, max_length = 10000)]
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
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<i64>,
    /// `draft` (default), `published` or `archived`.
    #[schema(nullable = false, pattern = "^(draft|published|archived)$")]
    pub status: Option<String>,
    /// Flat object of string, number or boolean values, at most 50 keys.
    #[schema(value_type = Option<Object>, nullable = false)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
    #[schema(nullable = false)]
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
#[serde(deny_unknown_fields)]
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

/// An uploaded image's renditions.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImageOutput {
    /// 32 hex digits; `DELETE /api/products/{id}/images/{image_id}` takes it.
    pub id: String,
    /// The page-size rendition (JPEG, at most 1200 pixels a side), as listed in `images`.
    pub url: String,
    /// The thumbnail (JPEG, at most 320 pixels a side).
    pub thumbnail_url: String,
    /// The page-size rendition's width in pixels.
    pub width: u32,
    /// The page-size rendition's height in pixels.
    pub height: u32,
}

/// `POST /api/products/{id}/images`'s answer: the command's `{"id","version","position"}` and
/// the image.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImageAccepted {
    pub id: uuid::Uuid,
    pub version: u64,
    pub position: u64,
    pub image: ImageOutput,
}

/// The admin console's login answer: the refresh token is in the session cookie, not here.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SessionToken {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
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
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    /// At most 254 characters, one `@`, no white space or control characters; a domain of
    /// dotted labels or `localhost`.
    pub email: String,
    /// 8 to 1,024 characters, at least 5 of them different.
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

/// Characters no email holds: `@`, and white space and control characters as Rust's
/// `char::is_whitespace` and `char::is_control` say (spelled out, since `\s` differs from one
/// regex dialect to another).
const NOT_IN_EMAIL: &str = r"@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// What `accounts::check_email` accepts, as a pattern (with `maxLength: 254`).
pub fn email_pattern() -> String {
    let part = format!("[^{NOT_IN_EMAIL}]");
    let label = format!("[^.{NOT_IN_EMAIL}]+");
    format!("^{part}{{1,64}}@([Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]|{label}(\\.{label})+)$")
}

/// What `validation::is_image_url` accepts, as a pattern (with `maxLength: 2048`).
pub const IMAGE_URL_PATTERN: &str = "^(https?://[!-~]+|/images/[0-9a-f]{32}\\.(page|thumb)\\.jpg)$";

/// Completes the request-body schemas with what the derive macros cannot say: the attribute
/// and image rules, a non-zero stock delta, a patch of at least one field, the synonym groups'
/// sizes and words, and the new user's email and password. Each says what `validation` (or
/// `accounts`) refuses, no more and no less, so a schema-valid body is accepted unless it names
/// a category that does not exist, repeats a synonym once lower-cased, or reuses a password of
/// fewer than five different characters (rules of the data, not of the shape; the
/// descriptions say them).
pub fn refine(schemas: &mut Map<String, Value>) {
    let attributes = json!({
        "type": "object", "maxProperties": 50,
        "propertyNames": {"minLength": 1, "maxLength": 64},
        "additionalProperties": {"anyOf": [
            {"type": "string", "maxLength": 1000}, {"type": "number"}, {"type": "boolean"}
        ]},
        "description": "At most 50 keys of 1 to 64 characters; each value a string of at most 1,000 characters, a number or a boolean"
    });
    let images = json!({
        "type": "array", "maxItems": 50,
        "items": {"type": "string", "maxLength": 2048, "pattern": IMAGE_URL_PATTERN},
        "description": "At most 50 http or https URLs of printable ASCII (other characters percent-encoded), each at most 2,048 characters"
    });
    for name in ["ProductInput", "ProductPatch"] {
        if let Some(properties) = schemas
            .get_mut(name)
            .and_then(|schema| schema.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            properties.insert("attributes".into(), attributes.clone());
            properties.insert("images".into(), images.clone());
        }
    }
    if let Some(patch) = schemas.get_mut("ProductPatch") {
        patch["minProperties"] = json!(1);
    }
    if let Some(delta) = schemas
        .get_mut("StockInput")
        .and_then(|s| s.pointer_mut("/properties/delta"))
    {
        delta["not"] = json!({"const": 0});
    }
    // Words are trimmed (white space as Rust's `str::trim` says), then 1 to 50 letters or digits.
    let space = r"[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*";
    if let Some(groups) = schemas
        .get_mut("SynonymsInput")
        .and_then(|s| s.pointer_mut("/properties/groups"))
    {
        groups["maxItems"] = json!(500);
        groups["items"] = json!({
            "type": "array", "minItems": 2, "maxItems": 20,
            "items": {"type": "string", "pattern": format!("^{space}[^\\W_]{{1,50}}{space}$")},
            "description": "2 to 20 words, at least 2 different once lower-cased (a repeated word is kept once)"
        });
    }
    if let Some(properties) = schemas
        .get_mut("NewUserInput")
        .and_then(|schema| schema.get_mut("properties"))
    {
        properties["email"]["maxLength"] = json!(254);
        properties["email"]["pattern"] = json!(email_pattern());
        properties["password"]["minLength"] = json!(8);
        properties["password"]["maxLength"] = json!(1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::check_email;

    /// The document's email pattern and `check_email` agree, string by string.
    #[test]
    fn the_email_pattern_says_what_check_email_accepts() {
        let pattern = regex::Regex::new(&email_pattern()).expect("a valid pattern");
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!("a@{}.com", "b".repeat(250));
        for email in [
            "ann@example.com",
            "a.b+c@sub.example.co",
            "root@LocalHost",
            "é@exämple.org",
            "a@b",
            "@example.com",
            "a@",
            "a@.com",
            "a@b..c",
            "a@b.",
            "a@@b.c",
            "a b@c.d",
            " a@b.c",
            "a@b.c\n",
            "a\u{a0}b@c.d",
            "a\u{7f}@b.c",
            "a@b\u{3000}.c",
            &long_local,
            &long,
        ] {
            // The schema: the pattern and `maxLength: 254`.
            let schema_valid = pattern.is_match(email) && email.chars().count() <= 254;
            assert_eq!(schema_valid, check_email(email).is_ok(), "{email:?}");
        }
    }

    #[test]
    fn the_refined_schemas_are_where_the_document_expects_them() {
        let mut document = serde_json::to_value(<ProductInput as utoipa::PartialSchema>::schema())
            .expect("schema");
        let mut schemas = Map::new();
        schemas.insert("ProductInput".into(), document.take());
        refine(&mut schemas);
        let images = &schemas["ProductInput"]["properties"]["images"];
        assert_eq!(images["items"]["pattern"], IMAGE_URL_PATTERN);
        assert_eq!(
            schemas["ProductInput"]["properties"]["attributes"]["maxProperties"],
            50
        );
    }
}
