//! `/api/auth/session`: the admin console's login, a cookie session over the same accounts and
//! refresh-token rotation as `/api/auth/login` and `/api/auth/refresh`.
//!
//! The page keeps the short-lived access token in memory only; the refresh token lives in a
//! cookie that scripts cannot read (`HttpOnly`), that is sent over HTTPS or to loopback only
//! (`Secure`; browsers treat `http://127.0.0.1` and `localhost` as secure), only to these three
//! routes (`Path=/api/auth/session`) and never with a request started by another site
//! (`SameSite=Strict`). On top of SameSite, every call must carry `X-Catalog-CSRF: 1`: a header a
//! cross-origin page cannot add without a CORS preflight, which this server never grants, so a
//! forged form post or an old browser that ignores SameSite still cannot use the cookie.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use web::extract::Json;
use web::Problem;

use super::auth::{authenticate, issue_pair, rotate_session, ClientAddr, REFRESH_TOKEN_LIFETIME};
use super::schemas::{SessionToken, TokenPair};
use crate::CommandState;

/// The cookie that carries the console's refresh token.
pub const SESSION_COOKIE: &str = "catalog_refresh";
/// The header every session call must carry (with the value `1`).
pub const CSRF_HEADER: &str = "x-catalog-csrf";

fn require_csrf_header(headers: &HeaderMap) -> Result<(), Problem> {
    match headers.get(CSRF_HEADER) {
        Some(value) if value.as_bytes() == b"1" => Ok(()),
        _ => Err(Problem::forbidden(
            "session calls must carry the header X-Catalog-CSRF: 1",
        )),
    }
}

/// The refresh token in the request's `Cookie` headers, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

fn cookie(value: &str, max_age_seconds: u64) -> HeaderValue {
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/api/auth/session; Max-Age={max_age_seconds}; \
         HttpOnly; Secure; SameSite=Strict"
    );
    // The value is a base64url secret or empty: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn answer(pair: TokenPair) -> Response {
    let set_cookie = cookie(&pair.refresh_token, REFRESH_TOKEN_LIFETIME.as_secs());
    let body = SessionToken {
        access_token: pair.access_token,
        token_type: pair.token_type,
        expires_in: pair.expires_in,
    };
    (
        [
            (header::SET_COOKIE, set_cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        axum::Json(body),
    )
        .into_response()
}

/// Log in to a cookie session (the admin console): the access token in the body, the refresh
/// token in an `HttpOnly; Secure; SameSite=Strict` cookie for `/api/auth/session` only.
///
/// The same checks and failed-login back-off as `POST /api/auth/login`.
#[utoipa::path(post, path = "/api/auth/session", tag = "auth", request_body = super::schemas::LoginInput,
    params(("X-Catalog-CSRF" = String, Header, description = "Must be `1`.")),
    responses((status = 200, description = "Logged in; `Set-Cookie: catalog_refresh=…`", body = SessionToken),
        (status = 401, description = "Wrong email or password", body = Problem),
        (status = 403, description = "No `X-Catalog-CSRF: 1` header", body = Problem),
        (status = 422, body = Problem), (status = 429, description = "Too many failed logins or requests", body = Problem),
        (status = 503, description = "Too many password checks at once", body = Problem)))]
pub async fn start(
    State(state): State<CommandState>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, Problem> {
    require_csrf_header(&headers)?;
    let user = authenticate(&state, address, &body).await?;
    Ok(answer(issue_pair(&state, &user).await?))
}

/// A new access token for the cookie session; the cookie's refresh token is rotated (reuse of
/// a rotated one revokes the session, as with `POST /api/auth/refresh`). Without a session
/// cookie, 204: there is no session to refresh, which a page asks at every load (not an error
/// for the browser to report).
#[utoipa::path(post, path = "/api/auth/session/refresh", tag = "auth",
    params(("X-Catalog-CSRF" = String, Header, description = "Must be `1`.")),
    responses((status = 200, description = "A new access token; `Set-Cookie` with the rotated refresh token", body = SessionToken),
        (status = 204, description = "No session cookie: log in"),
        (status = 401, description = "An invalid, expired or reused session cookie", body = Problem),
        (status = 403, description = "No `X-Catalog-CSRF: 1` header", body = Problem)))]
pub async fn refresh(
    State(state): State<CommandState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_csrf_header(&headers)?;
    let Some(old) = session_cookie(&headers) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    match rotate_session(&state, &old).await {
        Ok(pair) => Ok(answer(pair)),
        // A dead session's cookie is cleared, so the next load is a plain "no session" (204)
        // and not this 401 again; an unavailable store keeps it for the retry.
        Err(problem) if problem.status == StatusCode::UNAUTHORIZED.as_u16() => {
            let mut response = problem.into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie("", 0));
            Ok(response)
        }
        Err(problem) => Err(problem),
    }
}

/// End the cookie session: its refresh token is revoked and the cookie cleared.
#[utoipa::path(delete, path = "/api/auth/session", tag = "auth",
    params(("X-Catalog-CSRF" = String, Header, description = "Must be `1`.")),
    responses((status = 204, description = "Logged out (also without a session)"),
        (status = 403, description = "No `X-Catalog-CSRF: 1` header", body = Problem)))]
pub async fn end(
    State(state): State<CommandState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    require_csrf_header(&headers)?;
    if let Some(token) = session_cookie(&headers) {
        state
            .sessions
            .revoke(&::auth::tokens::hash_secret(&token))
            .await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie("", 0))],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; catalog_refresh=xyz; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("xyz"));
        let mut empty = HeaderMap::new();
        empty.append(header::COOKIE, HeaderValue::from_static("catalog_refresh="));
        assert_eq!(session_cookie(&empty), None);
    }

    #[test]
    fn the_cookie_is_http_only_secure_strict_and_scoped_to_the_session_routes() {
        let text = cookie("abc", 60);
        let text = text.to_str().unwrap_or_default();
        for part in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/api/auth/session",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
    }
}
