//! Accounts: the rules an account must meet, creating one, and the ports behind authentication
//! (users and refresh-token sessions) with their adapters, one folder or file per engine.
//!
//! The HTTP handlers (`routes::auth`), `catalog users create` and the first-admin bootstrap all
//! create accounts through [`create_account`]; none of them restates the rules.

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod postgres;
pub mod redis;
pub mod redis_throttle;
mod sql;
pub mod sqlite;
pub mod throttle;

use async_trait::async_trait;
use auth::password::hash_password;
use auth::Role;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A stored account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    /// Lower-cased; unique.
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("a user with this email exists")]
    DuplicateEmail,
    /// The refresh token is unknown, expired or its session is revoked.
    #[error("the refresh token is not valid")]
    InvalidToken,
    /// An already rotated refresh token was presented again: its session is now revoked.
    #[error("the refresh token was already used; the session is revoked")]
    TokenReused,
    #[error("account store unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected account store error: {0}")]
    Unexpected(String),
}

impl From<events::store::StoreError> for AccountError {
    fn from(error: events::store::StoreError) -> Self {
        match error {
            events::store::StoreError::Unavailable(message) => AccountError::Unavailable(message),
            other => AccountError::Unexpected(other.to_string()),
        }
    }
}

/// Users by id and email. Contract, checked by the `conformance` suite (feature `testsuite`):
/// what `create` stored, `by_id` and `by_email` give back as it was (times to the microsecond).
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user; [`AccountError::DuplicateEmail`] when the email is taken.
    async fn create(&self, user: &User) -> Result<(), AccountError>;
    /// The user with this (lower-cased) email.
    async fn by_email(&self, email: &str) -> Result<Option<User>, AccountError>;
    /// The user with this id.
    async fn by_id(&self, id: Uuid) -> Result<Option<User>, AccountError>;
}

/// One use of a refresh token: `old_hash` presented at `now`, to be exchanged for `new_hash`,
/// which then lives until `expires_at`.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Refresh-token sessions. Tokens are stored as hashes only.
///
/// Contract, checked by the `conformance` suite (feature `testsuite`): a token is valid until
/// it expires or is used once; using it rotates it (the next one is stored in the same
/// session). Presenting a used token again revokes the whole session, so a stolen token that
/// races its owner ends both. Of concurrent rotations with one token, exactly one succeeds.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Starts a session for `user_id` with its first refresh token.
    async fn start(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), AccountError>;
    /// Exchanges `old_hash` for `new_hash` and returns the session's user id.
    async fn rotate(&self, rotation: Rotation<'_>) -> Result<Uuid, AccountError>;
    /// Revokes the session holding `token_hash`; unknown tokens are ignored.
    async fn revoke(&self, token_hash: &str) -> Result<(), AccountError>;
    /// Forgets tokens that expired before `now` and sessions left without a token; returns
    /// how many tokens went. (Redis expires its keys itself.)
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, AccountError> {
        let _ = now;
        Ok(0)
    }
}

/// An email as the API accepts it (API.md: at most 254 characters, one `@`, no white space or
/// control characters, not even around it), with a local part of 1 to 64 characters and a
/// domain that can receive mail: dotted labels (`example.com`) or `localhost`. The OpenAPI
/// document's `NewUserInput.email` pattern says the same.
pub fn check_email(email: &str) -> Result<(), String> {
    let valid = email.chars().count() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.chars().count() <= 64
                && !domain.contains('@')
                && (domain.eq_ignore_ascii_case("localhost")
                    || (domain.contains('.') && domain.split('.').all(|label| !label.is_empty())))
        });
    if valid {
        Ok(())
    } else {
        Err("must be an email address".into())
    }
}

/// A password as the API accepts it: 8 to 1,024 characters, at least 5 different ones (so
/// `aaaaaaaa` or `12121212` are refused).
pub fn check_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if !(8..=1024).contains(&length) {
        return Err("must be 8 to 1024 characters".into());
    }
    let distinct: std::collections::HashSet<char> = password.chars().collect();
    if distinct.len() < 5 {
        return Err("must have at least 5 different characters".into());
    }
    Ok(())
}

/// Hashes the password and stores a new user (email lower-cased).
pub async fn create_account(
    users: &dyn UserStore,
    email: &str,
    password: &str,
    role: Role,
) -> Result<User, AccountError> {
    let password = password.to_owned();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|error| AccountError::Unexpected(format!("password hashing stopped: {error}")))?
        .map_err(|error| AccountError::Unexpected(format!("password hashing failed: {error}")))?;
    let user = User {
        id: Uuid::now_v7(),
        email: email.trim().to_lowercase(),
        password_hash,
        role,
        created_at: Utc::now(),
    };
    users.create(&user).await?;
    Ok(user)
}
