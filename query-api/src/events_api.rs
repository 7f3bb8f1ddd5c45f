//! The analysts' event log over HTTP: `GET /api/events` pages and `GET /api/events/stream`
//! Server-Sent Events (API.md "Analysts").
//!
//! One [`EventFeed`] per process tails the event store and fans each new envelope out,
//! serialised once, through a bounded broadcast ring. A stream first catches up from the store
//! a page at a time (pulled by the client's reads, so nothing piles up), then follows the ring.
//! A client that falls a whole ring behind is dropped with a final `dropped` event naming the
//! position to resume after; the server never buffers more than the ring for it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use events::store::EventStore;
use events::Envelope;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use web::extract::Query;
use web::Problem;

use crate::routes::{given, parse_limit_up_to, QueryProblem, QueryResult};

/// Events per catch-up read of a stream.
const PAGE: usize = 500;

/// One envelope as every stream sends it.
#[derive(Debug)]
pub struct Frame {
    pub position: u64,
    pub event_type: String,
    pub json: String,
}

impl Frame {
    fn of(envelope: &Envelope) -> Frame {
        Frame {
            position: envelope.position,
            event_type: envelope.event_type.clone(),
            // An envelope is plain data: serialising it cannot fail.
            json: serde_json::to_string(envelope).unwrap_or_default(),
        }
    }

    fn event(&self) -> Event {
        Event::default()
            .id(self.position.to_string())
            .event(&self.event_type)
            .data(&self.json)
    }
}

/// Settings of the event feed.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Envelopes the live ring holds; a stream further behind than this is dropped.
    pub ring: usize,
    /// How often the tailer looks for new events.
    pub poll: Duration,
    /// Comment lines on an idle stream, so proxies do not cut it.
    pub keep_alive: Duration,
    /// Streams one user may hold open at once.
    pub streams_per_user: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            ring: 4096,
            poll: Duration::from_millis(100),
            keep_alive: Duration::from_secs(15),
            streams_per_user: 4,
        }
    }
}

/// The event log as analysts read it.
pub struct EventFeed {
    store: Arc<dyn EventStore>,
    live: broadcast::Sender<Arc<Frame>>,
    config: FeedConfig,
    /// Set at shutdown: every stream ends.
    closing: tokio::sync::watch::Sender<bool>,
    /// Open streams per user.
    open: web::slots::Slots<uuid::Uuid>,
}

type StreamSlot = web::slots::Slot<uuid::Uuid>;

impl EventFeed {
    /// A feed over `store`; call [`EventFeed::follow`] to start the live tail.
    pub fn new(store: Arc<dyn EventStore>, config: FeedConfig) -> Arc<Self> {
        let (live, _) = broadcast::channel(config.ring.max(1));
        Arc::new(EventFeed {
            store,
            live,
            config,
            closing: tokio::sync::watch::Sender::new(false),
            open: web::slots::Slots::default(),
        })
    }

    /// Ends every open stream (at shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }

    /// Tails the store forever, fanning new envelopes out to live streams.
    pub async fn follow(self: Arc<Self>) {
        let mut head = loop {
            match self.store.head().await {
                Ok(head) => break head,
                Err(error) => {
                    tracing::warn!(%error, "event feed: cannot read the store's head; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        loop {
            if self.live.receiver_count() == 0 {
                // Nobody follows: only keep up with the head (new streams catch up from the
                // store themselves).
                if let Ok(current) = self.store.head().await {
                    head = head.max(current);
                }
                tokio::time::sleep(self.config.poll).await;
                continue;
            }
            match self.store.read_all(head, 1000).await {
                Ok(envelopes) => {
                    let full = envelopes.len() == 1000;
                    for envelope in &envelopes {
                        head = envelope.position;
                        // No receiver left is fine: the frame is simply not wanted.
                        let _ = self.live.send(Arc::new(Frame::of(envelope)));
                    }
                    if !full {
                        tokio::time::sleep(self.config.poll).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "event feed: cannot read the store; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Up to `limit` envelopes after `after`.
    pub async fn page(&self, after: u64, limit: usize) -> Result<Vec<Envelope>, QueryProblem> {
        self.store.read_all(after, limit).await.map_err(unavailable)
    }

    /// A stream slot for `user`, or `None` when it holds its maximum already.
    fn take_slot(&self, user: uuid::Uuid) -> Option<StreamSlot> {
        self.open.take(user, self.config.streams_per_user.max(1))
    }

    /// The SSE events after `after`: catch-up from the store, then live; at `expires` (the
    /// token's expiry) a final `expired` event ends the stream.
    fn stream(
        self: &Arc<Self>,
        after: u64,
        expires: Option<tokio::time::Instant>,
        slot: Option<StreamSlot>,
    ) -> impl Stream<Item = Result<Event, Infallible>> {
        let state = StreamState {
            feed: self.clone(),
            after,
            live: None,
            pending: std::collections::VecDeque::new(),
            done: false,
            expires,
            _client: ClientGauge::new(),
            _slot: slot,
        };
        futures::StreamExt::take_until(
            futures::stream::unfold(state, |mut state| async move {
                let event = match state.expires.filter(|_| !state.done) {
                    Some(at) => {
                        let next = tokio::select! {
                            event = state.next() => Some(event),
                            () = tokio::time::sleep_until(at) => None,
                        };
                        match next {
                            Some(event) => event?,
                            None => state.expired(),
                        }
                    }
                    None => state.next().await?,
                };
                Some((Ok(event), state))
            }),
            self.closed(),
        )
    }
}

fn unavailable(error: events::store::StoreError) -> QueryProblem {
    tracing::warn!(%error, "event store unavailable to the events API");
    QueryProblem(Problem::unavailable(
        1,
        "the event log is unavailable; retry shortly",
    ))
}

/// Counts open streams in `catalog_sse_clients`.
struct ClientGauge;

impl ClientGauge {
    fn new() -> Self {
        metrics::gauge!("catalog_sse_clients").increment(1.0);
        ClientGauge
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::gauge!("catalog_sse_clients").decrement(1.0);
    }
}

struct StreamState {
    feed: Arc<EventFeed>,
    /// The last position sent.
    after: u64,
    /// Subscribed once the catch-up is near the head.
    live: Option<broadcast::Receiver<Arc<Frame>>>,
    pending: std::collections::VecDeque<Event>,
    done: bool,
    /// When the stream's token expires.
    expires: Option<tokio::time::Instant>,
    _client: ClientGauge,
    _slot: Option<StreamSlot>,
}

impl StreamState {
    /// The last event of a stream whose token expired.
    fn expired(&mut self) -> Event {
        self.done = true;
        self.pending.clear();
        metrics::counter!("catalog_sse_streams_expired_total").increment(1);
        let body = serde_json::json!({
            "reason": "the access token expired; reconnect with a fresh token and Last-Event-ID to resume",
            "resume_after": self.after,
        });
        Event::default().event("expired").data(body.to_string())
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            match &mut self.live {
                None => self.catch_up().await,
                Some(live) => match live.recv().await {
                    Ok(frame) if frame.position <= self.after => {}
                    Ok(frame) if frame.position == self.after + 1 => {
                        self.after = frame.position;
                        return Some(frame.event());
                    }
                    // The ring started past where this stream is: read the gap from the store.
                    Ok(_) => self.live = None,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        metrics::counter!("catalog_sse_clients_dropped_total").increment(1);
                        tracing::info!(
                            after = self.after,
                            missed,
                            "dropping an event stream that fell behind"
                        );
                        self.done = true;
                        let body = serde_json::json!({
                            "reason": format!(
                                "this client fell more than {} events behind; reconnect with Last-Event-ID to resume",
                                self.feed.config.ring
                            ),
                            "resume_after": self.after,
                        });
                        return Some(Event::default().event("dropped").data(body.to_string()));
                    }
                    Err(broadcast::error::RecvError::Closed) => self.done = true,
                },
            }
        }
    }

    /// One page from the store; near the head, subscribe to the live ring first and read once
    /// more, so no event falls between the two.
    async fn catch_up(&mut self) {
        let mut subscribed = None;
        loop {
            match self.feed.store.read_all(self.after, PAGE).await {
                Ok(envelopes) => {
                    let full = envelopes.len() == PAGE;
                    for envelope in &envelopes {
                        self.after = envelope.position;
                        self.pending.push_back(Frame::of(envelope).event());
                    }
                    if full {
                        // Far behind: the next page when the client has read this one.
                        return;
                    }
                    if subscribed.is_some() {
                        self.live = subscribed;
                        return;
                    }
                    // A short page: near the head. Subscribe, then read once more.
                    subscribed = Some(self.feed.live.subscribe());
                }
                Err(error) => {
                    tracing::warn!(%error, "event stream: cannot read the store");
                    self.done = true;
                    let body = serde_json::json!({
                        "reason": "the event log is unavailable; reconnect with Last-Event-ID to resume",
                        "resume_after": self.after,
                    });
                    self.pending
                        .push_back(Event::default().event("error").data(body.to_string()));
                    return;
                }
            }
        }
    }
}

/// Query string of `GET /api/events`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Only events with a position above this (default 0: from the start).
    pub after: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<String>,
}

/// Query string of `GET /api/events/stream`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only events with a position above this (default 0); `Last-Event-ID` takes precedence.
    pub after: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Envelope>,
    /// The last item's position (`after` again when the page is empty): pass it as `after`.
    pub next_after: u64,
}

/// What the analysts' routes share.
#[derive(Clone)]
pub struct EventsState {
    pub feed: Arc<EventFeed>,
    pub verifier: Option<Arc<auth::TokenVerifier>>,
}

/// 401 without a valid token, 403 unless the caller is an analyst or an admin.
pub fn require_analyst(
    verifier: Option<&auth::TokenVerifier>,
    headers: &HeaderMap,
) -> Result<auth::AuthUser, Problem> {
    let Some(verifier) = verifier else {
        return Err(Problem::unauthorized(
            "this query service has no token keys (CATALOG_JWT_KEY_FILE or CATALOG_JWKS_URL), \
             so it cannot admit analysts",
        ));
    };
    let user = auth::AuthUser::from_headers(headers, verifier)?
        .ok_or_else(|| Problem::unauthorized("an analyst's or admin's bearer token is required"))?;
    user.require(&[auth::Role::Analyst, auth::Role::Admin])?;
    Ok(user)
}

fn parse_position(field: &str, value: Option<String>) -> Result<u64, QueryProblem> {
    match value {
        None => Ok(0),
        Some(text) => crate::consistency::parse_position(&text).ok_or_else(|| {
            QueryProblem(Problem::bad_request(format!(
                "{field} must be an integer position from 0 to 9223372036854775807; got {text:?}"
            )))
        }),
    }
}

/// Envelopes in log order, a page at a time.
#[utoipa::path(get, path = "/api/events", tag = "analysts", params(EventsParams),
    security(("bearer" = [])),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_events(
    State(state): State<EventsState>,
    headers: HeaderMap,
    Query(params): Query<EventsParams>,
) -> QueryResult {
    require_analyst(state.verifier.as_deref(), &headers)?;
    let after = parse_position("after", given(params.after))?;
    let limit = parse_limit_up_to(given(params.limit), 100, 1000)?;
    let items = state.feed.page(after, limit).await?;
    let next_after = items.last().map_or(after, |envelope| envelope.position);
    Ok(axum::Json(EventPage { items, next_after }).into_response())
}

/// Server-Sent Events, one per envelope (`id:` position, `event:` type, `data:` envelope),
/// resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/api/events/stream", tag = "analysts", params(StreamParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last position received; takes precedence over `after`.")),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "`id:` position, `event:` event type, `data:` the envelope; comment lines keep an idle stream open; a final `dropped` event (data `{\"reason\",\"resume_after\"}`) ends a stream that fell too far behind, a final `expired` event (same data) one whose access token expired."),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 429, description = "The user has its maximum of open streams", body = Problem)))]
pub async fn stream_events(
    State(state): State<EventsState>,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<Response, QueryProblem> {
    let user = require_analyst(state.verifier.as_deref(), &headers)?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .filter(|text| !text.trim().is_empty());
    // Both are checked, so a malformed `after` is a 400 even where `Last-Event-ID` wins.
    let after = parse_position("after", given(params.after))?;
    let after = match last_event_id {
        Some(text) => parse_position("Last-Event-ID", Some(text))?,
        None => after,
    };
    let Some(slot) = state.feed.take_slot(user.id) else {
        return Err(QueryProblem(Problem::too_many_requests(
            5,
            format!(
                "this user has {} event streams open already; close one first",
                state.feed.config.streams_per_user
            ),
        )));
    };
    let left = u64::try_from(user.expires_at - chrono::Utc::now().timestamp()).unwrap_or(0);
    let expires = tokio::time::Instant::now() + Duration::from_secs(left);
    let keep_alive = KeepAlive::new().interval(state.feed.config.keep_alive);
    Ok(
        Sse::new(state.feed.stream(after, Some(expires), Some(slot)))
            .keep_alive(keep_alive)
            .into_response(),
    )
}
