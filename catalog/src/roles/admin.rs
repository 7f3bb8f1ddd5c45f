//! `/api/admin/projections`: each projector's generation, position, lag, state and parked
//! events; an operator's rebuild, pause or resume of a view, and retry or skip of a parked
//! event.

use std::sync::Arc;

use auth::{AuthUser, Role, TokenVerifier};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use events::store::EventStore;
use projectors::parking::{ParkedAction, ParkedEvent, ParkingError, ParkingStore, ViewAction};
use projectors::runner::Projector;
use projectors::runner::RebuildProgress;
use serde::Serialize;
use web::extract::Path;
use web::Problem;

/// Where projector statuses come from.
#[derive(Clone)]
pub enum StatusSource {
    /// Projectors running in this process (the embedded mode).
    Local(Vec<Projector>),
    /// Heartbeats that projector processes write to PostgreSQL (the distributed mode).
    Postgres(sqlx::PgPool),
}

#[derive(Clone)]
pub struct AdminState {
    pub statuses: StatusSource,
    pub store: Arc<dyn EventStore>,
    pub parking: Arc<dyn ParkingStore>,
    pub verifier: Arc<TokenVerifier>,
}

impl FromRef<AdminState> for Arc<TokenVerifier> {
    fn from_ref(state: &AdminState) -> Self {
        state.verifier.clone()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectionStatus {
    pub name: String,
    /// `starting`, `catching-up`, `live`, `paused`, `failing`, or `stopped` (no heartbeat
    /// lately).
    pub state: String,
    /// The generation readers see (1 until the view is first rebuilt).
    pub generation: u64,
    /// A rebuild in progress (`POST /api/admin/projections/{view}/rebuild`).
    pub rebuild: Option<RebuildProgress>,
    pub position: u64,
    /// Events in the store the projector has not applied yet.
    pub lag_events: u64,
    /// Age of the oldest event not yet applied (0 when caught up).
    pub lag_seconds: f64,
    pub last_error: Option<String>,
    /// Events parked and held back from the view: failed, or waiting behind a failed one of
    /// the same product (`GET /api/admin/projections/{view}/parked`).
    pub parked: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectionList {
    pub head: u64,
    pub items: Vec<ProjectionStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ParkedList {
    /// Every parked event of the view, by position, with the decisions taken on them.
    pub items: Vec<ParkedEvent>,
}

fn parking_unavailable(error: ParkingError) -> Problem {
    tracing::warn!(%error, "parked-event store unavailable");
    Problem::unavailable(1, "the parked events are unavailable; retry shortly")
}

/// Each projector's position, lag in events and seconds, state and parked events (admin
/// only).
#[utoipa::path(get, path = "/api/admin/projections", tag = "operations",
    responses((status = 200, body = ProjectionList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn projections(
    State(state): State<AdminState>,
    user: AuthUser,
) -> Result<axum::Json<ProjectionList>, Problem> {
    user.require(&[Role::Admin])?;
    let unavailable = |error: events::store::StoreError| {
        tracing::warn!(%error, "event store unavailable");
        Problem::unavailable(1, "the event store is unavailable; retry shortly")
    };
    let head = state.store.head().await.map_err(unavailable)?;
    let statuses = match &state.statuses {
        StatusSource::Local(projectors) => projectors.iter().map(Projector::status).collect(),
        StatusSource::Postgres(pool) => projectors::status::read(pool).await.map_err(|error| {
            tracing::warn!(%error, "cannot read projector statuses");
            Problem::unavailable(1, "the projector statuses are unavailable; retry shortly")
        })?,
    };
    let parked = state
        .parking
        .held_counts()
        .await
        .map_err(parking_unavailable)?;
    let mut items = Vec::new();
    for status in statuses {
        let lag_events = head.saturating_sub(status.position);
        let lag_seconds = if lag_events == 0 {
            0.0
        } else {
            let next = state
                .store
                .read_all(status.position, 1)
                .await
                .map_err(unavailable)?;
            next.first()
                .map(|envelope| {
                    (Utc::now() - envelope.occurred_at)
                        .num_milliseconds()
                        .max(0) as f64
                        / 1000.0
                })
                .unwrap_or(0.0)
        };
        items.push(ProjectionStatus {
            parked: parked.get(&status.name).copied().unwrap_or(0),
            name: status.name,
            state: status.state,
            generation: status.generation,
            rebuild: status.rebuild,
            position: status.position,
            lag_events,
            lag_seconds,
            last_error: status.last_error,
        });
    }
    Ok(axum::Json(ProjectionList { head, items }))
}

/// The parked events of one view (admin only).
#[utoipa::path(get, path = "/api/admin/projections/{view}/parked", tag = "operations",
    params(("view" = String, Path, description = "A projector's name, as `GET /api/admin/projections` lists it")),
    responses((status = 200, body = ParkedList), (status = 401, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn parked(
    State(state): State<AdminState>,
    user: AuthUser,
    Path(view): Path<String>,
) -> Result<axum::Json<ParkedList>, Problem> {
    user.require(&[Role::Admin])?;
    let items = state
        .parking
        .list(&view)
        .await
        .map_err(parking_unavailable)?;
    Ok(axum::Json(ParkedList { items }))
}

/// Asks the projector of `view` to apply the failed event at `position` again; when it
/// applies, the product's events parked behind it follow in order (admin only).
#[utoipa::path(post, path = "/api/admin/projections/{view}/parked/{position}/retry", tag = "operations",
    params(("view" = String, Path, description = "A projector's name"),
        ("position" = u64, Path, description = "The parked event's position")),
    responses((status = 202, description = "The running projector acts on it within a second; the parked list shows the outcome"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No failed event of this view at this position (or a position that is not an integer)", body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AdminState>,
    user: AuthUser,
    Path((view, position)): Path<(String, u64)>,
) -> Result<Response, Problem> {
    request(&state, &user, &view, position, ParkedAction::Retry).await
}

/// Asks the projector of `view` to pass over the failed event at `position` (the decision is
/// recorded, with who took it); the product's events parked behind it follow (admin only).
#[utoipa::path(post, path = "/api/admin/projections/{view}/parked/{position}/skip", tag = "operations",
    params(("view" = String, Path, description = "A projector's name"),
        ("position" = u64, Path, description = "The parked event's position")),
    responses((status = 202, description = "The running projector acts on it within a second; the parked list shows the outcome"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No failed event of this view at this position (or a position that is not an integer)", body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn skip(
    State(state): State<AdminState>,
    user: AuthUser,
    Path((view, position)): Path<(String, u64)>,
) -> Result<Response, Problem> {
    request(&state, &user, &view, position, ParkedAction::Skip).await
}

async fn request(
    state: &AdminState,
    user: &AuthUser,
    view: &str,
    position: u64,
    action: ParkedAction,
) -> Result<Response, Problem> {
    user.require(&[Role::Admin])?;
    let by = format!("admin {}", user.email);
    let found = state
        .parking
        .request(view, position, action, &by)
        .await
        .map_err(parking_unavailable)?;
    if !found {
        return Err(Problem::not_found(format!(
            "view {view:?} has no failed event at position {position}"
        )));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Asks the projector of `view` to rebuild it blue/green: the next generation is built from
/// the event store beside the live one, which keeps serving, then readers switch to it at
/// once (admin only).
#[utoipa::path(post, path = "/api/admin/projections/{view}/rebuild", tag = "operations",
    params(("view" = String, Path, description = "A projector's name, as `GET /api/admin/projections` lists it")),
    responses((status = 202, description = "The running projector starts within a second; `GET /api/admin/projections` shows the progress (`rebuild`) and then the new `generation`"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No such view", body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn rebuild(
    State(state): State<AdminState>,
    user: AuthUser,
    Path(view): Path<String>,
) -> Result<Response, Problem> {
    request_view(&state, &user, &view, ViewAction::Rebuild).await
}

/// Asks the projector of `view` to stop applying events (they wait on the bus; readers keep
/// reading what it holds) until resumed (admin only).
#[utoipa::path(post, path = "/api/admin/projections/{view}/pause", tag = "operations",
    params(("view" = String, Path, description = "A projector's name")),
    responses((status = 202, description = "The running projector pauses within a second (state `paused`)"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No such view", body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn pause(
    State(state): State<AdminState>,
    user: AuthUser,
    Path(view): Path<String>,
) -> Result<Response, Problem> {
    request_view(&state, &user, &view, ViewAction::Pause).await
}

/// Asks a paused projector of `view` to apply events again, from where it stopped (admin only).
#[utoipa::path(post, path = "/api/admin/projections/{view}/resume", tag = "operations",
    params(("view" = String, Path, description = "A projector's name")),
    responses((status = 202, description = "The running projector resumes within a second"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No such view", body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn resume(
    State(state): State<AdminState>,
    user: AuthUser,
    Path(view): Path<String>,
) -> Result<Response, Problem> {
    request_view(&state, &user, &view, ViewAction::Resume).await
}

async fn request_view(
    state: &AdminState,
    user: &AuthUser,
    view: &str,
    action: ViewAction,
) -> Result<Response, Problem> {
    user.require(&[Role::Admin])?;
    if !super::PROJECTORS.contains(&view) {
        return Err(Problem::not_found(format!(
            "there is no view {view:?} (the views: {})",
            super::PROJECTORS.join(", ")
        )));
    }
    let by = format!("admin {}", user.email);
    state
        .parking
        .request_view(view, action, &by)
        .await
        .map_err(parking_unavailable)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The admin routes of the command role: projector statuses from PostgreSQL heartbeats in the
/// distributed mode, from the projectors of this process (`local`) in the embedded one.
pub fn mount(
    engines: &crate::engines::Engines,
    verifier: Arc<TokenVerifier>,
    local: &[Projector],
) -> super::Mounted {
    let statuses = match engines.postgres() {
        Some(database) => StatusSource::Postgres(database.pool().clone()),
        None => StatusSource::Local(local.to_vec()),
    };
    let state = AdminState {
        statuses,
        store: engines.store.clone(),
        parking: engines.parking(),
        verifier,
    };
    use axum::routing::{get, post};
    super::Mounted {
        router: axum::Router::new()
            .route("/api/admin/projections", get(projections))
            .route("/api/admin/projections/{view}/parked", get(parked))
            .route(
                "/api/admin/projections/{view}/parked/{position}/retry",
                post(retry),
            )
            .route(
                "/api/admin/projections/{view}/parked/{position}/skip",
                post(skip),
            )
            .route("/api/admin/projections/{view}/rebuild", post(rebuild))
            .route("/api/admin/projections/{view}/pause", post(pause))
            .route("/api/admin/projections/{view}/resume", post(resume))
            .with_state(state),
        ..super::Mounted::default()
    }
}
