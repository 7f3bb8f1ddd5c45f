//! What the SQLite and PostgreSQL account adapters share: one text per statement, with `$n`
//! parameters (SQLite reads `$n` as the n-th bound value, as PostgreSQL does) and `TRUE` for
//! flags (SQLite stores it as `1`), the rotation rule, and reading a user's columns. The
//! adapters differ only in the column types they bind and read (text ids, integer seconds and
//! RFC 3339 text in SQLite; `uuid` and `timestamptz` in PostgreSQL).

use auth::Role;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AccountError, User};

pub(super) const INSERT_USER: &str =
    "INSERT INTO users (id, email, password_hash, role, created_at) \
     VALUES ($1, $2, $3, $4, $5)";
pub(super) const USER_BY_EMAIL: &str =
    "SELECT id, email, password_hash, role, created_at FROM users WHERE email = $1";
pub(super) const USER_BY_ID: &str =
    "SELECT id, email, password_hash, role, created_at FROM users WHERE id = $1";

pub(super) const INSERT_SESSION: &str =
    "INSERT INTO sessions (id, user_id, created_at) VALUES ($1, $2, $3)";
pub(super) const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)";
/// Marks the token used first: the write takes the row lock, so of two racing refreshes with
/// one token exactly one affects a row.
pub(super) const MARK_TOKEN_USED: &str =
    "UPDATE refresh_tokens SET used = TRUE WHERE token_hash = $1 AND NOT used";
pub(super) const TOKEN_AND_SESSION: &str =
    "SELECT t.session_id, t.expires_at, s.revoked, s.user_id FROM refresh_tokens t \
     JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1";
pub(super) const REVOKE_SESSION: &str = "UPDATE sessions SET revoked = TRUE WHERE id = $1";
pub(super) const REVOKE_SESSION_OF_TOKEN: &str = "UPDATE sessions SET revoked = TRUE \
     WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)";

pub(super) const PURGE_TOKENS: &str = "DELETE FROM refresh_tokens WHERE expires_at < $1";
pub(super) const PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE NOT EXISTS \
     (SELECT 1 FROM refresh_tokens t WHERE t.session_id = sessions.id)";

pub(super) fn unexpected(error: impl std::fmt::Display) -> AccountError {
    AccountError::Unexpected(error.to_string())
}

/// A user from its columns as either adapter read them.
pub(super) fn user(
    id: Uuid,
    email: String,
    password_hash: String,
    role: &str,
    created_at: DateTime<Utc>,
) -> Result<User, AccountError> {
    Ok(User {
        id,
        email,
        password_hash,
        role: Role::parse(role).ok_or_else(|| unexpected(format!("stored role {role}")))?,
        created_at,
    })
}

/// What `rotate` does with a presented token, once it is marked used (or found used).
#[derive(Debug)]
pub(super) enum RotationOutcome {
    /// Store the next token in the session.
    Rotate,
    /// A rotated token came again: revoke its session (for everyone holding its tokens), then
    /// answer with this error.
    RevokeSession(AccountError),
    /// Refuse without changing anything.
    Refuse,
}

/// The rotation rule: `marked` is whether this call marked the token used (it was unused);
/// `revoked` and `expired` describe the token's session and the token.
pub(super) fn rotation_outcome(marked: bool, revoked: bool, expired: bool) -> RotationOutcome {
    if !marked {
        return RotationOutcome::RevokeSession(if revoked {
            AccountError::InvalidToken
        } else {
            AccountError::TokenReused
        });
    }
    if revoked || expired {
        return RotationOutcome::Refuse;
    }
    RotationOutcome::Rotate
}
