//! `/api/auth/*` and `/.well-known/jwks.json`.

use std::net::IpAddr;
use std::time::Duration;

use ::auth::password::{verify_against_dummy, verify_password};
use ::auth::tokens::{hash_secret, new_secret};
use ::auth::{AdminUser, AuthUser, Role};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;
use web::client::ClientIp;
use web::extract::Json;
use web::{FieldErrors, Problem};

use super::schemas::{LoginInput, NewUserInput, RefreshInput, TokenPair, UserOutput};
use crate::accounts::throttle::{AttemptKeys, MAX_EMAIL_LENGTH};
use crate::accounts::{check_email, check_password, create_account, AccountError, Rotation, User};
use crate::CommandState;

/// How long a refresh token (and so an idle session) lives.
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

impl From<AccountError> for Problem {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::DuplicateEmail => {
                Problem::conflict("duplicate-email", "a user with this email exists")
            }
            AccountError::InvalidToken => {
                Problem::unauthorized("the refresh token is invalid or expired")
            }
            AccountError::TokenReused => Problem::unauthorized(
                "the refresh token was already used; its session is revoked, log in again",
            ),
            AccountError::Unavailable(message) => {
                tracing::warn!(error = %message, "account store unavailable");
                Problem::unavailable(1, "the account store is unavailable; retry shortly")
            }
            AccountError::Unexpected(message) => Problem::internal_logged(&message),
        }
    }
}

/// The client's address as the shared layers resolved it (behind trusted proxies, the one they
/// name); `None` without a connection (a router called directly in a test).
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts.extensions.get::<ClientIp>().map(|client| client.0),
        ))
    }
}

/// The longest password accepted (1,024 characters of up to 4 bytes).
const MAX_PASSWORD_BYTES: usize = 4 * 1024;

fn required_string(body: &Value, field: &str, errors: &mut FieldErrors) -> String {
    match body.get(field) {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        Some(Value::String(_)) | None => {
            errors
                .entry(field.to_owned())
                .or_default()
                .push("is required".to_owned());
            String::new()
        }
        Some(_) => {
            errors
                .entry(field.to_owned())
                .or_default()
                .push("must be a string".to_owned());
            String::new()
        }
    }
}

fn object_body(body: &Value) -> Result<(), Problem> {
    if body.is_object() {
        Ok(())
    } else {
        Err(Problem::invalid_field("body", "must be a JSON object"))
    }
}

pub(crate) async fn issue_pair(state: &CommandState, user: &User) -> Result<TokenPair, Problem> {
    let refresh_token = new_secret();
    let expires_at = Utc::now() + REFRESH_TOKEN_LIFETIME;
    state
        .sessions
        .start(user.id, &hash_secret(&refresh_token), expires_at)
        .await?;
    pair(state, user, refresh_token)
}

fn pair(state: &CommandState, user: &User, refresh_token: String) -> Result<TokenPair, Problem> {
    let access_token = state
        .signer
        .issue(user.id, &user.email, user.role)
        .map_err(|error| Problem::internal_logged(&error))?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer".to_owned(),
        expires_in: state.signer.lifetime_seconds(),
    })
}

/// Log in with email and password.
///
/// Failed logins back off per account and address (waits doubling from 1 s after 3 wrong
/// passwords), per address and, after many failures from many addresses, per account; the
/// attempt is counted before the password is checked. Password checks run a few at a time:
/// beyond that, 503 with `Retry-After`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginInput,
    responses((status = 200, body = TokenPair), (status = 401, description = "Wrong email or password", body = Problem),
        (status = 422, body = Problem), (status = 429, description = "Too many failed logins or requests", body = Problem),
        (status = 503, description = "Too many password checks at once", body = Problem)))]
pub async fn login(
    State(state): State<CommandState>,
    ClientAddr(address): ClientAddr,
    Json(body): Json<Value>,
) -> Result<axum::Json<TokenPair>, Problem> {
    let user = authenticate(&state, address, &body).await?;
    Ok(axum::Json(issue_pair(&state, &user).await?))
}

/// The user whose email and password `body` carries, with the failed-login back-off of
/// [`login`]; shared by the token login and the console's cookie session.
pub(crate) async fn authenticate(
    state: &CommandState,
    address: Option<IpAddr>,
    body: &Value,
) -> Result<User, Problem> {
    object_body(body)?;
    let mut errors = FieldErrors::new();
    let email = required_string(body, "email", &mut errors);
    // Before anything else: an email is never longer than this, and a longer one is not
    // kept anywhere (not even as a throttle key).
    if email.chars().count() > MAX_EMAIL_LENGTH {
        errors
            .entry("email".to_owned())
            .or_default()
            .push(format!("must be at most {MAX_EMAIL_LENGTH} characters"));
    }
    let password = required_string(body, "password", &mut errors);
    if password.len() > MAX_PASSWORD_BYTES {
        errors
            .entry("password".to_owned())
            .or_default()
            .push("must be 8 to 1024 characters".to_owned());
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let email = email.trim().to_lowercase();
    let attempt = AttemptKeys::new(&state.login.policy, &email, address);
    if let Err(wait) = state.login.throttle.begin(&attempt).await? {
        metrics::counter!("catalog_auth_throttled_logins_total").increment(1);
        return Err(Problem::too_many_requests(
            wait.as_secs_f64().ceil().max(1.0) as u64,
            "too many failed logins; wait before trying again",
        ));
    }
    let user = state.users.by_email(&email).await?;
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    let verified = state
        .login
        .gate
        .run(move || match hash {
            Some(hash) => verify_password(&password, &hash),
            None => {
                verify_against_dummy(&password);
                false
            }
        })
        .await
        .map_err(|_| {
            metrics::counter!("catalog_auth_password_checks_refused_total").increment(1);
            Problem::unavailable(1, "too many logins at once; retry in a second")
        })?;
    let Some(user) = user.filter(|_| verified) else {
        metrics::counter!("catalog_auth_failed_logins_total").increment(1);
        return Err(Problem::unauthorized("wrong email or password"));
    };
    state.login.throttle.succeeded(&attempt).await?;
    Ok(user)
}

fn refresh_token(body: &Value) -> Result<String, Problem> {
    object_body(body)?;
    let mut errors = FieldErrors::new();
    let token = required_string(body, "refresh_token", &mut errors);
    if errors.is_empty() {
        Ok(token)
    } else {
        Err(Problem::validation(errors))
    }
}

/// Exchange a refresh token for a new pair; the old token stops working.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshInput,
    responses((status = 200, body = TokenPair), (status = 401, description = "Invalid, expired or reused token", body = Problem), (status = 422, body = Problem)))]
pub async fn refresh(
    State(state): State<CommandState>,
    Json(body): Json<Value>,
) -> Result<axum::Json<TokenPair>, Problem> {
    let old = refresh_token(&body)?;
    Ok(axum::Json(rotate_session(&state, &old).await?))
}

/// A new pair for the session of refresh token `old`, which stops working.
pub(crate) async fn rotate_session(state: &CommandState, old: &str) -> Result<TokenPair, Problem> {
    let next = new_secret();
    let now = Utc::now();
    let user_id = state
        .sessions
        .rotate(Rotation {
            old_hash: &hash_secret(old),
            new_hash: &hash_secret(&next),
            now,
            expires_at: now + REFRESH_TOKEN_LIFETIME,
        })
        .await?;
    let user = state
        .users
        .by_id(user_id)
        .await?
        .ok_or_else(|| Problem::unauthorized("the account no longer exists"))?;
    pair(state, &user, next)
}

/// End the session of a refresh token.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshInput,
    responses((status = 204, description = "Logged out (also for an unknown token)"), (status = 422, body = Problem)))]
pub async fn logout(
    State(state): State<CommandState>,
    Json(body): Json<Value>,
) -> Result<StatusCode, Problem> {
    let token = refresh_token(&body)?;
    state.sessions.revoke(&hash_secret(&token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = UserOutput), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn me(user: AuthUser) -> axum::Json<UserOutput> {
    axum::Json(UserOutput {
        id: user.id,
        email: user.email,
        role: user.role.to_string(),
    })
}

/// Create a user (admin only).
#[utoipa::path(post, path = "/api/auth/users", tag = "auth", request_body = NewUserInput,
    responses((status = 201, body = UserOutput), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "Email taken", body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<CommandState>,
    AdminUser(_caller): AdminUser,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    object_body(&body)?;
    let mut errors = FieldErrors::new();
    let email = required_string(&body, "email", &mut errors);
    let password = required_string(&body, "password", &mut errors);
    let role = required_string(&body, "role", &mut errors);
    if let Some(field) = body.as_object().and_then(|object| {
        object
            .keys()
            .find(|key| !["email", "password", "role"].contains(&key.as_str()))
    }) {
        errors
            .entry(field.clone())
            .or_default()
            .push("is not a known field".to_owned());
    }
    if !email.is_empty() {
        if let Err(message) = check_email(&email) {
            errors.entry("email".into()).or_default().push(message);
        }
    }
    if !password.is_empty() {
        if let Err(message) = check_password(&password) {
            errors.entry("password".into()).or_default().push(message);
        }
    }
    let parsed_role = Role::parse(&role);
    if !role.is_empty() && parsed_role.is_none() {
        errors
            .entry("role".into())
            .or_default()
            .push("must be one of admin, analyst, shopper".into());
    }
    let (true, Some(role)) = (errors.is_empty(), parsed_role) else {
        return Err(Problem::validation(errors));
    };
    let user = create_account(state.users.as_ref(), &email, &password, role).await?;
    let output = UserOutput {
        id: user.id,
        email: user.email,
        role: user.role.to_string(),
    };
    Ok((StatusCode::CREATED, axum::Json(output)).into_response())
}

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JWKS with the Ed25519 public keys", body = Object)))]
pub async fn jwks(State(state): State<CommandState>) -> impl IntoResponse {
    (
        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(state.signer.jwks()),
    )
}
