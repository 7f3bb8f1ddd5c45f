//! The query DSL of a search, mirroring the tantivy adapter's query (`tantivy/query.rs`) clause
//! for clause, and reading the responses into results.
//!
//! - **Words**: each of the first [`MAX_QUERY_WORDS`](crate::MAX_QUERY_WORDS) words is a
//!   `bool.should` of, for name (×3), brand (×2) and description (×1): an exact `match`
//!   (analyzed: folded and stemmed like the index); when the word has five letters or more a
//!   `match` with `fuzziness: 1` on the analyzed word and a `fuzzy` term on the typed word
//!   (tantivy fuzzes the stem and the folded word), both at half the weight, with
//!   transpositions; for the last word also a `match_bool_prefix` of the word alone at 0.4 of
//!   the weight. The last word gets its fuzzy clauses too: `multi_match` of type `bool_prefix`
//!   ignores `fuzziness` for its prefix term, which is why it is not used.
//! - **Synonyms** are expanded at query time: a word's clause is a `bool.should` over the word
//!   and each of its alternatives ([`Synonyms::alternatives`]). This is what a search-time
//!   `synonym_graph` filter does for single-word groups, without closing the index to change
//!   the filter's inline list (OpenSearch reloads only file-based synonyms in place) and
//!   without a new generation per change: a change is searchable as soon as the stored
//!   synonyms are read (see `mod.rs`).
//! - **All words or any word**: the words are combined with `must`; the fallback request
//!   (sent when that finds nothing for several words) combines them with `should` and
//!   `minimum_should_match: 1`. Beside the words, a `term` on `sku_key` (the whole query,
//!   trimmed and lower-cased) at boost 20: a query equal to a SKU finds it first.
//! - **Filters**: published, price bounds and in stock in `query.bool.filter`; category and
//!   brand in `post_filter`, so each facet can be counted without its own filter: the
//!   aggregations are `filter` aggregations (category under every post-filter but
//!   category's, brand under every one but brand's, price under all).
//! - **Highlights** in `<em>` with `encoder: html`, so a name's own `<`, `&` arrive escaped.
//! - **Suggestions**: one `_search` for products (the earlier words as words, the last as a
//!   prefix of name or brand) whose `terms` aggregations over `name.words` and `brand.words`
//!   (folded, unstemmed, `fielddata`) with an `include` pattern of the prefix give the
//!   completions, most frequent first. A `completion` suggester field would find prefixes
//!   faster but counts no frequencies and knows nothing of the earlier words.
//! - **Did you mean**: for a search that found nothing, a `term` suggester over `name.words`
//!   and `brand.words` with `suggest_mode: missing` replaces each unknown word with its best
//!   correction.

use std::collections::BTreeMap;
use std::sync::Arc;

use projectors::read_model::ProductView;
use serde_json::{json, Value};

use crate::answers::price_buckets;
use crate::cursor::{self, fingerprint};
use crate::{
    allowed_edits, query_words, Facets, Highlight, SearchError, SearchHit, SearchQuery,
    SearchResults, SearchSort, SuggestQuery, Suggestions, Synonyms,
};

/// The searched fields and their weights (tantivy: the same).
const SCORED_FIELDS: [(&str, f64); 3] = [("name", 3.0), ("brand", 2.0), ("description", 1.0)];
/// A fuzzy match weighs half an exact one; a prefix of the last word 0.4.
const FUZZY_WEIGHT: f64 = 0.5;
const PREFIX_WEIGHT: f64 = 0.4;
const SKU_BOOST: f64 = 20.0;

/// How the words of a request are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Words {
    /// Every word must match (the first request).
    All,
    /// Any word may (the fallback when all words found nothing).
    Any,
}

/// The filters that stay in `query.bool.filter`: published only, price bounds, in stock.
fn query_filters(query: &SearchQuery) -> Vec<Value> {
    let mut filter = vec![json!({"term": {"status": "published"}})];
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

/// The category filter (any of the slugs), when there is one.
fn category_filter(query: &SearchQuery) -> Option<Value> {
    (!query.categories.is_empty()).then(|| json!({"terms": {"category": query.categories}}))
}

/// The brand filter (any of the brands, case-insensitive), when there is one.
fn brand_filter(query: &SearchQuery) -> Option<Value> {
    let keys: Vec<String> = query
        .brands
        .iter()
        .map(|brand| brand.to_lowercase())
        .collect();
    (!keys.is_empty()).then(|| json!({"terms": {"brand_key": keys}}))
}

/// A filter of all of `filters` (`match_all` for none).
fn all_of(filters: Vec<Value>) -> Value {
    if filters.is_empty() {
        json!({"match_all": {}})
    } else {
        json!({"bool": {"filter": filters}})
    }
}

/// Where one word (or one of its synonyms) may match, for every scored field.
fn word_alternatives(word: &str, is_last: bool, with_prefix: bool) -> Vec<Value> {
    let edits = allowed_edits(word);
    let mut alternatives = Vec::new();
    for (field, boost) in SCORED_FIELDS {
        alternatives.push(json!({"match": {field: {"query": word, "boost": boost}}}));
        if edits > 0 {
            let fuzzy_boost = boost * FUZZY_WEIGHT;
            alternatives.push(json!({"match": {field: {
                "query": word,
                "fuzziness": edits,
                "prefix_length": 0,
                "fuzzy_transpositions": true,
                "boost": fuzzy_boost
            }}}));
            alternatives.push(json!({"fuzzy": {field: {
                "value": word,
                "fuzziness": edits,
                "prefix_length": 0,
                "transpositions": true,
                "boost": fuzzy_boost
            }}}));
        }
        if is_last && with_prefix {
            alternatives.push(json!({"match_bool_prefix": {field: {
                "query": word,
                "boost": boost * PREFIX_WEIGHT
            }}}));
        }
    }
    alternatives
}

/// One typed word's clause: the word itself, or any of its synonyms (whole words: no prefix).
fn word_clause(word: &str, is_last: bool, synonyms: &Synonyms) -> Value {
    let mut should = word_alternatives(word, is_last, true);
    for alternative in synonyms.alternatives(word) {
        should.extend(word_alternatives(alternative, is_last, false));
    }
    json!({"bool": {"should": should, "minimum_should_match": 1}})
}

/// The text part of the query: the words (all or any) or the SKU; `None` without words.
pub fn text_clause(query: &SearchQuery, synonyms: &Synonyms, words: Words) -> Option<Value> {
    let typed = query_words(&query.text);
    let last = typed.len().checked_sub(1)?;
    let clauses: Vec<Value> = typed
        .iter()
        .enumerate()
        .map(|(index, word)| word_clause(word, index == last, synonyms))
        .collect();
    let combined = match words {
        Words::All => json!({"bool": {"must": clauses}}),
        Words::Any => json!({"bool": {"should": clauses, "minimum_should_match": 1}}),
    };
    let sku = query.text.trim().to_lowercase();
    Some(json!({"bool": {
        "should": [
            combined,
            {"term": {"sku_key": {"value": sku, "boost": SKU_BOOST}}}
        ],
        "minimum_should_match": 1
    }}))
}

/// The facets as `filter` aggregations: each term facet under the post-filters but its own.
fn aggregations(query: &SearchQuery) -> Value {
    let category = category_filter(query);
    let brand = brand_filter(query);
    let terms = |field: &str| json!({"terms": {"field": field, "size": 100}});
    json!({
        "category": {
            "filter": all_of(brand.iter().cloned().collect()),
            "aggs": {"values": terms("category")}
        },
        "brand": {
            "filter": all_of(category.iter().cloned().collect()),
            "aggs": {"values": terms("brand_raw")}
        },
        "price": {
            "filter": all_of(category.iter().chain(brand.iter()).cloned().collect()),
            "aggs": {"values": {"range": {"field": "price_cents", "ranges": [
                {"to": 2500}, {"from": 2500, "to": 10000}, {"from": 10000}
            ]}}}
        }
    })
}

/// The search request body for `query`: the words combined as `words` says, with the synonyms
/// searches use now, continuing after `search_after` (a cursor's sort values).
pub fn search_body(
    query: &SearchQuery,
    search_after: Option<&Value>,
    synonyms: &Synonyms,
    words: Words,
) -> Value {
    let text = text_clause(query, synonyms, words);
    let sort = match (query.sort, text.is_none()) {
        (SearchSort::Relevance, false) => json!(["_score", {"id": "asc"}]),
        (SearchSort::PriceAsc, _) => json!([{"price_cents": "asc"}, {"id": "asc"}]),
        (SearchSort::PriceDesc, _) => json!([{"price_cents": "desc"}, {"id": "asc"}]),
        _ => json!([{"created": "desc"}, {"id": "asc"}]),
    };
    let mut matching = json!({"bool": {"filter": query_filters(query)}});
    if let Some(text) = text {
        matching["bool"]["must"] = json!([text]);
    }
    let mut body = json!({
        "size": query.limit,
        "track_total_hits": true,
        "query": matching,
        "sort": sort,
        "aggs": aggregations(query),
        "highlight": {
            "encoder": "html",
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {
                "name": {"number_of_fragments": 0},
                "description": {"fragment_size": 160, "number_of_fragments": 1}
            }
        }
    });
    let post: Vec<Value> = category_filter(query)
        .into_iter()
        .chain(brand_filter(query))
        .collect();
    if !post.is_empty() {
        body["post_filter"] = json!({"bool": {"filter": post}});
    }
    if let Some(after) = search_after {
        body["search_after"] = after.clone();
    }
    body
}

/// The number of hits a search response reports.
pub fn total_hits(response: &Value) -> u64 {
    response["hits"]["total"]["value"].as_u64().unwrap_or(0)
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

/// The `(key, doc_count)` of a terms aggregation's buckets.
fn term_buckets(aggregation: &Value) -> Vec<(String, u64)> {
    aggregation["buckets"]
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
}

fn facets(aggregations: &Value) -> Facets {
    let terms = |name: &str| -> BTreeMap<String, u64> {
        term_buckets(&aggregations[name]["values"])
            .into_iter()
            .collect()
    };
    let mut facets = Facets::empty();
    facets.category = terms("category");
    facets.brand = terms("brand");
    if let Some(buckets) = aggregations["price"]["values"]["buckets"].as_array() {
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

/// The request for corrections of the words of `text` (`None` without words): a `term`
/// suggester per field over the catalog's own (folded, unstemmed) words.
pub fn did_you_mean_body(text: &str) -> Option<Value> {
    let typed = query_words(text);
    if typed.is_empty() {
        return None;
    }
    let suggester = |field: &str| {
        json!({"term": {
            "field": field,
            "suggest_mode": "missing",
            "max_edits": 2,
            "min_word_length": 3,
            "sort": "score"
        }})
    };
    Some(json!({
        "size": 0,
        "query": {"bool": {"filter": [{"term": {"status": "published"}}]}},
        "suggest": {
            "text": typed.join(" "),
            "name": suggester("name.words"),
            "brand": suggester("brand.words")
        }
    }))
}

/// The query with each word that has a correction replaced by the best one (by score, then
/// frequency, over both suggesters); `None` when no word has one.
pub fn parse_did_you_mean(response: &Value) -> Option<String> {
    let name = response["suggest"]["name"].as_array()?;
    let brand = response["suggest"]["brand"].as_array();
    let mut corrected = Vec::with_capacity(name.len());
    let mut changed = false;
    for (position, entry) in name.iter().enumerate() {
        let typed = entry["text"].as_str()?;
        let mut options: Vec<&Value> = entry["options"].as_array().into_iter().flatten().collect();
        if let Some(other) = brand.and_then(|entries| entries.get(position)) {
            options.extend(other["options"].as_array().into_iter().flatten());
        }
        let best = options
            .into_iter()
            .filter_map(|option| {
                Some((
                    option["text"].as_str()?,
                    option["score"].as_f64().unwrap_or(0.0),
                    option["freq"].as_u64().unwrap_or(0),
                ))
            })
            .max_by(|left, right| {
                left.1
                    .total_cmp(&right.1)
                    .then(left.2.cmp(&right.2))
                    .then(right.0.cmp(left.0))
            });
        match best {
            Some((word, _, _)) if word != typed => {
                changed = true;
                corrected.push(word.to_owned());
            }
            _ => corrected.push(typed.to_owned()),
        }
    }
    changed.then(|| corrected.join(" "))
}

/// A regular expression (Lucene syntax) matching the words that start with `prefix`.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for character in prefix.chars() {
        if !character.is_alphanumeric() {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push_str(".*");
    pattern
}

/// The request for suggestions of `query` (`None` without words): published products whose
/// name or brand has a word starting with the last typed word, and whose fields match every
/// earlier word; the words those products' names and brands start with it, counted.
pub fn suggest_body(query: &SuggestQuery) -> Option<Value> {
    let typed = query_words(&query.text);
    let (last, earlier) = typed.split_last()?;
    let mut must: Vec<Value> = earlier
        .iter()
        .map(|word| {
            let mut should = Vec::new();
            for (field, boost) in SCORED_FIELDS {
                should.push(json!({"match": {field: {
                    "query": word,
                    "fuzziness": allowed_edits(word),
                    "fuzzy_transpositions": true,
                    "boost": boost
                }}}));
            }
            json!({"bool": {"should": should, "minimum_should_match": 1}})
        })
        .collect();
    must.push(json!({"bool": {"should": [
        {"match_bool_prefix": {"name": {"query": last, "boost": 3.0}}},
        {"match_bool_prefix": {"brand": {"query": last, "boost": 2.0}}}
    ], "minimum_should_match": 1}}));
    let completions = |field: &str| json!({"terms": {"field": field, "include": prefix_pattern(last), "size": query.limit}});
    Some(json!({
        "size": query.limit,
        "query": {"bool": {"filter": [{"term": {"status": "published"}}], "must": must}},
        "sort": ["_score", {"id": "asc"}],
        "aggs": {
            "name_words": completions("name.words"),
            "brand_words": completions("brand.words")
        }
    }))
}

/// Reads a suggestion response: the typed words with the last one completed (most frequent
/// first, ties by word), and the products.
pub fn parse_suggestions(
    response: &Value,
    query: &SuggestQuery,
) -> Result<Suggestions, SearchError> {
    let hits = response["hits"]["hits"].as_array().ok_or_else(|| {
        SearchError::Unexpected("OpenSearch answered a suggestion without hits".to_owned())
    })?;
    let products = hits
        .iter()
        .map(|found| hit(found).map(|hit| hit.product))
        .collect::<Result<Vec<_>, _>>()?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for name in ["name_words", "brand_words"] {
        for (word, count) in term_buckets(&response["aggregations"][name]) {
            *counts.entry(word).or_default() += count;
        }
    }
    let mut completed: Vec<(String, u64)> = counts.into_iter().collect();
    completed.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(&right.0)));
    let typed = query_words(&query.text);
    let earlier = typed[..typed.len().saturating_sub(1)].join(" ");
    let queries = completed
        .into_iter()
        .take(query.limit)
        .map(|(word, _)| {
            if earlier.is_empty() {
                word
            } else {
                format!("{earlier} {word}")
            }
        })
        .collect();
    Ok(Suggestions { queries, products })
}
