//! Facets as tantivy aggregations: terms for category and brand, the three price ranges.

use std::collections::BTreeMap;

use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::{AggregationResult, AggregationResults, BucketResult};
use tantivy::aggregation::Key;

use crate::answers::price_buckets;
use crate::Facets;

/// The aggregations a search collects alongside its hits.
pub(super) fn aggregations() -> Aggregations {
    serde_json::from_value(serde_json::json!({
        "category": {"terms": {"field": "category", "size": 100}},
        "brand": {"terms": {"field": "brand_raw", "size": 100}},
        "price": {"range": {"field": "price_cents", "ranges": [
            {"to": 2500.0}, {"from": 2500.0, "to": 10000.0}, {"from": 10000.0}
        ]}}
    }))
    .unwrap_or_default()
}

/// The facets in what [`aggregations`] collected.
pub(super) fn facets(results: &AggregationResults) -> Facets {
    let mut facets = Facets::empty();
    let terms = |name: &str| -> BTreeMap<String, u64> {
        match results.0.get(name) {
            Some(AggregationResult::BucketResult(BucketResult::Terms { buckets, .. })) => buckets
                .iter()
                .filter_map(|bucket| match &bucket.key {
                    Key::Str(key) => Some((key.clone(), bucket.doc_count)),
                    _ => None,
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    facets.category = terms("category");
    facets.brand = terms("brand");
    if let Some(AggregationResult::BucketResult(BucketResult::Range { buckets })) =
        results.0.get("price")
    {
        facets.price = price_buckets(buckets.iter().map(|bucket| bucket.doc_count));
    }
    facets
}
