//! The read side: product pages, listings, bestsellers and categories, served from the read
//! model, with read-your-writes (`X-Min-Position`) and `X-Position` on every answer.
//!
//! - [`routes`]: the handlers and their query-string parsing; [`routes::search`] for
//!   `/api/search`.
//! - [`read_path`]: the distributed read path (L1, Redis, replica, invalidations, breakers).
//! - [`consistency`]: the `X-Min-Position` / `X-Position` middleware.
//! - [`events_api`]: `/api/events` and its Server-Sent Events stream (analysts).
//! - [`analytics`]: shopper analytics capture and `/api/analytics/*` (analysts).
//! - [`edge`]: purges of the edge cache (Varnish), driven by the same invalidations.

pub mod analytics;
pub mod answers;
pub mod consistency;
pub mod edge;
pub mod events_api;
pub mod read_path;
pub mod routes;
pub mod search_cache;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use projectors::read_model::CatalogReadModel;

/// What the query handlers share.
#[derive(Clone)]
pub struct QueryState {
    pub read_model: Arc<dyn CatalogReadModel>,
    /// Verifies the optional bearer token (an admin sees products in every status); `None`
    /// when this process has no token keys.
    pub verifier: Option<Arc<auth::TokenVerifier>>,
    /// `Cache-Control` of published product pages.
    pub product_cache_control: axum::http::HeaderValue,
    /// How long `X-Min-Position` may wait (API.md: 2 s).
    pub min_position_wait: Duration,
    /// The search index behind `/api/search`; without it the route is not served.
    pub search: Option<Arc<dyn search::SearchIndex>>,
    /// First pages of searches, valid while the index stays at the position that answered.
    pub search_cache: Arc<search_cache::SearchCache>,
    /// Encoded listings, bestseller lists and category lists, while the view's stamp holds.
    pub answers: Arc<answers::AnswerCache>,
    /// The event log behind `/api/events*`; without it those routes are not served.
    pub events: Option<Arc<events_api::EventFeed>>,
    /// The analytics view behind `/api/analytics/*`.
    pub analytics: Option<Arc<dyn projectors::analytics::AnalyticsView>>,
    /// Where product views and searches are recorded; `None`: not recorded.
    pub capture: Option<analytics::Capture>,
}

impl QueryState {
    pub fn with_search(mut self, search: Arc<dyn search::SearchIndex>) -> Self {
        self.search = Some(search);
        self
    }

    pub fn with_events(mut self, feed: Arc<events_api::EventFeed>) -> Self {
        self.events = Some(feed);
        self
    }

    pub fn with_analytics(
        mut self,
        view: Arc<dyn projectors::analytics::AnalyticsView>,
        capture: Option<analytics::Capture>,
    ) -> Self {
        self.analytics = Some(view);
        self.capture = capture;
        self
    }

    pub fn with_verifier(mut self, verifier: Option<Arc<auth::TokenVerifier>>) -> Self {
        self.verifier = verifier;
        self
    }

    pub fn new(read_model: Arc<dyn CatalogReadModel>) -> Self {
        QueryState {
            read_model,
            verifier: None,
            product_cache_control: axum::http::HeaderValue::from_static(
                "public, max-age=30, stale-while-revalidate=30",
            ),
            min_position_wait: Duration::from_secs(2),
            search: None,
            search_cache: Default::default(),
            answers: Default::default(),
            events: None,
            analytics: None,
            capture: None,
        }
    }
}

/// The query-api routes (API.md: GET/HEAD under `/api/products`, `/api/search` and
/// `/api/categories`). Each group waits for its own views on `X-Min-Position`.
pub fn router(state: QueryState) -> Router {
    let catalog = consistency::Consistency {
        views: Arc::new(consistency::ReadModelViews(state.read_model.clone())),
        wait: state.min_position_wait,
    };
    let mut router: Router<Arc<QueryState>> = Router::new()
        .route("/api/products", get(routes::list_products))
        .route("/api/products/bestsellers", get(routes::bestsellers))
        .route("/api/products/{id}", get(routes::get_product))
        .route("/api/categories", get(routes::list_categories))
        .route_layer(axum::middleware::from_fn_with_state(
            catalog,
            consistency::read_your_writes,
        ));
    if let Some(index) = &state.search {
        let searched = consistency::Consistency {
            views: Arc::new(consistency::SearchViews(index.clone())),
            wait: state.min_position_wait,
        };
        router = router.merge(
            Router::new()
                .route("/api/search", get(routes::search::search))
                .route("/api/search/suggest", get(routes::search::suggest))
                .route("/api/search/synonyms", get(routes::synonyms::list_synonyms))
                .route_layer(axum::middleware::from_fn_with_state(
                    searched,
                    consistency::read_your_writes,
                )),
        );
    }
    if let Some(feed) = &state.events {
        let events = events_api::EventsState {
            feed: feed.clone(),
            verifier: state.verifier.clone(),
        };
        router = router.merge(
            Router::new()
                .route("/api/events", get(events_api::list_events))
                .route("/api/events/stream", get(events_api::stream_events))
                .with_state(events),
        );
    }
    if let Some(view) = &state.analytics {
        let analytics = analytics::AnalyticsState {
            view: view.clone(),
            verifier: state.verifier.clone(),
        };
        router = router.merge(
            Router::new()
                .route("/api/analytics/trending", get(analytics::trending))
                .route("/api/analytics/searches", get(analytics::searches))
                .with_state(analytics),
        );
    }
    // One Arc: axum clones the state into every request's handler.
    router.with_state(Arc::new(state))
}
