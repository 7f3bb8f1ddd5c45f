//! Request bodies → commands ([`crate::commands`]), with every field's errors collected (API.md's
//! rules, through the value types of `events::values`).
//!
//! Bodies are read as `serde_json::Value` first, so a well-formed body with wrong fields is a
//! 422 naming each field (dotted for nested ones), not a serde message about the first one.

use std::collections::BTreeMap;

use events::values::{
    Brand, Currency, Description, Name, PriceCents, Quantity, Reason, SaleQuantity, Sku, Slug,
    StockDelta, SynonymGroup, SynonymTerm, Synonyms, ValueError,
};
use events::{AttributeValue, ProductStatus};
use serde_json::{Map, Value};
use web::FieldErrors;

use crate::commands::{
    AdjustStock, ChangeDetails, ChangePrice, CreateCategory, CreateProduct, RecordSale, SetSynonyms,
};

const MAX_ATTRIBUTES: usize = 50;
pub(crate) const MAX_IMAGES: usize = 50;

/// Fields the server sets on every product; a body that gives one is refused.
const SERVER_SET: [&str; 5] = ["id", "version", "sales", "created_at", "updated_at"];
/// The fields a `PATCH` may change.
const DETAIL_FIELDS: [&str; 6] = [
    "name",
    "description",
    "category",
    "brand",
    "attributes",
    "images",
];
/// The product's other fields: given on create, each with its own command afterwards.
const NON_DETAIL_FIELDS: [&str; 5] = ["sku", "price_cents", "currency", "stock", "status"];

struct Body<'a> {
    object: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Body<'a> {
    /// `allowed` and `server_set` are lists of field lists (a key may be in either).
    fn new(
        value: &'a Value,
        allowed: &[&[&str]],
        server_set: &[&[&str]],
    ) -> Result<Self, FieldErrors> {
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
        let listed = |lists: &[&[&str]], key: &str| lists.iter().any(|list| list.contains(&key));
        for key in object.keys() {
            if listed(server_set, key) {
                body.error(key, "is set by the server and cannot be given");
            } else if !listed(allowed, key) {
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

    /// Records `parsed`'s error under `field`.
    fn checked<T>(&mut self, field: &str, parsed: Result<T, ValueError>) -> Option<T> {
        parsed
            .map_err(|error| self.error(field, &error.to_string()))
            .ok()
    }

    /// The field's value; when it is missing and `required`, that is its error.
    fn field(&mut self, field: &str, required: bool) -> Option<&'a Value> {
        let value = self.object.get(field);
        if value.is_none() && required {
            self.error(field, "is required");
        }
        value
    }

    /// A required (or, with `required = false`, optional) string, through `parse`.
    fn string<T>(
        &mut self,
        field: &str,
        required: bool,
        parse: fn(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match self.field(field, required)? {
            Value::String(text) => self.checked(field, parse(text)),
            _ => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    /// A required (or optional) integer, through `parse`.
    fn integer<T>(
        &mut self,
        field: &str,
        required: bool,
        parse: fn(i64) -> Result<T, ValueError>,
    ) -> Option<T> {
        match json_integer(self.field(field, required)?) {
            Some(number) => self.checked(field, parse(number)),
            None => {
                self.error(field, "must be an integer");
                None
            }
        }
    }

    /// An optional string field where `null` means not given.
    fn nullable_string<T>(
        &mut self,
        field: &str,
        parse: fn(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        match self.object.get(field) {
            Some(Value::Null) => None,
            _ => self.string(field, false, parse),
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

    /// The synonym groups under `field` (required): an array of at most 500 arrays of words.
    /// Each bad group is named by its index (`groups.3`), each bad word by both
    /// (`groups.3.1`). More groups, or a group of more words, than allowed is refused before
    /// its contents are looked at, so the errors of one body stay few.
    fn synonym_groups(&mut self, field: &str) -> Option<Synonyms> {
        let value = self.field(field, true)?;
        let Some(items) = value.as_array() else {
            self.error(field, "must be an array of groups, each an array of words");
            return None;
        };
        if items.len() > Synonyms::MAX_GROUPS {
            self.error(field, &ValueError::SynonymGroups.to_string());
            return None;
        }
        let mut groups = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("{field}.{index}");
            match item.as_array() {
                Some(words) if words.len() <= SynonymGroup::MAX_TERMS => {
                    if let Some(group) = self.synonym_group(&path, words) {
                        groups.push(group);
                    }
                }
                Some(_) => self.error(&path, &ValueError::SynonymGroup.to_string()),
                None => self.error(&path, "must be an array of 2 to 20 words"),
            }
        }
        self.checked(field, Synonyms::parse(groups))
    }

    /// One group's words, at `path`.
    fn synonym_group(&mut self, path: &str, words: &[Value]) -> Option<SynonymGroup> {
        let mut terms = Vec::with_capacity(words.len());
        let mut valid = true;
        for (index, word) in words.iter().enumerate() {
            let word_path = format!("{path}.{index}");
            let Some(text) = word.as_str() else {
                self.error(&word_path, "must be a string");
                valid = false;
                continue;
            };
            match self.checked(&word_path, SynonymTerm::parse(text)) {
                Some(term) => terms.push(term),
                None => valid = false,
            }
        }
        if !valid {
            return None;
        }
        self.checked(path, SynonymGroup::parse(terms))
    }

    /// `brand`: a string, or null for none.
    fn nullable_brand(&mut self) -> Option<Option<Brand>> {
        match self.object.get("brand")? {
            Value::Null => Some(None),
            Value::String(text) => self.checked("brand", Brand::parse(text)).map(Some),
            _ => {
                self.error("brand", "must be a string or null");
                None
            }
        }
    }
}

/// A JSON integer, also when written with a zero fraction (`3.0`): JSON Schema's `integer`
/// is a number whose fraction is zero, however it is spelled.
fn json_integer(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let number = value.as_f64()?;
        // Every integral f64 in [-2^63, 2^63) converts exactly.
        let in_range =
            (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&number);
        (number.fract() == 0.0 && in_range).then_some(number as i64)
    })
}

/// `http://` or `https://` and at least one more character, all printable ASCII (a URL's
/// other characters are percent-encoded), at most 2048 in all, or the catalog's own address of
/// an uploaded image (`/images/<name>`, what the embedded mode lists): the OpenAPI document's
/// pattern (`IMAGE_URL_PATTERN`) with `maxLength: 2048`.
fn is_image_url(url: &str) -> bool {
    if let Some(name) = url.strip_prefix("/images/") {
        return images::is_rendition_name(name);
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    url.len() <= 2048
        && rest.is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_graphic()))
}

fn parse_status(status: &str) -> Result<ProductStatus, ValueError> {
    ProductStatus::parse(status).ok_or(ValueError::Status)
}

/// `POST /api/products` (and each bulk item).
pub fn new_product(value: &Value) -> Result<CreateProduct, FieldErrors> {
    let mut body = Body::new(value, &[&NON_DETAIL_FIELDS, &DETAIL_FIELDS], &[&SERVER_SET])?;
    let sku = body.string("sku", true, Sku::parse);
    let name = body.string("name", true, Name::parse);
    let description = body.string("description", false, Description::parse);
    let category = body.string("category", true, Slug::parse);
    let brand = body.nullable_brand().flatten();
    let price_cents = body.integer("price_cents", true, PriceCents::parse);
    let currency = body.string("currency", true, Currency::parse);
    let stock = body.integer("stock", false, Quantity::parse);
    let status = body.string("status", false, parse_status);
    let attributes = body.attributes("attributes");
    let images = body.images("images");
    let (Some(sku), Some(name), Some(category), Some(price_cents), Some(currency)) =
        (sku, name, category, price_cents, currency)
    else {
        return Err(body.errors);
    };
    let command = CreateProduct {
        sku,
        name,
        description: description.unwrap_or_default(),
        category,
        brand,
        price_cents,
        currency,
        stock: stock.unwrap_or_default(),
        status: status.unwrap_or(ProductStatus::Draft),
        attributes: attributes.unwrap_or_default(),
        images: images.unwrap_or_default(),
    };
    body.finish(command)
}

/// `PATCH /api/products/{id}`: at least one of the descriptive fields.
pub fn details_change(value: &Value) -> Result<ChangeDetails, FieldErrors> {
    let mut body = Body::new(value, &[&DETAIL_FIELDS], &[&SERVER_SET, &NON_DETAIL_FIELDS])?;
    for field in ["name", "description", "category", "attributes", "images"] {
        if body.object.get(field).is_some_and(Value::is_null) {
            body.error(field, "cannot be null");
        }
    }
    if !DETAIL_FIELDS.iter().any(|field| body.present(field)) && body.errors.is_empty() {
        body.error(
            "body",
            "give at least one of name, description, category, brand, attributes, images",
        );
    }
    let change = ChangeDetails {
        name: body.string("name", false, Name::parse),
        description: body.string("description", false, Description::parse),
        category: body.string("category", false, Slug::parse),
        brand: body.nullable_brand(),
        attributes: body.attributes("attributes"),
        images: body.images("images"),
    };
    body.finish(change)
}

/// `PUT /api/products/{id}/price`.
pub fn price_change(value: &Value) -> Result<ChangePrice, FieldErrors> {
    let mut body = Body::new(value, &[&["price_cents", "currency"]], &[])?;
    let price_cents = body.integer("price_cents", true, PriceCents::parse);
    let currency = body.string("currency", true, Currency::parse);
    match (price_cents, currency) {
        (Some(price_cents), Some(currency)) => body.finish(ChangePrice {
            price_cents,
            currency,
        }),
        _ => Err(body.errors),
    }
}

/// `POST /api/products/{id}/stock`.
pub fn stock_adjustment(value: &Value) -> Result<AdjustStock, FieldErrors> {
    let mut body = Body::new(value, &[&["delta", "reason"]], &[])?;
    let delta = body.integer("delta", true, StockDelta::parse);
    let reason = body.nullable_string("reason", Reason::parse);
    match delta {
        Some(delta) => body.finish(AdjustStock { delta, reason }),
        None => Err(body.errors),
    }
}

/// `POST /api/products/{id}/sales`.
pub fn sale(value: &Value) -> Result<RecordSale, FieldErrors> {
    let mut body = Body::new(value, &[&["quantity"]], &[])?;
    match body.integer("quantity", true, SaleQuantity::parse) {
        Some(quantity) => body.finish(RecordSale { quantity }),
        None => Err(body.errors),
    }
}

/// `POST /api/categories`.
pub fn new_category(value: &Value) -> Result<CreateCategory, FieldErrors> {
    let mut body = Body::new(value, &[&["slug", "name", "parent"]], &[&["product_count"]])?;
    let slug = body.string("slug", true, Slug::parse);
    let name = body.string("name", true, Name::parse);
    let parent = body.nullable_string("parent", Slug::parse);
    if parent.is_some() && parent == slug {
        body.error("parent", "a category cannot be its own parent");
    }
    match (slug, name) {
        (Some(slug), Some(name)) => body.finish(CreateCategory { slug, name, parent }),
        _ => Err(body.errors),
    }
}

/// `PUT /api/search/synonyms`: `{"groups": [["tv", "television"], …]}`; `[]` clears them.
/// Words are trimmed and lower-cased, and a word repeated within a group is kept once.
pub fn synonyms(value: &Value) -> Result<SetSynonyms, FieldErrors> {
    let mut body = Body::new(value, &[&["groups"]], &[])?;
    match body.synonym_groups("groups") {
        Some(synonyms) => body.finish(SetSynonyms { synonyms }),
        None => Err(body.errors),
    }
}

#[cfg(test)]
mod tests;
