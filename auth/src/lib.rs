//! Authentication and authorisation shared by every service.
//!
//! - [`keys`]: the Ed25519 signing key, access-token signing and local verification, JWKS.
//! - [`password`]: Argon2id hashing.
//! - [`extract`]: the `AuthUser` axum extractor and role checks.
//! - [`rotation`]: staging and promoting a new signing key; the signer running processes
//!   re-read.
//! - [`tokens`]: opaque refresh-token secrets and their hashes.

pub mod extract;
pub mod keys;
pub mod password;
pub mod rotation;
pub mod tokens;

use serde::{Deserialize, Serialize};

pub use extract::{AdminUser, AuthUser};
pub use keys::{Claims, TokenSigner, TokenVerifier};

/// What a user may do. `admin` writes the catalog and manages users; `analyst` reads the event
/// stream and analytics; `shopper` reads the catalog (which is public anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Analyst,
    Shopper,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Shopper => "shopper",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "shopper" => Some(Role::Shopper),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Errors of the auth building blocks.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
}
