//! The `AuthUser` extractor: a verified bearer token, or a 401 problem.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;
use web::Problem;

use crate::keys::TokenVerifier;
use crate::Role;

/// The caller, from a valid `Authorization: Bearer <JWT>`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// When the token expires (Unix seconds): what it allows ends then.
    pub expires_at: i64,
}

impl AuthUser {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let wanted: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
        Err(Problem::forbidden(format!(
            "this needs the role {}; you have {}",
            wanted.join(" or "),
            self.role
        )))
    }

    /// The caller from the request headers: `Ok(None)` without an Authorization header.
    pub fn from_headers(
        headers: &axum::http::HeaderMap,
        verifier: &TokenVerifier,
    ) -> Result<Option<AuthUser>, Problem> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        let text = value
            .to_str()
            .map_err(|_| Problem::unauthorized("the Authorization header is not valid text"))?;
        let token = bearer_token(text)
            .ok_or_else(|| Problem::unauthorized("expected Authorization: Bearer <token>"))?;
        let claims = verifier
            .verify(token)
            .map_err(|_| Problem::unauthorized("the access token is invalid or expired"))?;
        Ok(Some(AuthUser {
            id: claims.sub,
            email: claims.email,
            role: claims.role,
            expires_at: claims.exp,
        }))
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 §11.1).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The subject of a request's valid bearer token (for rate limits per authenticated client).
pub fn verified_subject(
    headers: &axum::http::HeaderMap,
    verifier: &TokenVerifier,
) -> Option<String> {
    let text = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let claims = verifier.verify(bearer_token(text)?).ok()?;
    Some(claims.sub.to_string())
}

/// Writes the one `FromRequestParts` impl of a bearer-token extractor: the verifier from the
/// state, the caller from the Authorization header (401 without one), then `$accept`, which
/// turns the verified `$user` into the extractor or rejects it.
macro_rules! bearer_extractor {
    ($extractor:ty, |$user:ident| $accept:expr) => {
        impl<S> FromRequestParts<S> for $extractor
        where
            S: Send + Sync,
            Arc<TokenVerifier>: FromRef<S>,
        {
            type Rejection = Problem;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                let verifier = Arc::<TokenVerifier>::from_ref(state);
                let $user =
                    AuthUser::from_headers(&parts.headers, &verifier)?.ok_or_else(|| {
                        Problem::unauthorized("this needs Authorization: Bearer <access token>")
                    })?;
                $accept
            }
        }
    };
}

bearer_extractor!(AuthUser, |user| Ok(user));

/// The caller, who must have the role `admin`: 401 without a valid token, 403 with another
/// role. As an extractor placed before the body, it answers those before any body is read, so
/// a caller without the right to write never learns how the body would have been judged.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminUser(pub AuthUser);

bearer_extractor!(AdminUser, |user| {
    user.require(&[Role::Admin])?;
    Ok(AdminUser(user))
});
