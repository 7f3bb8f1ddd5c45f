//! Where the documents live and what they look like: the endpoint, the names (alias, first
//! generation, checkpoint index), the index template (analysis and mappings), a product as a
//! document.
//!
//! Synonyms are not in the analysis settings: they are expanded at query time (see
//! `query.rs` for why), so the template is the same whatever the synonyms are.

use opensearch::http::response::Response;
use opensearch::{GetParts, OpenSearch};
use projectors::read_model::ProductView;
use serde_json::{json, Value};

use crate::SearchError;

pub const ALIAS: &str = "catalog-products";
pub const FIRST_GENERATION: &str = "catalog-products-v1";
pub const CHECKPOINTS: &str = "catalog-checkpoints";

/// Parses `CATALOG_SEARCH=opensearch://host:9200` (`opensearchs://` for TLS).
pub fn endpoint(url: &str) -> Result<String, SearchError> {
    let invalid = |why: &str| SearchError::Invalid(format!("CATALOG_SEARCH {url:?}: {why}"));
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("opensearch://") {
        ("http", rest)
    } else if let Some(rest) = url.strip_prefix("opensearchs://") {
        ("https", rest)
    } else {
        return Err(invalid(
            "use opensearch://host:9200 (or opensearchs:// for TLS)",
        ));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(invalid("name the host and port"));
    }
    Ok(format!("{scheme}://{host}"))
}

pub(super) fn unavailable(error: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(format!("OpenSearch: {error}"))
}

/// The JSON answer of a GET, `None` for a 404.
pub(super) async fn get_json(
    client: &OpenSearch,
    parts: GetParts<'_>,
) -> Result<Option<Value>, SearchError> {
    let response = client.get(parts).send().await.map_err(unavailable)?;
    if response.status_code().as_u16() == 404 {
        return Ok(None);
    }
    json_body(response).await.map(Some)
}

/// The JSON body of a response, an error for a status that is not a success.
pub(super) async fn json_body(response: Response) -> Result<Value, SearchError> {
    response
        .error_for_status_code()
        .map_err(unavailable)?
        .json()
        .await
        .map_err(unavailable)
}

/// The index template (settings and mappings) every generation is created from.
///
/// `name.words` and `brand.words` hold the words folded but not stemmed, with `fielddata` so
/// that suggestions can count them (a `terms` aggregation) and did-you-mean can correct to
/// them (a `term` suggester): whole words a shopper would type, not stems. A generation
/// created before they existed answers no completions and no corrections (the aggregation and
/// the suggester find nothing in an unmapped field) until it is rebuilt.
pub fn index_template() -> Value {
    let words = json!({"type": "text", "analyzer": "catalog_words", "fielddata": true});
    json!({
        "index_patterns": ["catalog-products-*"],
        "template": {
            "settings": {
                "number_of_shards": 1,
                "analysis": {
                    "analyzer": {
                        "catalog": {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "asciifolding", "catalog_english_stemmer"]
                        },
                        "catalog_words": {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "asciifolding"]
                        }
                    },
                    "filter": {
                        "catalog_english_stemmer": {"type": "stemmer", "language": "english"}
                    },
                    "normalizer": {
                        "lowercase": {"type": "custom", "filter": ["lowercase", "asciifolding"]}
                    }
                }
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "id": {"type": "keyword"},
                    "name": {"type": "text", "analyzer": "catalog", "fields": {"words": words}},
                    "description": {"type": "text", "analyzer": "catalog"},
                    "brand": {"type": "text", "analyzer": "catalog", "fields": {"words": words}},
                    "brand_raw": {"type": "keyword"},
                    "brand_key": {"type": "keyword", "normalizer": "lowercase"},
                    "sku_key": {"type": "keyword", "normalizer": "lowercase"},
                    "category": {"type": "keyword"},
                    "price_cents": {"type": "long"},
                    "stock": {"type": "long"},
                    "created": {"type": "long"},
                    "version": {"type": "long"},
                    "status": {"type": "keyword"},
                    "doc": {"type": "object", "enabled": false}
                }
            }
        }
    })
}

/// The document of a product.
pub fn document(product: &ProductView) -> Value {
    json!({
        "id": product.id,
        "name": product.name,
        "description": product.description,
        "brand": product.brand,
        "brand_raw": product.brand,
        "brand_key": product.brand,
        "sku_key": product.sku,
        "category": product.category,
        "price_cents": product.price_cents,
        "stock": product.stock,
        "created": product.created_at.timestamp_micros(),
        "version": product.version,
        "status": product.status.as_str(),
        "doc": product,
    })
}
