//! Query handlers.

mod encoded;
pub mod search;
pub mod synonyms;

pub use encoded::SURROGATE_KEY;
use encoded::{cached_list, hashed_tag, items_tag, not_modified, product_keys, surrogate_keys};
pub(crate) use encoded::{items_json, json_bytes};

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use projectors::read_model::{
    CategoryView, Cursor, ListQuery, ProductView, ReadModelError, SortKey, SortOrder, StampScope,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use web::extract::{Path, Query};
use web::Problem;

use events::values::{Brand, Slug};

use crate::answers::{Answer, AnswerKey};
use crate::consistency::{RequiredPosition, X_POSITION};
use crate::QueryState;

impl From<ReadModelError> for QueryProblem {
    fn from(error: ReadModelError) -> Self {
        // TooCostly never leaves the layered read model (it asks the next view); here it can
        // only mean no view could answer.
        tracing::warn!(%error, "read model unavailable");
        QueryProblem(Problem::unavailable(
            1,
            "the catalog views are unavailable; retry shortly",
        ))
    }
}

/// A problem raised by a query handler.
pub struct QueryProblem(pub Problem);

impl From<Problem> for QueryProblem {
    fn from(problem: Problem) -> Self {
        QueryProblem(problem)
    }
}

impl IntoResponse for QueryProblem {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

pub(crate) type QueryResult = Result<Response, QueryProblem>;

pub(crate) fn with_position(mut response: Response, position: u64) -> Response {
    response
        .headers_mut()
        .insert(X_POSITION, HeaderValue::from(position));
    response
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Whether the caller is an admin: `false` without a token; 401 for a token that does not
/// verify (or when this process cannot verify tokens).
fn caller_is_admin(state: &QueryState, headers: &HeaderMap) -> Result<bool, Problem> {
    if !headers.contains_key(axum::http::header::AUTHORIZATION) {
        return Ok(false);
    }
    let Some(verifier) = &state.verifier else {
        return Err(Problem::unauthorized(
            "this query service has no token keys (CATALOG_JWT_KEY_FILE or CATALOG_JWKS_URL); \
             read without a token",
        ));
    };
    let user = auth::AuthUser::from_headers(headers, verifier)?;
    Ok(user.is_some_and(|user| user.role == auth::Role::Admin))
}

/// A published product; with an admin's token, a product in any status.
///
/// `DELETE /api/products/{id}` archives: the product is kept, and an admin still reads it here
/// (with `"status": "archived"`), while shoppers get 404. On purpose: an archived product's
/// history and its events stay reachable. (Schemathesis's use-after-free check is excluded for
/// this operation alone, in `schemathesis.toml`.)
#[utoipa::path(get, path = "/api/products/{id}", tag = "queries",
    params(("id" = Uuid, Path), ("If-None-Match" = Option<String>, Header), ("X-Min-Position" = Option<u64>, Header),
        ("Authorization" = Option<String>, Header, description = "Optional. With an admin's token, drafts and archived products are visible too (and the answer is `Cache-Control: private, no-store`).")),
    responses(
        (status = 200, body = ProductView, headers(("ETag" = String), ("Cache-Control" = String, description = "`public, max-age=30, stale-while-revalidate=30`; `private, no-store` for an admin"), ("Surrogate-Key" = String, description = "`catalog product:<id>`: what the edge cache purges it by"), ("X-Position" = u64))),
        (status = 304, description = "Not modified"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_product(
    State(state): State<Arc<QueryState>>,
    RequiredPosition(at): RequiredPosition,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> QueryResult {
    let headers = request.headers();
    let Ok(id) = Uuid::parse_str(&id) else {
        return Err(Problem::not_found(format!("no product with id {id:?}")).into());
    };
    let admin = caller_is_admin(&state, headers)?;
    let (product, position) = if admin {
        state.read_model.product_any_status(id, at).await?
    } else {
        state.read_model.product(id, at).await?
    };
    let Some(product) = product else {
        let mut response = Problem::not_found(format!("no product with id {id}")).into_response();
        // Cached at the edge too: its creation purges it.
        response
            .headers_mut()
            .insert(SURROGATE_KEY, product_keys(id));
        return Ok(with_position(response, position));
    };
    let cache_control = if admin {
        HeaderValue::from_static("private, no-store")
    } else {
        state.product_cache_control.clone()
    };
    if let (Some(capture), false) = (&state.capture, admin) {
        capture.record(events::analytics::AnalyticsEvent::ProductViewed(
            events::analytics::ProductViewed {
                product_id: product.id,
                category: product.category.clone(),
            },
        ));
    }
    let mut response = if not_modified(headers, product.version) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_bytes(product.json())
    };
    let answer = response.headers_mut();
    answer.insert(ETAG, etag(product.version));
    answer.insert(CACHE_CONTROL, cache_control);
    answer.insert(SURROGATE_KEY, product_keys(product.id));
    Ok(with_position(response, position))
}

/// Query string of `GET /api/products`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Category slugs, any of which matches: repeat the parameter (`category=a&category=b`),
    /// up to 20 times.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub category: Vec<String>,
    /// Exact brands, case-insensitive, any of which matches: repeat the parameter
    /// (`brand=acme&brand=sonora`), up to 20 times.
    #[serde(default)]
    #[param(style = Form, explode)]
    pub brand: Vec<String>,
    /// Inclusive lower bound on `price_cents`.
    pub min_price: Option<String>,
    /// Inclusive upper bound on `price_cents`.
    pub max_price: Option<String>,
    /// `true`: only products in stock (`false` is the same as leaving it out).
    pub in_stock: Option<String>,
    /// `newest` (default), `price_asc`, `price_desc`, `bestselling`, `name`.
    pub sort: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductPage {
    #[schema(value_type = Vec<ProductView>)]
    pub items: Vec<Arc<ProductView>>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProductList {
    #[schema(value_type = Vec<ProductView>)]
    pub items: Vec<Arc<ProductView>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CategoryList {
    pub items: Vec<CategoryView>,
}

pub(crate) fn bad(message: String) -> QueryProblem {
    Problem::bad_request(message).into()
}

/// A category filter: a [`Slug`], the same rule a category's own slug passes.
pub(crate) fn parse_slug(
    field: &str,
    value: Option<String>,
) -> Result<Option<String>, QueryProblem> {
    let Some(text) = value else {
        return Ok(None);
    };
    match Slug::parse(&text) {
        Ok(slug) => Ok(Some(slug.into_string())),
        Err(_) => Err(bad(format!(
            "{field}={text:?} is not a category slug ([a-z0-9-]{{1,64}})"
        ))),
    }
}

pub(crate) fn parse_price(field: &str, value: Option<String>) -> Result<Option<i64>, QueryProblem> {
    match value {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(price) if price >= 0 => Ok(Some(price)),
            _ => Err(bad(format!(
                "{field} must be a non-negative integer (cents); got {text:?}"
            ))),
        },
    }
}

pub(crate) fn parse_limit(value: Option<String>, default: usize) -> Result<usize, QueryProblem> {
    parse_limit_up_to(value, default, 100)
}

/// `limit` from 1 to `max`, `default` when not given.
pub(crate) fn parse_limit_up_to(
    value: Option<String>,
    default: usize,
    max: usize,
) -> Result<usize, QueryProblem> {
    match value {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(bad(format!(
                "limit must be an integer from 1 to {max}; got {text:?}"
            ))),
        },
    }
}

/// A parameter given with an empty value (`?category=&sort=`) counts as not given.
pub(crate) fn given(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

/// How many values one multi-valued filter (`category`, `brand`) may have.
pub const MAX_FILTER_VALUES: usize = 20;

/// The filters listing and search share, as given (empty values already dropped).
pub(crate) struct FilterParams {
    pub category: Vec<String>,
    pub brand: Vec<String>,
    pub min_price: Option<String>,
    pub max_price: Option<String>,
    pub in_stock: Option<String>,
}

/// [`FilterParams`] checked: the fields both `ListQuery` and `SearchQuery` carry.
pub(crate) struct Filters {
    /// Distinct slugs, in the order given.
    pub category: Vec<String>,
    /// Distinct brands (case-insensitively), in the order given.
    pub brand: Vec<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: bool,
}

/// Checks the shared filters, in the order their errors are reported. A price bound is any
/// non-negative integer (a bound above every price is no error), so it is not a `PriceCents`.
pub(crate) fn parse_filters(params: FilterParams) -> Result<Filters, QueryProblem> {
    for (name, values) in [("category", &params.category), ("brand", &params.brand)] {
        if values.len() > MAX_FILTER_VALUES {
            return Err(bad(format!(
                "{name} may be given at most {MAX_FILTER_VALUES} times; got {}",
                values.len()
            )));
        }
    }
    let mut category: Vec<String> = Vec::new();
    for text in params.category.into_iter().filter(|text| !text.is_empty()) {
        if let Some(slug) = parse_slug("category", Some(text))? {
            if !category.contains(&slug) {
                category.push(slug);
            }
        }
    }
    let mut brand: Vec<String> = Vec::new();
    for text in params.brand.into_iter().filter(|text| !text.is_empty()) {
        if text.chars().count() > Brand::MAX_CHARS {
            return Err(bad(format!(
                "brand must be 1 to {} characters",
                Brand::MAX_CHARS
            )));
        }
        if !brand
            .iter()
            .any(|known| known.to_lowercase() == text.to_lowercase())
        {
            brand.push(text);
        }
    }
    let min_price = parse_price("min_price", params.min_price)?;
    let max_price = parse_price("max_price", params.max_price)?;
    if let (Some(min), Some(max)) = (min_price, max_price) {
        if min > max {
            return Err(bad(format!("min_price ({min}) is above max_price ({max})")));
        }
    }
    let in_stock = match params.in_stock.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(format!(
                "in_stock must be true or false; got {other:?}"
            )))
        }
    };
    Ok(Filters {
        category,
        brand,
        min_price,
        max_price,
        in_stock,
    })
}

/// Parses and checks the listing parameters.
pub fn parse_list_params(params: ListParams) -> Result<ListQuery, QueryProblem> {
    let filters = parse_filters(FilterParams {
        category: params.category,
        brand: params.brand,
        min_price: given(params.min_price),
        max_price: given(params.max_price),
        in_stock: given(params.in_stock),
    })?;
    let sort = match given(params.sort).as_deref() {
        None => SortOrder::Newest,
        Some(text) => SortOrder::parse(text).ok_or_else(|| {
            bad(format!(
                "sort must be one of newest, price_asc, price_desc, bestselling, name; got {text:?}"
            ))
        })?,
    };
    let limit = parse_limit(given(params.limit), 20)?;
    let after = match given(params.cursor) {
        None => None,
        Some(text) => Some(parse_cursor(&text, sort)?),
    };
    Ok(ListQuery {
        categories: filters.category,
        brands: filters.brand,
        min_price: filters.min_price,
        max_price: filters.max_price,
        in_stock: filters.in_stock,
        sort,
        limit,
        after,
    })
}

/// A listing cursor: one this API gave out, for the same sort order.
fn parse_cursor(text: &str, sort: SortOrder) -> Result<SortKey, QueryProblem> {
    let cursor =
        Cursor::decode(text).ok_or_else(|| bad("cursor is not one this API gave out".into()))?;
    if cursor.sort != sort {
        return Err(bad(
            "cursor belongs to another sort order; start again without it".into(),
        ));
    }
    if !cursor.is_well_formed() {
        return Err(bad("cursor is not one this API gave out".into()));
    }
    Ok(cursor.after)
}

/// Published products, filtered and sorted, a page at a time.
///
/// Every filter given must hold; a repeated `category` or `brand` matches any of its values.
#[utoipa::path(get, path = "/api/products", tag = "queries", params(ListParams, ("If-None-Match" = Option<String>, Header), ("X-Min-Position" = Option<u64>, Header)),
    responses((status = 200, body = ProductPage, headers(("ETag" = String, description = "Derived from the items' ids and versions and the next cursor"), ("Cache-Control" = String, description = "`public, max-age=5, stale-while-revalidate=30`"), ("Surrogate-Key" = String, description = "`catalog scope:all`, or `catalog scope:<slug>…` per category"), ("X-Position" = u64))),
        (status = 304, description = "Not modified"), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn list_products(
    State(state): State<Arc<QueryState>>,
    RequiredPosition(at): RequiredPosition,
    headers: HeaderMap,
    web::extract::MultiQuery(params): web::extract::MultiQuery<ListParams>,
) -> QueryResult {
    let query = parse_list_params(params)?;
    let key = AnswerKey::Listing(query.normalized());
    let scope = StampScope::Products(&query.categories);
    cached_list(&state, &headers, key, scope, || async {
        let page = state.read_model.list(&query, at).await?;
        let cursor = page.next_cursor.map(|cursor| cursor.encode());
        let keys = if query.categories.is_empty() {
            HeaderValue::from_static("catalog scope:all")
        } else {
            let scopes: Vec<String> = query
                .categories
                .iter()
                .map(|slug| format!("scope:{slug}"))
                .collect();
            surrogate_keys(&format!("catalog {}", scopes.join(" ")))
        };
        let answer = Answer {
            tag: items_tag(&page.items, cursor.as_deref()),
            body: items_json(&page.items, Some(cursor.as_deref())),
            keys,
            stamp: 0,
        };
        Ok((answer, page.position))
    })
    .await
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BestsellerParams {
    pub category: Option<String>,
    /// 1–100, default 10.
    pub limit: Option<String>,
}

/// The top published products by sales.
#[utoipa::path(get, path = "/api/products/bestsellers", tag = "queries", params(BestsellerParams, ("If-None-Match" = Option<String>, Header), ("X-Min-Position" = Option<u64>, Header)),
    responses((status = 200, body = ProductList, headers(("ETag" = String, description = "Derived from the items' ids and versions"), ("Cache-Control" = String, description = "`public, max-age=5, stale-while-revalidate=30`"), ("Surrogate-Key" = String, description = "`catalog bestsellers`"), ("X-Position" = u64))),
        (status = 304, description = "Not modified"), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn bestsellers(
    State(state): State<Arc<QueryState>>,
    RequiredPosition(at): RequiredPosition,
    headers: HeaderMap,
    Query(params): Query<BestsellerParams>,
) -> QueryResult {
    let category = parse_slug("category", given(params.category))?;
    let limit = parse_limit(given(params.limit), 10)?;
    let scopes: Vec<String> = category.iter().cloned().collect();
    let key = AnswerKey::Bestsellers(category.clone(), limit);
    cached_list(
        &state,
        &headers,
        key,
        StampScope::Products(&scopes),
        || async {
            let (items, position) = state
                .read_model
                .bestsellers(category.as_deref(), limit, at)
                .await?;
            let answer = Answer {
                tag: items_tag(&items, None),
                body: items_json(&items, None),
                keys: HeaderValue::from_static("catalog bestsellers"),
                stamp: 0,
            };
            Ok((answer, position))
        },
    )
    .await
}

/// Every category with its number of published products.
#[utoipa::path(get, path = "/api/categories", tag = "queries", params(("If-None-Match" = Option<String>, Header), ("X-Min-Position" = Option<u64>, Header)),
    responses((status = 200, body = CategoryList, headers(("ETag" = String, description = "Derived from every category's slug, name, parent and count"), ("Cache-Control" = String, description = "`public, max-age=5, stale-while-revalidate=30`"), ("Surrogate-Key" = String, description = "`catalog categories`"), ("X-Position" = u64))),
        (status = 304, description = "Not modified"), (status = 400, body = Problem), (status = 503, body = Problem)))]
pub async fn list_categories(
    State(state): State<Arc<QueryState>>,
    RequiredPosition(at): RequiredPosition,
    headers: HeaderMap,
) -> QueryResult {
    let key = AnswerKey::Categories;
    cached_list(&state, &headers, key, StampScope::Categories, || async {
        let (items, position) = state.read_model.categories(at).await?;
        let mut hasher = std::hash::DefaultHasher::new();
        for category in &items {
            (
                &category.slug,
                &category.name,
                &category.parent,
                category.product_count,
            )
                .hash(&mut hasher);
        }
        let answer = Answer {
            tag: hashed_tag(hasher.finish()),
            body: Bytes::from(serde_json::to_vec(&CategoryList { items }).unwrap_or_default()),
            keys: HeaderValue::from_static("catalog categories"),
            stamp: 0,
        };
        Ok((answer, position))
    })
    .await
}
