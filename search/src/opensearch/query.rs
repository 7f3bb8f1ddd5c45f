//! The query DSL of a search (filters in filter context, facets as aggregations, highlights)
//! and reading its response into results, with `search_after` cursors.

use std::collections::BTreeMap;
use std::sync::Arc;

use projectors::read_model::ProductView;
use serde_json::{json, Value};

use crate::answers::price_buckets;
use crate::cursor::{self, fingerprint};
use crate::{
    words, Facets, Highlight, SearchError, SearchHit, SearchQuery, SearchResults, SearchSort,
};

/// The filters of `query`, published only first.
fn filters(query: &SearchQuery) -> Vec<Value> {
    let mut filter = vec![json!({"term": {"status": "published"}})];
    if !query.categories.is_empty() {
        filter.push(json!({"terms": {"category": query.categories}}));
    }
    if !query.brands.is_empty() {
        let keys: Vec<String> = query.brands.iter().map(|brand| brand.to_lowercase()).collect();
        filter.push(json!({"terms": {"brand_key": keys}}));
    }
    if query.min_price.is_some() || query.max_price.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(min) = query.min_price {
            range.insert("gte".into(), json!(min));
        }
        if let Some(max) = query.max_price {
            range.insert("lte".into(), json!(max));
        }
        filter.push(json!({"range": {"price_cents": range}}));
    }
    if query.in_stock {
        filter.push(json!({"range": {"stock": {"gt": 0}}}));
    }
    filter
}

/// The `query` part: the words (or a SKU) within the filters.
fn matching(query: &SearchQuery, text: &str) -> Value {
    let filter = filters(query);
    if text.is_empty() {
        return json!({"bool": {"filter": filter}});
    }
    json!({"bool": {
        "should": [
            {"multi_match": {
                "query": text,
                "type": "bool_prefix",
                "fields": ["name^3", "brand^2", "description"],
                "fuzziness": "AUTO:5,100",
                "operator": "and"
            }},
            {"term": {"sku_key": {"value": query.text.trim().to_lowercase(), "boost": 20}}}
        ],
        "minimum_should_match": 1,
        "filter": filter
    }})
}

/// The search request body for `query` (filters in filter context, facets as aggregations).
pub fn search_body(query: &SearchQuery, search_after: Option<&Value>) -> Value {
    let text = words(&query.text).join(" ");
    let sort = match (query.sort, text.is_empty()) {
        (SearchSort::Relevance, false) => json!(["_score", {"id": "asc"}]),
        (SearchSort::PriceAsc, _) => json!([{"price_cents": "asc"}, {"id": "asc"}]),
        (SearchSort::PriceDesc, _) => json!([{"price_cents": "desc"}, {"id": "asc"}]),
        _ => json!([{"created": "desc"}, {"id": "asc"}]),
    };
    let mut body = json!({
        "size": query.limit,
        "track_total_hits": true,
        "query": matching(query, &text),
        "sort": sort,
        "aggs": {
            "category": {"terms": {"field": "category", "size": 100}},
            "brand": {"terms": {"field": "brand_raw", "size": 100}},
            "price": {"range": {"field": "price_cents", "ranges": [
                {"to": 2500}, {"from": 2500, "to": 10000}, {"from": 10000}
            ]}}
        },
        "highlight": {
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {"name": {"number_of_fragments": 0}, "description": {"fragment_size": 160, "number_of_fragments": 1}}
        }
    });
    if let Some(after) = search_after {
        body["search_after"] = after.clone();
    }
    body
}

fn hit(hit: &Value) -> Result<SearchHit, SearchError> {
    let product: ProductView = serde_json::from_value(hit["_source"]["doc"].clone())
        .map_err(|error| SearchError::Unexpected(format!("a hit's document: {error}")))?;
    let fragment = |field: &str| {
        hit["highlight"][field]
            .as_array()
            .and_then(|fragments| fragments.first())
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(SearchHit {
        highlight: Highlight {
            name: fragment("name"),
            description: fragment("description"),
        },
        product: Arc::new(product),
    })
}

fn facets(aggregations: &Value) -> Facets {
    let terms = |name: &str| -> BTreeMap<String, u64> {
        aggregations[name]["buckets"]
            .as_array()
            .map(|buckets| {
                buckets
                    .iter()
                    .filter_map(|bucket| {
                        Some((
                            bucket["key"].as_str()?.to_owned(),
                            bucket["doc_count"].as_u64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut facets = Facets::empty();
    facets.category = terms("category");
    facets.brand = terms("brand");
    if let Some(buckets) = aggregations["price"]["buckets"].as_array() {
        facets.price = price_buckets(
            buckets
                .iter()
                .map(|bucket| bucket["doc_count"].as_u64().unwrap_or(0)),
        );
    }
    facets
}

/// Reads a search response into results. `next_cursor` carries the last hit's sort values.
pub fn parse_search(
    response: &Value,
    query: &SearchQuery,
    position: u64,
) -> Result<SearchResults, SearchError> {
    let hits_value = response["hits"]["hits"]
        .as_array()
        .ok_or_else(|| SearchError::Unexpected("OpenSearch answered without hits".to_owned()))?;
    let hits = hits_value.iter().map(hit).collect::<Result<Vec<_>, _>>()?;
    let total = response["hits"]["total"]["value"]
        .as_u64()
        .unwrap_or(hits.len() as u64);
    let next_cursor = if hits_value.len() == query.limit {
        hits_value
            .last()
            .map(|hit| cursor::encode(&json!({"after": hit["sort"], "search": fingerprint(query)})))
    } else {
        None
    };
    Ok(SearchResults {
        hits,
        total,
        facets: facets(&response["aggregations"]),
        next_cursor,
        position,
        did_you_mean: None,
    })
}

/// The `search_after` values of a cursor this API gave out for `query`.
pub(super) fn decode_cursor(text: &str, query: &SearchQuery) -> Result<Value, SearchError> {
    let document = cursor::decode(text).ok_or_else(cursor::not_ours)?;
    if !cursor::belongs_to(&document, query) {
        return Err(cursor::of_another_search());
    }
    match &document["after"] {
        Value::Array(after) if !after.is_empty() => Ok(Value::Array(after.clone())),
        _ => Err(cursor::not_ours()),
    }
}
