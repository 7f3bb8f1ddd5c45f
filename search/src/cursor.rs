//! What both adapters' cursors share: a cursor is base64url JSON naming the search it belongs
//! to (a fingerprint of the query without its paging), so a cursor of another search is
//! refused instead of paging through the wrong results. What else it holds is the adapter's
//! (tantivy: an offset; OpenSearch: the last hit's sort values).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::{SearchError, SearchQuery};

/// The search a cursor belongs to: everything of the query but its limit and cursor.
pub(crate) fn fingerprint(query: &SearchQuery) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &query.text,
        &query.categories,
        &query.brands,
        query.min_price,
        query.max_price,
        query.in_stock,
        query.sort,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// `document` as a cursor.
pub(crate) fn encode(document: &Value) -> String {
    URL_SAFE_NO_PAD.encode(document.to_string())
}

/// The JSON document of a cursor, `None` when it is not base64url JSON.
pub(crate) fn decode(cursor: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a cursor's document belongs to `query`.
pub(crate) fn belongs_to(document: &Value, query: &SearchQuery) -> bool {
    document["search"].as_u64() == Some(fingerprint(query))
}

pub(crate) fn not_ours() -> SearchError {
    SearchError::Invalid("cursor is not one this API gave out".into())
}

pub(crate) fn of_another_search() -> SearchError {
    SearchError::Invalid("cursor belongs to another search; start again without it".into())
}
