//! `GET /api/admin/projections`: each projector's position, lag and state.

use std::sync::Arc;

use auth::{AuthUser, Role, TokenVerifier};
use axum::extract::{FromRef, State};
use chrono::Utc;
use events::store::EventStore;
use projectors::runner::Projector;
use serde::Serialize;
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
    /// `starting`, `catching-up`, `live`, `failing`, or `stopped` (no heartbeat lately).
    pub state: String,
    pub position: u64,
    /// Events in the store the projector has not applied yet.
    pub lag_events: u64,
    /// Age of the oldest event not yet applied (0 when caught up).
    pub lag_seconds: f64,
    pub last_error: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectionList {
    pub head: u64,
    pub items: Vec<ProjectionStatus>,
}

/// Each projector's position, lag in events and seconds, and state (admin only).
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
            name: status.name,
            state: status.state,
            position: status.position,
            lag_events,
            lag_seconds,
            last_error: status.last_error,
        });
    }
    Ok(axum::Json(ProjectionList { head, items }))
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
        verifier,
    };
    super::Mounted {
        router: axum::Router::new().route(
            "/api/admin/projections",
            axum::routing::get(projections).with_state(state),
        ),
        ..super::Mounted::default()
    }
}
