//! The HTTP server: hyper-util's HTTP/1 and HTTP/2 with a timer, so a client cannot hold a
//! connection for free (API.md, "Limits"):
//!
//! - request headers must arrive within `header_timeout` (hyper's header-read timeout);
//! - a connection on which no byte moved for `idle_timeout` is closed (an idle keep-alive
//!   connection, or one stuck mid-request; a live event stream sends keep-alives);
//! - at most `max_connections` open at once, at most `per_address` from one address (proxies
//!   listed as trusted are exempt: a balancer carries many clients). A connection over either
//!   cap is answered `503` with `Retry-After` at once and closed, never left hanging.
//!
//! On shutdown it stops accepting, lets in-flight requests finish (closing idle connections),
//! and returns when every connection has ended or after `drain_timeout`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::client::TrustedProxies;
use crate::slots::Slots;

/// How long connections may live and how many there may be.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// 0: no per-address cap.
    pub per_address: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long shutdown waits for open connections.
    pub drain_timeout: Duration,
    /// Peers exempt from the per-address cap.
    pub exempt: TrustedProxies,
}

impl Default for ConnectionLimits {
    /// 10,000 connections (the process may hold 20,000 descriptors: the rest are for the
    /// engines and files), 512 per address, headers within 10 s, idle 60 s, drain 30 s.
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 10_000,
            per_address: 512,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            exempt: TrustedProxies::none(),
        }
    }
}

const REFUSAL_BODY: &str = r#"{"type":"urn:catalog:problem:unavailable","title":"Service unavailable","status":503,"detail":"too many open connections; retry shortly"}"#;

static REFUSAL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    )
});

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let per_address = Slots::default();
    let (stop, stopped) = tokio::sync::watch::channel(());
    let started = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors or a reset before accept: wait a moment, as axum does.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(stream, "process");
            continue;
        };
        let slot = if limits.per_address == 0 || limits.exempt.trusts(peer.ip()) {
            None
        } else {
            match per_address.take(peer.ip(), limits.per_address) {
                Some(slot) => Some(slot),
                None => {
                    refuse(stream, "address");
                    continue;
                }
            }
        };
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            peer,
            idle_timeout: limits.idle_timeout,
            started,
        };
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            metrics::gauge!("catalog_http_connections_open").increment(1.0);
            connection.run(stream, stopped).await;
            metrics::gauge!("catalog_http_connections_open").decrement(1.0);
        });
    }
    drop(listener);
    let _ = stop.send(());
    // Every connection holds a permit: when all are back, all connections have ended.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, open.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            still_open = limits.max_connections - open.available_permits(),
            "connections still open after the drain timeout; closing them"
        );
    }
    Ok(())
}

/// Answers an over-the-cap connection with a 503 and closes it (bounded: 1 s to write).
fn refuse(mut stream: TcpStream, reason: &'static str) {
    metrics::counter!("catalog_http_connections_refused_total", "reason" => reason).increment(1);
    tokio::spawn(async move {
        let write = async {
            stream.write_all(REFUSAL.as_bytes()).await?;
            stream.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    });
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    peer: SocketAddr,
    idle_timeout: Duration,
    started: Instant,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stopped: tokio::sync::watch::Receiver<()>) {
        let activity = Arc::new(AtomicU64::new(self.started.elapsed().as_millis() as u64));
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
            started: self.started,
        });
        let peer = self.peer;
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), request)
        });
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let mut closing = false;
        let tick = (self.idle_timeout / 4).max(Duration::from_millis(50));
        let mut ticks = tokio::time::interval(tick);
        loop {
            tokio::select! {
                _ = connection.as_mut() => break,
                changed = stopped.changed(), if !closing => {
                    let _ = changed;
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = ticks.tick(), if !closing => {
                    let now = self.started.elapsed().as_millis() as u64;
                    let last = activity.load(Ordering::Relaxed);
                    if Duration::from_millis(now.saturating_sub(last)) >= self.idle_timeout {
                        metrics::counter!("catalog_http_connections_idle_closed_total").increment(1);
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// A stream that notes when a byte last moved either way.
struct Watched {
    inner: TcpStream,
    activity: Arc<AtomicU64>,
    started: Instant,
}

impl Watched {
    fn touch(&self) {
        self.activity
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buffer.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(context, buffer);
        if buffer.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(context, data);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(context, buffers);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}
