//! Answering a search from the searcher of the last commit: the page (by score or by a fast
//! field), the total, the facets, the highlights, and the cursor of the next page.

use std::sync::Arc;

use events::Watermark;
use serde_json::json;
use tantivy::aggregation::agg_result::AggregationResults;
use tantivy::aggregation::{AggContextParams, AggregationCollector};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::Query;
use tantivy::{DocAddress, IndexReader, Order, Searcher};

use super::aggregations::{aggregations, facets};
use super::highlight::highlight;
use super::query::full_query;
use super::schema::{stored, Fields};
use crate::cursor::{self, fingerprint};
use crate::{words, SearchError, SearchHit, SearchQuery, SearchResults, SearchSort};

/// The deepest result a cursor may reach.
const MAX_OFFSET: usize = 10_000;

pub(super) fn unavailable(error: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(error.to_string())
}

/// Runs `query` against what `reader` has loaded; `committed` is the position of the last
/// commit, read after the searcher is taken.
pub(super) fn run_search(
    fields: &Fields,
    reader: &IndexReader,
    committed: &Watermark,
    query: &SearchQuery,
) -> Result<SearchResults, SearchError> {
    let offset = offset_of(query)?;
    let searcher = reader.searcher();
    let position = committed.current();
    let (mut full, has_text) = full_query(fields, query, true);
    let mut count = searcher.search(&full, &Count).map_err(unavailable)?;
    if count == 0 && has_text && words(&query.text).len() > 1 {
        full = full_query(fields, query, false).0;
        count = searcher.search(&full, &Count).map_err(unavailable)?;
    }
    let sort = if !has_text && query.sort == SearchSort::Relevance {
        SearchSort::Newest
    } else {
        query.sort
    };
    let (addresses, aggregated) = page(&searcher, &*full, sort, query.limit.max(1), offset)?;
    let hits: Vec<SearchHit> = addresses
        .into_iter()
        .filter_map(|address| stored(fields, &searcher, address))
        .map(|product| SearchHit {
            highlight: highlight(fields, &query.text, &product),
            product: Arc::new(product),
        })
        .collect();
    let next = offset + hits.len();
    let next_cursor = (next < count && !hits.is_empty())
        .then(|| cursor::encode(&json!({"offset": next, "search": fingerprint(query)})));
    Ok(SearchResults {
        hits,
        total: count as u64,
        facets: facets(&aggregated),
        next_cursor,
        position,
        did_you_mean: None,
    })
}

/// Where the page starts: 0, or what the query's cursor says.
fn offset_of(query: &SearchQuery) -> Result<usize, SearchError> {
    let Some(text) = &query.cursor else {
        return Ok(0);
    };
    let document = cursor::decode(text).ok_or_else(cursor::not_ours)?;
    let (Some(offset), Some(_)) = (document["offset"].as_u64(), document["search"].as_u64()) else {
        return Err(cursor::not_ours());
    };
    if !cursor::belongs_to(&document, query) {
        return Err(cursor::of_another_search());
    }
    let offset = usize::try_from(offset).map_err(|_| cursor::not_ours())?;
    if offset > MAX_OFFSET {
        return Err(SearchError::Invalid(format!(
            "results beyond the first {MAX_OFFSET} are not paged; narrow the search"
        )));
    }
    Ok(offset)
}

/// The page's documents in `sort` order, and the aggregations over every match.
fn page(
    searcher: &Searcher,
    full: &dyn Query,
    sort: SearchSort,
    limit: usize,
    offset: usize,
) -> Result<(Vec<DocAddress>, AggregationResults), SearchError> {
    let aggregation = AggregationCollector::from_aggs(aggregations(), AggContextParams::default());
    let top = TopDocs::with_limit(limit).and_offset(offset);
    let (field, order) = match sort {
        SearchSort::Relevance => {
            let (hits, aggregated) = searcher
                .search(full, &(top.order_by_score(), aggregation))
                .map_err(unavailable)?;
            let addresses = hits.into_iter().map(|(_, address)| address).collect();
            return Ok((addresses, aggregated));
        }
        SearchSort::PriceAsc => ("price_cents", Order::Asc),
        SearchSort::PriceDesc => ("price_cents", Order::Desc),
        SearchSort::Newest => ("created", Order::Desc),
    };
    let (hits, aggregated) = searcher
        .search(
            full,
            &(top.order_by_fast_field::<i64>(field, order), aggregation),
        )
        .map_err(unavailable)?;
    let addresses = hits.into_iter().map(|(_, address)| address).collect();
    Ok((addresses, aggregated))
}
