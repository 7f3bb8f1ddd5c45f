//! `GET /api/search`: full-text search with typo tolerance, filters, sorts, facets.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::IntoResponse;
use search::{SearchError, SearchQuery, SearchSort};
use serde::{Deserialize, Serialize};
use web::extract::MultiQuery;
use web::Problem;

use super::{
    bad, given, parse_filters, parse_limit, with_position, FilterParams, QueryProblem, QueryResult,
};
use crate::QueryState;

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
/// matched words in `<em>`), the total, facets over the whole result set, the next cursor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    pub total: u64,
    pub facets: SearchFacets,
    pub next_cursor: Option<String>,
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

/// Full-text search over published products.
#[utoipa::path(get, path = "/api/search", tag = "queries", params(SearchParams, ("X-Min-Position" = Option<u64>, Header)),
    responses((status = 200, body = SearchPage, headers(("X-Position" = u64))), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn search(
    State(state): State<QueryState>,
    MultiQuery(params): MultiQuery<SearchParams>,
) -> QueryResult {
    let Some(index) = &state.search else {
        return Err(Problem::unavailable(5, "search is not configured on this process").into());
    };
    let query = parse_search_params(params)?;
    let first_page = query.cursor.is_none();
    let results = index.search(&query).await.map_err(|error| match error {
        SearchError::Invalid(message) => bad(message),
        other => {
            tracing::warn!(error = %other, "search unavailable");
            QueryProblem(Problem::unavailable(
                1,
                "search is unavailable; retry shortly",
            ))
        }
    })?;
    if let (Some(capture), true) = (&state.capture, first_page) {
        // Only a search's first page counts as a search; later pages are the same one.
        let text = events::analytics::normalise_query(&query.text);
        if !text.is_empty() {
            capture.record(events::analytics::AnalyticsEvent::SearchPerformed(
                events::analytics::SearchPerformed {
                    query: text,
                    filters: query.filters(),
                    result_count: results.total,
                },
            ));
        }
    }
    let items = results
        .hits
        .iter()
        .map(|hit| {
            let mut item = serde_json::to_value(hit.product.as_ref()).unwrap_or_default();
            if let Some(object) = item.as_object_mut() {
                object.insert(
                    "highlight".into(),
                    serde_json::to_value(&hit.highlight).unwrap_or_default(),
                );
            }
            item
        })
        .collect();
    let page = SearchPage {
        items,
        total: results.total,
        facets: SearchFacets {
            category: results.facets.category,
            brand: results.facets.brand,
            price: results
                .facets
                .price
                .into_iter()
                .map(|bucket| PriceFacet {
                    from: bucket.from,
                    to: bucket.to,
                    count: bucket.count,
                })
                .collect(),
        },
        next_cursor: results.next_cursor,
    };
    Ok(with_position(
        axum::Json(page).into_response(),
        results.position,
    ))
}
