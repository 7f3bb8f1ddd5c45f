//! The request guard every service shares: who the client is ([`crate::client`]), whether it is
//! over its rate limit ([`crate::rate_limit`]), a client's request id kept only when it is
//! short and printable, and the security headers on every response.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;

use crate::client::{resolve_client, TrustedProxies};
use crate::rate_limit::{add_headers, Admission, Decision, Limiter};

/// The longest client request id kept (echoed and stored as the events' `correlation_id`).
pub const MAX_REQUEST_ID_LENGTH: usize = 128;

/// How the shared layers treat clients.
#[derive(Clone, Default)]
pub struct HttpPolicy {
    pub proxies: TrustedProxies,
    pub limiter: Option<Limiter>,
}

/// The security headers of every response that does not set its own (the API reference page
/// sets a Content-Security-Policy that lets its own script run).
pub fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ),
    ]
}

/// Whether a client's `X-Request-Id` is kept: 1 to 128 visible ASCII characters.
pub fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LENGTH
        && bytes.iter().all(|byte| (0x21..=0x7e).contains(byte))
}

/// Drops an unacceptable `X-Request-Id` so the request-id layer makes one.
pub fn sanitize_request_id(request: &mut Request) {
    let header = &crate::middleware::X_REQUEST_ID;
    let unacceptable = request
        .headers()
        .get_all(header)
        .iter()
        .enumerate()
        .any(|(index, value)| index > 0 || !acceptable_request_id(value));
    if unacceptable {
        request.headers_mut().remove(header);
    }
}

/// Client resolution and rate limits as one tower layer.
#[derive(Clone)]
pub struct GuardLayer {
    policy: Arc<HttpPolicy>,
}

impl GuardLayer {
    pub fn new(policy: HttpPolicy) -> Self {
        GuardLayer {
            policy: Arc::new(policy),
        }
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    policy: Arc<HttpPolicy>,
}

type BoxedAnswer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
>;

impl<S> tower::Service<Request> for Guard<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxedAnswer;

    fn poll_ready(
        &mut self,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        resolve_client(&self.policy.proxies, &mut request);
        let admission = match &self.policy.limiter {
            Some(limiter) => limiter.admission(&request),
            None => Admission::Decided(Ok(None)),
        };
        match admission {
            Admission::Decided(Err(response)) => Box::pin(std::future::ready(Ok(*response))),
            Admission::Decided(Ok(decision)) => with_headers(self.inner.call(request), decision),
            Admission::Ask(pending) => {
                // The service that was polled ready answers this request; the clone waits
                // for the next one.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    match pending.settle().await {
                        Err(response) => Ok(*response),
                        Ok(decision) => with_headers(inner.call(request), decision).await,
                    }
                })
            }
        }
    }
}

/// The inner answer with the rate-limit headers of `decision`, when there is one.
fn with_headers<F>(answer: F, decision: Option<Decision>) -> BoxedAnswer
where
    F: std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static,
{
    Box::pin(async move {
        let mut response = answer.await?;
        if let Some(decision) = decision {
            add_headers(response.headers_mut(), &decision);
        }
        Ok(response)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_request_ids_are_kept() {
        assert!(acceptable_request_id(&HeaderValue::from_static(
            "abc-123_X.y"
        )));
        assert!(!acceptable_request_id(&HeaderValue::from_static("")));
        assert!(!acceptable_request_id(&HeaderValue::from_static(
            "has space"
        )));
        let long = "a".repeat(MAX_REQUEST_ID_LENGTH + 1);
        assert!(!acceptable_request_id(
            &HeaderValue::from_str(&long).expect("value")
        ));
    }
}
