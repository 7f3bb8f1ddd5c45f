//! `GET /api/search`: full-text search with typo tolerance, filters, sorts, facets.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use search::{SearchError, SearchQuery, SearchSort};
use serde::{Deserialize, Serialize};
use web::extract::{MultiQuery, Query};
use web::Problem;

use super::{
    bad, given, parse_filters, parse_limit, parse_limit_up_to, with_position, FilterParams,
    QueryProblem, QueryResult,
};
use crate::{search_cache, QueryState};

/// The longest query text accepted.
pub const MAX_QUERY_CHARS: usize = 500;

/// Query string of `GET /api/search`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The words (up to 500 characters; the first 10 words are used); empty: every published
    /// product.
    pub q: Option<String>,
    /// Category slugs, any of which matches: repeat the parameter (`category=a&category=b`).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub category: Vec<String>,
    /// Exact brands, case-insensitive, any of which matches: repeat the parameter
    /// (`brand=acme&brand=sonora`).
    #[serde(default)]
    #[param(style = Form, explode)]
    pub brand: Vec<String>,
    /// Inclusive lower bound on `price_cents`.
    pub min_price: Option<String>,
    /// Inclusive upper bound on `price_cents`.
    pub max_price: Option<String>,
    /// `true`: only products in stock.
    pub in_stock: Option<String>,
    /// `relevance` (default), `price_asc`, `price_desc`, `newest`.
    pub sort: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One price bucket of the facets.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceFacet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    pub count: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchFacets {
    /// Results per category slug.
    pub category: BTreeMap<String, u64>,
    /// Results per brand.
    pub brand: BTreeMap<String, u64>,
    /// Results below 25.00, from 25.00 to 100.00, and from 100.00 (cents, `to` exclusive).
    pub price: Vec<PriceFacet>,
}

/// A search page: products (each with `highlight`: name and description fragments, the
/// matched words in `<em>`), the total, facets over the whole result set (the category and
/// brand counts ignore their own filter), the next cursor, and for a search that found nothing
/// a corrected query when one is likely.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    pub total: u64,
    pub facets: SearchFacets,
    pub next_cursor: Option<String>,
    /// Only on a search that found nothing: the query with likely typos corrected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did_you_mean: Option<String>,
}

/// [`SearchPage`] as it is encoded: products borrowed, serialised once, straight to bytes.
#[derive(Serialize)]
struct EncodedPage<'a> {
    items: Vec<EncodedItem<'a>>,
    total: u64,
    facets: &'a search::Facets,
    next_cursor: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    did_you_mean: &'a Option<String>,
}

#[derive(Serialize)]
struct EncodedItem<'a> {
    #[serde(flatten)]
    product: &'a projectors::read_model::ProductView,
    highlight: &'a search::Highlight,
}

/// The JSON of a page of results.
fn encode(results: &search::SearchResults) -> Result<Bytes, QueryProblem> {
    let page = EncodedPage {
        items: results
            .hits
            .iter()
            .map(|hit| EncodedItem {
                product: hit.product.as_ref(),
                highlight: &hit.highlight,
            })
            .collect(),
        total: results.total,
        facets: &results.facets,
        next_cursor: &results.next_cursor,
        did_you_mean: &results.did_you_mean,
    };
    serde_json::to_vec(&page).map(Bytes::from).map_err(|error| {
        tracing::error!(%error, "cannot encode a search page");
        QueryProblem(Problem::unavailable(
            1,
            "search is unavailable; retry shortly",
        ))
    })
}

fn json_response(body: Bytes, position: u64) -> axum::response::Response {
    let response = (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    with_position(response, position)
}

fn search_problem(error: SearchError) -> QueryProblem {
    match error {
        SearchError::Invalid(message) => bad(message),
        other => {
            tracing::warn!(error = %other, "search unavailable");
            QueryProblem(Problem::unavailable(
                1,
                "search is unavailable or busy; retry shortly",
            ))
        }
    }
}

/// Parses and checks the search parameters.
pub fn parse_search_params(params: SearchParams) -> Result<SearchQuery, QueryProblem> {
    let text = params.q.unwrap_or_default();
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(bad(format!(
            "q must be at most {MAX_QUERY_CHARS} characters; got {}",
            text.chars().count()
        )));
    }
    let filters = parse_filters(FilterParams {
        category: params.category,
        brand: params.brand,
        min_price: given(params.min_price),
        max_price: given(params.max_price),
        in_stock: given(params.in_stock),
    })?;
    let sort = match given(params.sort).as_deref() {
        None => SearchSort::Relevance,
        Some(text) => SearchSort::parse(text).ok_or_else(|| {
            bad(format!(
                "sort must be one of relevance, price_asc, price_desc, newest; got {text:?}"
            ))
        })?,
    };
    let limit = parse_limit(given(params.limit), 20)?;
    Ok(SearchQuery {
        text,
        categories: filters.category,
        brands: filters.brand,
        min_price: filters.min_price,
        max_price: filters.max_price,
        in_stock: filters.in_stock,
        sort,
        limit,
        cursor: given(params.cursor),
    })
}

/// Full-text search over published products. At most 10 words are used; a search that cannot
/// start within its time budget (every search worker busy) answers 503 with `Retry-After`.
#[utoipa::path(get, path = "/api/search", tag = "queries", params(SearchParams, ("X-Min-Position" = Option<u64>, Header)),
    responses((status = 200, body = SearchPage, headers(("X-Position" = u64))), (status = 400, body = Problem), (status = 503, body = Problem, headers(("Retry-After" = u64)))))]
pub async fn search(
    State(state): State<Arc<QueryState>>,
    MultiQuery(params): MultiQuery<SearchParams>,
) -> QueryResult {
    let Some(index) = &state.search else {
        return Err(Problem::unavailable(5, "search is not configured on this process").into());
    };
    let query = parse_search_params(params)?;
    let first_page = query.cursor.is_none();
    let key = search_cache::key(&query);
    let cached = key.and_then(|key| state.search_cache.get(key, index.position()));
    let (body, position, total) = match cached {
        Some(page) => (page.body.clone(), page.position, page.total),
        None => {
            let results = index.search(&query).await.map_err(search_problem)?;
            let body = encode(&results)?;
            if let Some(key) = key {
                state.search_cache.put(
                    key,
                    search_cache::CachedPage {
                        position: results.position,
                        body: body.clone(),
                        total: results.total,
                    },
                );
            }
            (body, results.position, results.total)
        }
    };
    if let (Some(capture), true) = (&state.capture, first_page) {
        // Only a search's first page counts as a search; later pages are the same one.
        let text = events::analytics::normalise_query(&query.text);
        if !text.is_empty() {
            capture.record(events::analytics::AnalyticsEvent::SearchPerformed(
                events::analytics::SearchPerformed {
                    query: text,
                    filters: query.filters(),
                    result_count: total,
                },
            ));
        }
    }
    Ok(json_response(body, position))
}

/// The longest text `/api/search/suggest` takes.
pub const MAX_SUGGEST_CHARS: usize = 100;

/// Query string of `GET /api/search/suggest`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuggestParams {
    /// What the shopper has typed so far (up to 100 characters); the last word is completed.
    pub q: Option<String>,
    /// 1–20, default 5: how many completions and how many products.
    pub limit: Option<String>,
}

/// Completions and products for a partly typed search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuggestPage {
    /// Whole queries: the typed words with the last one completed from the catalog's product
    /// names and brands, the most used first.
    pub queries: Vec<String>,
    /// Published products matching what is typed (the last word as a prefix).
    #[schema(value_type = Vec<projectors::read_model::ProductView>)]
    pub products: Vec<std::sync::Arc<projectors::read_model::ProductView>>,
}

/// Autocomplete: completions of the last typed word and the products already matching.
#[utoipa::path(get, path = "/api/search/suggest", tag = "queries", params(SuggestParams, ("X-Min-Position" = Option<u64>, Header)),
    responses((status = 200, body = SuggestPage, headers(("X-Position" = u64))), (status = 400, body = Problem), (status = 503, body = Problem, headers(("Retry-After" = u64)))))]
pub async fn suggest(
    State(state): State<Arc<QueryState>>,
    Query(params): Query<SuggestParams>,
) -> QueryResult {
    let Some(index) = &state.search else {
        return Err(Problem::unavailable(5, "search is not configured on this process").into());
    };
    let search::SuggestQuery { text, limit } = parse_suggest_params(params)?;
    // Keystrokes repeat even more than searches: answers are cached like first pages.
    let key = search_cache::suggest_key(&text, limit);
    let position = index.position();
    if let Some(page) = state.search_cache.get(key, position) {
        return Ok(json_response(page.body.clone(), page.position));
    }
    let suggestions = index
        .suggest(&search::SuggestQuery { text, limit })
        .await
        .map_err(search_problem)?;
    let page = SuggestPage {
        queries: suggestions.queries,
        products: suggestions.products,
    };
    let body = serde_json::to_vec(&page)
        .map(Bytes::from)
        .map_err(|error| {
            tracing::error!(%error, "cannot encode suggestions");
            QueryProblem(Problem::unavailable(
                1,
                "search is unavailable; retry shortly",
            ))
        })?;
    state.search_cache.put(
        key,
        search_cache::CachedPage {
            position,
            body: body.clone(),
            total: 0,
        },
    );
    Ok(json_response(body, position))
}

/// Parses and checks the suggestion parameters: `q` up to [`MAX_SUGGEST_CHARS`] characters,
/// `limit` from 1 to 20 (5 when not given).
pub fn parse_suggest_params(params: SuggestParams) -> Result<search::SuggestQuery, QueryProblem> {
    let text = params.q.unwrap_or_default();
    if text.chars().count() > MAX_SUGGEST_CHARS {
        return Err(bad(format!(
            "q must be at most {MAX_SUGGEST_CHARS} characters; got {}",
            text.chars().count()
        )));
    }
    let limit = parse_limit_up_to(given(params.limit), 5, 20)?;
    Ok(search::SuggestQuery { text, limit })
}
