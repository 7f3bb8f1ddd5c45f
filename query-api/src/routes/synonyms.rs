//! `GET /api/search/synonyms`: the synonyms searches use now, as the search index holds them
//! (read-your-writes with `X-Min-Position` after `PUT /api/search/synonyms`, like any search).

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use web::Problem;

use super::{with_position, QueryProblem, QueryResult};
use crate::QueryState;

/// The synonym groups the search index applies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SynonymList {
    /// Each group: words a search treats alike (lower-cased); `[]` when none are set.
    #[schema(example = json!([["tv", "television"]]))]
    pub groups: Vec<Vec<String>>,
}

/// The search synonyms in use: public, like every search.
#[utoipa::path(get, path = "/api/search/synonyms", tag = "queries", params(("X-Min-Position" = Option<u64>, Header)),
    responses((status = 200, body = SynonymList, headers(("X-Position" = u64))), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn list_synonyms(State(state): State<Arc<QueryState>>) -> QueryResult {
    let Some(index) = &state.search else {
        return Err(Problem::unavailable(5, "search is not configured on this process").into());
    };
    // The position before the read: the synonyms read reflect at least this much.
    let position = index.position();
    let synonyms = index.synonyms().await.map_err(|error| {
        tracing::warn!(%error, "search synonyms unavailable");
        QueryProblem(Problem::unavailable(
            1,
            "search is unavailable; retry shortly",
        ))
    })?;
    let body = SynonymList {
        groups: synonyms.groups,
    };
    Ok(with_position(axum::Json(body).into_response(), position))
}
