//! The write side: the product aggregate, command handling, accounts, idempotency keys, the
//! auth endpoints and the command HTTP routes.
//!
//! - [`commands`]: the commands (`CreateProduct`, `ChangePrice`, `AdjustStock`, `SetSynonyms`,
//!   …), made of the value types of `events::values`.
//! - [`aggregate`]: the product, category and search-settings aggregates: given their events,
//!   which events a command produces, or why it is refused.
//! - [`validation`]: request bodies → commands, with per-field errors.
//! - [`service`]: load, decide, append (optimistic concurrency), publish.
//! - [`accounts`]: account rules and creation, the user and session ports and their adapters
//!   (SQLite, PostgreSQL, Redis); [`idempotency`]: `Idempotency-Key`, its port and adapters.
//! - The event store and the outbox live in the `event-store` crate.
//! - [`routes`]: the HTTP handlers; [`router`] puts them together.

pub mod accounts;
pub mod aggregate;
pub mod commands;
pub mod idempotency;
pub mod routes;
pub mod service;
pub mod validation;

use std::sync::Arc;

use auth::rotation::SharedSigner;
use auth::TokenVerifier;
use axum::extract::FromRef;
use axum::routing::{get, post, put};
use axum::Router;

use crate::accounts::throttle::{LoginThrottle, PasswordGate, ThrottlePolicy};
use crate::accounts::{SessionStore, UserStore};
use crate::idempotency::{IdempotencyLayerState, IdempotencyStore};
use crate::service::CommandService;

/// Everything the command handlers share.
#[derive(Clone)]
pub struct CommandState {
    pub commands: Arc<CommandService>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub signer: Arc<SharedSigner>,
    pub verifier: Arc<TokenVerifier>,
    pub login: Arc<LoginGuard>,
    pub images: Arc<ImageUploads>,
}

/// Where uploaded images go, and the gate that bounds their decoding (CPU and memory heavy):
/// a few at a time on the blocking pool, a few more waiting, the rest refused with 503.
pub struct ImageUploads {
    pub store: Arc<dyn images::ImageStore>,
    pub gate: PasswordGate,
}

impl ImageUploads {
    /// Two decodes at once whatever the machine (one may need most of a gigabyte: a
    /// 40-megapixel source, its upright copy and the resize's buffers), four waiting up to 10 s.
    pub fn new(store: Arc<dyn images::ImageStore>) -> Self {
        ImageUploads {
            store,
            gate: PasswordGate::new(2, 4, std::time::Duration::from_secs(10)),
        }
    }
}

/// What stands before a password check: the failed-login throttle and the gate that bounds
/// concurrent Argon2 work.
pub struct LoginGuard {
    pub policy: ThrottlePolicy,
    pub throttle: Arc<dyn LoginThrottle>,
    pub gate: PasswordGate,
}

impl FromRef<CommandState> for Arc<TokenVerifier> {
    fn from_ref(state: &CommandState) -> Self {
        state.verifier.clone()
    }
}

/// The command-api routes (API.md: every non-GET method under `/api/products` and
/// `/api/categories`, `PUT /api/search/synonyms`, all of `/api/auth`, and the JWKS).
pub fn router(state: CommandState) -> Router {
    use routes::{auth as auth_routes, categories, images, products, search, session};
    let layer_with_limit = |claimed: bool, body_limit_bytes: usize| {
        axum::middleware::from_fn_with_state(
            IdempotencyLayerState {
                store: state.idempotency.clone(),
                verifier: state.verifier.clone(),
                claimed,
                body_limit_bytes,
            },
            idempotency::idempotency,
        )
    };
    let layer = |claimed: bool| layer_with_limit(claimed, web::middleware::BODY_LIMIT_BYTES);
    // Commands whose events take the request's claim (a retried key runs again, safely).
    let claimed = Router::new()
        .route("/api/products", post(products::create_product))
        .route("/api/products/{id}/stock", post(products::adjust_stock))
        .route("/api/products/{id}/sales", post(products::record_sale))
        .route("/api/products/{id}/publish", post(products::publish))
        .route("/api/products/{id}/unpublish", post(products::unpublish))
        .route_layer(layer(true));
    // Image uploads take up to 10 MiB (the others 1 MiB).
    let uploads = Router::new()
        .route("/api/products/{id}/images", post(images::upload_image))
        .route_layer(layer_with_limit(true, images::MAX_IMAGE_BYTES))
        .layer(axum::extract::DefaultBodyLimit::max(
            images::MAX_IMAGE_BYTES,
        ));
    let commands = Router::new()
        .route("/api/products/bulk", post(products::bulk_create))
        .route(
            "/api/products/{id}",
            axum::routing::patch(products::change_details).delete(products::archive),
        )
        .route("/api/products/{id}/price", put(products::change_price))
        .route("/api/categories", post(categories::create_category))
        .route("/api/search/synonyms", put(search::set_synonyms))
        .route("/api/auth/users", post(auth_routes::create_user))
        .route(
            "/api/products/{id}/images/{image_id}",
            axum::routing::delete(images::remove_image),
        )
        .route_layer(layer(false))
        .merge(claimed)
        .merge(uploads);
    Router::new()
        .merge(commands)
        .route("/api/auth/login", post(auth_routes::login))
        .route("/api/auth/refresh", post(auth_routes::refresh))
        .route("/api/auth/logout", post(auth_routes::logout))
        .route("/api/auth/me", get(auth_routes::me))
        .route(
            "/api/auth/session",
            post(session::start).delete(session::end),
        )
        .route("/api/auth/session/refresh", post(session::refresh))
        .route("/.well-known/jwks.json", get(auth_routes::jwks))
        .with_state(state)
}
