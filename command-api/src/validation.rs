//! Request bodies → typed commands, with every field's errors collected (API.md's rules).
//!
//! Bodies are read as `serde_json::Value` first, so a well-formed body with wrong fields is a
//! 422 naming each field (dotted for nested ones), not a serde message about the first one.

use std::collections::BTreeMap;

use events::{
    AttributeValue, CategoryCreated, PriceChanged, ProductCreated, ProductDetailsChanged,
    ProductStatus, SaleRecorded, StockAdjusted,
};
use serde_json::{Map, Value};
use web::FieldErrors;

pub const MAX_PRICE_CENTS: i64 = 10_000_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_SALE_QUANTITY: i64 = 1_000_000;
const MAX_ATTRIBUTES: usize = 50;
const MAX_IMAGES: usize = 50;

struct Body<'a> {
    object: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Body<'a> {
    fn new(value: &'a Value, allowed: &[&str], server_set: &[&str]) -> Result<Self, FieldErrors> {
        let Some(object) = value.as_object() else {
            return Err(FieldErrors::from([(
                "body".to_owned(),
                vec!["must be a JSON object".to_owned()],
            )]));
        };
        let mut body = Body {
            object,
            errors: FieldErrors::new(),
        };
        for key in object.keys() {
            if server_set.contains(&key.as_str()) {
                body.error(key, "is set by the server and cannot be given");
            } else if !allowed.contains(&key.as_str()) {
                body.error(key, "is not a known field");
            }
        }
        Ok(body)
    }

    fn error(&mut self, field: &str, message: &str) {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(message.to_owned());
    }

    fn present(&self, field: &str) -> bool {
        self.object.contains_key(field)
    }

    fn finish<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }

    /// A required (or, with `required = false`, optional) string passing `check`.
    fn string(
        &mut self,
        field: &str,
        required: bool,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        match self.object.get(field) {
            None if required => {
                self.error(field, "is required");
                None
            }
            None => None,
            Some(Value::String(text)) => match check(text) {
                Ok(()) => Some(text.clone()),
                Err(message) => {
                    self.error(field, &message);
                    None
                }
            },
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    fn integer(&mut self, field: &str, required: bool, min: i64, max: i64) -> Option<i64> {
        match self.object.get(field) {
            None if required => {
                self.error(field, "is required");
                None
            }
            None => None,
            Some(value) => match value.as_i64() {
                Some(number) if (min..=max).contains(&number) => Some(number),
                Some(_) => {
                    self.error(field, &format!("must be between {min} and {max}"));
                    None
                }
                None => {
                    self.error(field, "must be an integer");
                    None
                }
            },
        }
    }

    fn attributes(&mut self, field: &str) -> Option<BTreeMap<String, AttributeValue>> {
        let value = self.object.get(field)?;
        let Some(object) = value.as_object() else {
            self.error(
                field,
                "must be an object of string, number or boolean values",
            );
            return None;
        };
        if object.len() > MAX_ATTRIBUTES {
            self.error(field, &format!("may have at most {MAX_ATTRIBUTES} keys"));
        }
        let mut attributes = BTreeMap::new();
        for (key, value) in object {
            let path = format!("{field}.{key}");
            if key.is_empty() || key.chars().count() > 64 {
                self.error(&path, "keys must be 1 to 64 characters");
                continue;
            }
            let attribute = match value {
                Value::Bool(flag) => AttributeValue::Bool(*flag),
                Value::Number(number) => AttributeValue::Number(number.clone()),
                Value::String(text) if text.chars().count() <= 1000 => {
                    AttributeValue::Text(text.clone())
                }
                Value::String(_) => {
                    self.error(&path, "must be at most 1000 characters");
                    continue;
                }
                _ => {
                    self.error(&path, "must be a string, number or boolean");
                    continue;
                }
            };
            attributes.insert(key.clone(), attribute);
        }
        Some(attributes)
    }

    fn images(&mut self, field: &str) -> Option<Vec<String>> {
        let value = self.object.get(field)?;
        let Some(items) = value.as_array() else {
            self.error(field, "must be an array of image URLs");
            return None;
        };
        if items.len() > MAX_IMAGES {
            self.error(field, &format!("may have at most {MAX_IMAGES} images"));
        }
        let mut images = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(url) if is_image_url(url) => images.push(url.to_owned()),
                _ => self.error(
                    &format!("{field}.{index}"),
                    "must be an http or https URL of at most 2048 characters",
                ),
            }
        }
        Some(images)
    }

    /// `brand`: a string, or null for none.
    fn nullable_brand(&mut self) -> Option<Option<String>> {
        match self.object.get("brand")? {
            Value::Null => Some(None),
            Value::String(text) => match check_brand(text) {
                Ok(()) => Some(Some(text.clone())),
                Err(message) => {
                    self.error("brand", &message);
                    None
                }
            },
            _ => {
                self.error("brand", "must be a string or null");
                None
            }
        }
    }
}

fn is_image_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url.len() > "https://".len()
        && !url.chars().any(char::is_whitespace)
}

pub fn check_sku(sku: &str) -> Result<(), String> {
    let valid_chars = sku
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if (1..=64).contains(&sku.len()) && valid_chars {
        Ok(())
    } else {
        Err("must be 1 to 64 of the characters A-Z a-z 0-9 . _ -".into())
    }
}

pub fn check_slug(slug: &str) -> Result<(), String> {
    let valid_chars = slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if (1..=64).contains(&slug.len()) && valid_chars {
        Ok(())
    } else {
        Err("must be a slug: 1 to 64 of the characters a-z 0-9 -".into())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        Err("must be 1 to 200 characters, not all blank".into())
    } else {
        Ok(())
    }
}

fn check_description(description: &str) -> Result<(), String> {
    if description.chars().count() > 10_000 {
        Err("must be at most 10000 characters".into())
    } else {
        Ok(())
    }
}

fn check_brand(brand: &str) -> Result<(), String> {
    if brand.trim().is_empty() || brand.chars().count() > 100 {
        Err("must be 1 to 100 characters, or null".into())
    } else {
        Ok(())
    }
}

fn check_currency(currency: &str) -> Result<(), String> {
    if currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("must be an ISO 4217 code: 3 upper-case letters".into())
    }
}

fn check_status(status: &str) -> Result<(), String> {
    match ProductStatus::parse(status) {
        Some(_) => Ok(()),
        None => Err("must be one of draft, published, archived".into()),
    }
}

fn check_reason(reason: &str) -> Result<(), String> {
    if reason.chars().count() > 200 {
        Err("must be at most 200 characters".into())
    } else {
        Ok(())
    }
}

/// `POST /api/products` (and each bulk item).
pub fn new_product(value: &Value) -> Result<ProductCreated, FieldErrors> {
    let mut body = Body::new(
        value,
        &[
            "sku",
            "name",
            "description",
            "category",
            "brand",
            "price_cents",
            "currency",
            "stock",
            "status",
            "attributes",
            "images",
        ],
        &["id", "version", "sales", "created_at", "updated_at"],
    )?;
    let sku = body.string("sku", true, check_sku);
    let name = body.string("name", true, check_name);
    let description = body.string("description", false, check_description);
    let category = body.string("category", true, check_slug);
    let brand = body.nullable_brand().flatten();
    let price_cents = body.integer("price_cents", true, 0, MAX_PRICE_CENTS);
    let currency = body.string("currency", true, check_currency);
    let stock = body.integer("stock", false, 0, MAX_STOCK);
    let status = body.string("status", false, check_status);
    let attributes = body.attributes("attributes");
    let images = body.images("images");
    let (Some(sku), Some(name), Some(category), Some(price_cents), Some(currency)) =
        (sku, name, category, price_cents, currency)
    else {
        return Err(body.errors);
    };
    let created = ProductCreated {
        sku,
        name,
        description: description.unwrap_or_default(),
        category,
        brand,
        price_cents,
        currency,
        stock: stock.unwrap_or(0),
        status: status
            .as_deref()
            .and_then(ProductStatus::parse)
            .unwrap_or(ProductStatus::Draft),
        attributes: attributes.unwrap_or_default(),
        images: images.unwrap_or_default(),
    };
    body.finish(created)
}

/// `PATCH /api/products/{id}`: at least one of the descriptive fields.
pub fn details_change(value: &Value) -> Result<ProductDetailsChanged, FieldErrors> {
    const FIELDS: [&str; 6] = [
        "name",
        "description",
        "category",
        "brand",
        "attributes",
        "images",
    ];
    let mut body = Body::new(
        value,
        &FIELDS,
        &[
            "id",
            "version",
            "sales",
            "created_at",
            "updated_at",
            "sku",
            "price_cents",
            "currency",
            "stock",
            "status",
        ],
    )?;
    for field in ["name", "description", "category", "attributes", "images"] {
        if body.object.get(field).is_some_and(Value::is_null) {
            body.error(field, "cannot be null");
        }
    }
    if !FIELDS.iter().any(|field| body.present(field)) && body.errors.is_empty() {
        body.error(
            "body",
            "give at least one of name, description, category, brand, attributes, images",
        );
    }
    let change = ProductDetailsChanged {
        name: body.string("name", false, check_name),
        description: body.string("description", false, check_description),
        category: body.string("category", false, check_slug),
        brand: body.nullable_brand(),
        attributes: body.attributes("attributes"),
        images: body.images("images"),
    };
    body.finish(change)
}

/// `PUT /api/products/{id}/price`.
pub fn price_change(value: &Value) -> Result<PriceChanged, FieldErrors> {
    let mut body = Body::new(value, &["price_cents", "currency"], &[])?;
    let price_cents = body.integer("price_cents", true, 0, MAX_PRICE_CENTS);
    let currency = body.string("currency", true, check_currency);
    match (price_cents, currency) {
        (Some(price_cents), Some(currency)) => body.finish(PriceChanged {
            price_cents,
            currency,
            // Filled in by the aggregate, which knows the current price.
            previous_price_cents: None,
        }),
        _ => Err(body.errors),
    }
}

/// `POST /api/products/{id}/stock`.
pub fn stock_adjustment(value: &Value) -> Result<StockAdjusted, FieldErrors> {
    let mut body = Body::new(value, &["delta", "reason"], &[])?;
    let delta = body.integer("delta", true, -MAX_STOCK, MAX_STOCK);
    if delta == Some(0) {
        body.error("delta", "must not be 0");
    }
    let reason = match body.object.get("reason") {
        Some(Value::Null) => None,
        _ => body.string("reason", false, check_reason),
    };
    match delta {
        Some(delta) => body.finish(StockAdjusted { delta, reason }),
        None => Err(body.errors),
    }
}

/// `POST /api/products/{id}/sales`.
pub fn sale(value: &Value) -> Result<SaleRecorded, FieldErrors> {
    let mut body = Body::new(value, &["quantity"], &[])?;
    match body.integer("quantity", true, 1, MAX_SALE_QUANTITY) {
        Some(quantity) => body.finish(SaleRecorded { quantity }),
        None => Err(body.errors),
    }
}

/// `POST /api/categories`.
pub fn new_category(value: &Value) -> Result<CategoryCreated, FieldErrors> {
    let mut body = Body::new(value, &["slug", "name", "parent"], &["product_count"])?;
    let slug = body.string("slug", true, check_slug);
    let name = body.string("name", true, check_name);
    let parent = match body.object.get("parent") {
        Some(Value::Null) | None => None,
        Some(_) => body.string("parent", false, check_slug),
    };
    if parent.is_some() && parent == slug {
        body.error("parent", "a category cannot be its own parent");
    }
    match (slug, name) {
        (Some(slug), Some(name)) => body.finish(CategoryCreated { slug, name, parent }),
        _ => Err(body.errors),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid_product() -> Value {
        json!({"sku": "ELEC-1", "name": "Headphones", "category": "electronics",
               "price_cents": 12999, "currency": "USD"})
    }

    #[test]
    fn a_minimal_product_gets_the_defaults() {
        let created = new_product(&valid_product()).expect("valid");
        assert_eq!(created.status, ProductStatus::Draft);
        assert_eq!(
            (created.stock, created.brand, created.description.as_str()),
            (0, None, "")
        );
    }

    #[test]
    fn every_bad_field_is_named_with_dotted_paths() {
        let body = json!({"sku": "bad sku!", "name": "", "category": "Not A Slug",
            "price_cents": -1, "currency": "usd", "stock": 1.5, "status": "gone",
            "attributes": {"color": {"nested": true}}, "images": ["ftp://x"], "sales": 3, "extra": 1});
        let errors = new_product(&body).expect_err("invalid");
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            vec![
                "attributes.color",
                "category",
                "currency",
                "extra",
                "images.0",
                "name",
                "price_cents",
                "sales",
                "sku",
                "status",
                "stock"
            ]
        );
    }

    #[test]
    fn missing_required_fields_are_each_reported() {
        let errors = new_product(&json!({})).expect_err("invalid");
        assert_eq!(
            errors.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["category", "currency", "name", "price_cents", "sku"]
        );
        assert_eq!(errors["sku"], vec!["is required".to_owned()]);
    }

    #[test]
    fn a_non_object_body_is_invalid_not_a_crash() {
        for body in [json!([]), json!(null), json!("text"), json!(3)] {
            assert!(new_product(&body).is_err());
            assert!(details_change(&body).is_err());
            assert!(sale(&body).is_err());
        }
    }

    #[test]
    fn a_patch_needs_a_field_and_may_clear_the_brand() {
        assert!(details_change(&json!({})).is_err());
        let change = details_change(&json!({"brand": null})).expect("valid");
        assert_eq!(change.brand, Some(None));
        assert!(details_change(&json!({"name": null})).is_err());
        assert!(details_change(&json!({"price_cents": 3})).is_err());
    }

    #[test]
    fn stock_and_sales_bounds() {
        assert!(stock_adjustment(&json!({"delta": 0})).is_err());
        assert!(stock_adjustment(&json!({"delta": -3, "reason": "recount"})).is_ok());
        assert!(sale(&json!({"quantity": 0})).is_err());
        assert!(sale(&json!({"quantity": 2})).is_ok());
    }

    #[test]
    fn a_category_names_a_valid_parent() {
        assert!(
            new_category(&json!({"slug": "audio", "name": "Audio", "parent": "electronics"}))
                .is_ok()
        );
        assert!(
            new_category(&json!({"slug": "audio", "name": "Audio", "parent": "audio"})).is_err()
        );
        assert!(new_category(&json!({"slug": "Audio!", "name": "Audio"})).is_err());
    }
}
