//! Answering a search from the searcher of the last commit: the page (by score or by a fast
//! field), the total and the facets in one collector pass, the facets of a ticked category or
//! brand in a pass without that filter, the highlights of the page, the cursor of the next
//! page, and a did-you-mean for a search that finds nothing.
//!
//! Every search has a deadline ([`Deadline`]): past it, the passes not yet run are skipped
//! (the facets of a ticked filter are then counted with it, highlights and did-you-mean are
//! left out), so a search answers with what it has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::Query;
use tantivy::{DocAddress, Order, Searcher};

use super::facets::{Counted, FacetCollector, Wanted as WantedFacets};
use super::highlight::Wanted;
use super::query::{full_query, Context, Except};
use super::schema::stored;
use super::suggest::did_you_mean;
use crate::cursor::{self, fingerprint};
use crate::{query_words, SearchError, SearchHit, SearchQuery, SearchResults, SearchSort};

/// The deepest result a cursor may reach.
const MAX_OFFSET: usize = 10_000;

pub(super) fn unavailable(error: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(error.to_string())
}

/// When a search stops starting new work.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline(pub Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Deadline {
        Deadline(Instant::now() + budget)
    }

    fn passed(self) -> bool {
        Instant::now() >= self.0
    }
}

/// What one search reads: the searcher of the last commit and the position it answers at.
pub(super) struct Snapshot<'a> {
    pub position: u64,
    pub context: Context<'a>,
}

/// Runs `query` against `snapshot`.
pub(super) fn run_search(
    snapshot: &Snapshot<'_>,
    query: &SearchQuery,
    deadline: Deadline,
) -> Result<SearchResults, SearchError> {
    let offset = offset_of(query)?;
    let fields = snapshot.context.fields;
    let searcher = snapshot.context.searcher;
    let typed = query_words(&query.text);
    let (mut full, has_text) = full_query(snapshot.context, query, true, Except::Nothing);
    let sort = if !has_text && query.sort == SearchSort::Relevance {
        SearchSort::Newest
    } else {
        query.sort
    };
    let limit = query.limit.max(1);
    let mut first = page(searcher, &*full, sort, limit, offset, WantedFacets::ALL)?;
    let mut all_words = true;
    if first.count == 0 && has_text && typed.len() > 1 && !deadline.passed() {
        full = full_query(snapshot.context, query, false, Except::Nothing).0;
        first = page(searcher, &*full, sort, limit, offset, WantedFacets::ALL)?;
        all_words = false;
    }
    let Page {
        addresses,
        count,
        facets,
    } = first;
    // Disjunctive facets: a ticked category or brand is counted as if it were not ticked, so
    // the shopper sees what else they could add.
    let without = |except: Except, wanted: WantedFacets| -> Result<Option<Counted>, SearchError> {
        if deadline.passed() {
            return Ok(None);
        }
        let (query, _) = full_query(snapshot.context, query, all_words, except);
        let counted = searcher
            .search(&*query, &FacetCollector { wanted })
            .map_err(unavailable)?;
        Ok(Some(counted))
    };
    let category = if query.categories.is_empty() {
        None
    } else {
        without(
            Except::Category,
            WantedFacets {
                category: true,
                brand: false,
                price: false,
            },
        )?
    };
    let brand = if query.brands.is_empty() {
        None
    } else {
        without(
            Except::Brand,
            WantedFacets {
                category: false,
                brand: true,
                price: false,
            },
        )?
    };
    let mut wanted = Wanted::of(&typed, snapshot.context.synonyms);
    let hits: Vec<SearchHit> = addresses
        .into_iter()
        .filter_map(|address| stored(fields, searcher, address))
        .map(|product| SearchHit {
            highlight: if deadline.passed() {
                Default::default()
            } else {
                wanted.highlight(fields, &product)
            },
            product: Arc::new(product),
        })
        .collect();
    let next = offset + hits.len();
    let next_cursor = (next < count && !hits.is_empty())
        .then(|| cursor::encode(&json!({"offset": next, "search": fingerprint(query)})));
    let did_you_mean = if count == 0 && has_text && !deadline.passed() {
        did_you_mean(searcher, fields, &typed)
    } else {
        None
    };
    Ok(SearchResults {
        hits,
        total: count as u64,
        facets: facets.into_facets(category, brand),
        next_cursor,
        position: snapshot.position,
        did_you_mean,
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

/// A page of documents, the number of matches, and their facets.
struct Page {
    addresses: Vec<DocAddress>,
    count: usize,
    facets: Counted,
}

/// The page's documents in `sort` order, the count and the facets of every match, in one pass.
fn page(
    searcher: &Searcher,
    full: &dyn Query,
    sort: SearchSort,
    limit: usize,
    offset: usize,
    wanted: WantedFacets,
) -> Result<Page, SearchError> {
    let facets = FacetCollector { wanted };
    let top = TopDocs::with_limit(limit).and_offset(offset);
    let (field, order) = match sort {
        SearchSort::Relevance => {
            let (hits, count, facets) = searcher
                .search(full, &(top.order_by_score(), Count, facets))
                .map_err(unavailable)?;
            return Ok(Page {
                addresses: hits.into_iter().map(|(_, address)| address).collect(),
                count,
                facets,
            });
        }
        SearchSort::PriceAsc => ("price_cents", Order::Asc),
        SearchSort::PriceDesc => ("price_cents", Order::Desc),
        SearchSort::Newest => ("created", Order::Desc),
    };
    let (hits, count, facets) = searcher
        .search(
            full,
            &(top.order_by_fast_field::<i64>(field, order), Count, facets),
        )
        .map_err(unavailable)?;
    Ok(Page {
        addresses: hits.into_iter().map(|(_, address)| address).collect(),
        count,
        facets,
    })
}
