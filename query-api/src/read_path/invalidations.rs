//! The invalidation subscription, and what it tells about the L1 entries.
//!
//! The Redis projector publishes, atomically with each event it applies, what the event
//! changed and the checkpoint it reached. While subscribed, this process drops exactly those
//! entries and moves its watermark to the checkpoint: an entry loaded from Redis while
//! subscribed, and not raced by an invalidation during its load, is correct up to the
//! watermark. When the subscription (re)starts, nothing cached before can be trusted (it may
//! have missed invalidations), so everything is dropped and the watermark jumps to the
//! checkpoint read after subscribing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use events::Watermark;
use futures::StreamExt;
use projectors::redis::{invalidation_channel, Invalidation, RedisReadModel};
use redis_client::RedisConfig;

use super::l1::{Cached, L1};
use crate::edge::EdgePurger;

/// The L1 caches and how fresh the subscription keeps them.
pub(super) struct WatchedL1 {
    pub l1: L1,
    /// Checkpoint of the last invalidation seen.
    watermark: Watermark,
    /// Whether the invalidation subscription is up.
    live: AtomicBool,
    /// Bumped by every invalidation: a load that sees it change was raced by a write.
    invalidations: AtomicU64,
    /// Bumped when the subscription is lost or (re)made: entries watched under an earlier
    /// one may have missed invalidations.
    generation: AtomicU64,
    /// The edge cache, purged of what this process dropped, once it has.
    edge: Option<Arc<EdgePurger>>,
}

/// Taken before a load; [`WatchedL1::watched_since`] says whether the load may be trusted up
/// to the watermark.
pub(super) struct LoadStart {
    live: bool,
    invalidations: u64,
    generation: u64,
    watermark: u64,
}

impl LoadStart {
    /// A position a load begun now reflects at least: the watermark, when the subscription is
    /// live (each invalidation is published after the write it announces, so Redis held
    /// everything up to the watermark before the load began). Without it, a load an
    /// invalidation raced would say the Redis view's polled checkpoint, which may be below the
    /// watermark an earlier answer of the same resource reflected.
    pub fn floor(&self) -> u64 {
        if self.live {
            self.watermark
        } else {
            0
        }
    }

    /// The subscription the load began under.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl WatchedL1 {
    pub fn new(l1: L1, edge: Option<Arc<EdgePurger>>) -> Self {
        WatchedL1 {
            l1,
            watermark: Watermark::new(0),
            live: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            edge,
        }
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    /// Whether a cached entry answers a request that needs position `required`: fresh (within
    /// `fresh_for` when watched under the current subscription, else the unwatched TTL), and
    /// correct at `required`.
    pub fn usable<T>(
        &self,
        cached: &Cached<T>,
        required: u64,
        fresh_for: Duration,
        unwatched_ttl: Duration,
    ) -> bool {
        let watched = self.watched_now(cached);
        let age = cached.loaded_at.elapsed();
        let fresh = if watched {
            age < fresh_for
        } else {
            age < unwatched_ttl
        };
        fresh
            && (cached.position >= required
                || (watched && self.is_live() && self.watermark.current() >= required))
    }

    /// Whether a cached entry was watched under the current subscription: correct up to the
    /// watermark.
    fn watched_now<T>(&self, cached: &Cached<T>) -> bool {
        cached.watched && cached.generation == self.generation.load(Ordering::SeqCst)
    }

    /// The position a cached entry reflects: the watermark for one watched under the current
    /// subscription, else the position it was loaded at.
    pub fn reflected<T>(&self, cached: &Cached<T>) -> u64 {
        let watermark = if self.watched_now(cached) {
            self.watermark.current()
        } else {
            0
        };
        cached.position.max(watermark)
    }

    pub fn load_start(&self) -> LoadStart {
        LoadStart {
            invalidations: self.invalidations.load(Ordering::SeqCst),
            live: self.is_live(),
            generation: self.generation.load(Ordering::SeqCst),
            watermark: self.watermark.current(),
        }
    }

    /// Whether a load begun at `start` was watched throughout, no invalidation racing it.
    pub fn watched_since(&self, start: &LoadStart) -> bool {
        start.live
            && self.invalidations.load(Ordering::SeqCst) == start.invalidations
            && self.generation.load(Ordering::SeqCst) == start.generation
    }

    fn apply(&self, invalidation: &Invalidation) {
        // A child of the projector's work that published it, when that was traced.
        let span = tracing::debug_span!(
            "cache.invalidate",
            otel.kind = "consumer",
            position = invalidation.position,
            product = invalidation.product.map(|id| id.to_string()),
        );
        events::trace::follow(&span, invalidation.traceparent.as_deref());
        let _entered = span.enter();
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.l1.drop_changed(invalidation);
        self.watermark.advance(invalidation.position);
        if let Some(edge) = &self.edge {
            edge.purge_changed(invalidation);
        }
    }

    fn subscribed(&self, checkpoint: u64) {
        // What was cached before may have missed invalidations: kept only to answer stale
        // when every layer below fails.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.watermark.advance(checkpoint);
        self.live.store(true, Ordering::SeqCst);
        // What the edge fetched while no invalidation was watched may be stale.
        if let Some(edge) = &self.edge {
            edge.purge_everything();
        }
        tracing::info!(checkpoint, "watching cache invalidations");
    }

    fn lost(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        tracing::warn!("lost the cache invalidation subscription; resubscribing");
    }
}

/// Keeps the invalidation subscription up while the caches live.
pub(super) async fn subscribe(
    cache: Weak<WatchedL1>,
    config: Arc<RedisConfig>,
    model: Arc<RedisReadModel>,
) {
    let channel = invalidation_channel(&config);
    let node = config.nodes[0].clone();
    loop {
        if cache.strong_count() == 0 {
            return;
        }
        let pubsub = match connect(&node, &channel).await {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::debug!(%error, "cannot subscribe to cache invalidations; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Anything cached before this point may have missed invalidations.
        let checkpoint = model.read_checkpoint().await.unwrap_or(0);
        let Some(strong) = cache.upgrade() else {
            return;
        };
        strong.subscribed(checkpoint);
        drop(strong);
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(strong) = cache.upgrade() else {
                return;
            };
            match message
                .get_payload::<String>()
                .ok()
                .and_then(|text| serde_json::from_str::<Invalidation>(&text).ok())
            {
                Some(invalidation) => strong.apply(&invalidation),
                None => tracing::warn!("an invalidation message that cannot be read"),
            }
        }
        if let Some(strong) = cache.upgrade() {
            strong.lost();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn connect(node: &str, channel: &str) -> Result<redis::aio::PubSub, redis::RedisError> {
    let client = redis::Client::open(node)?;
    let mut pubsub = tokio::time::timeout(redis_client::CONNECT_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| {
            redis::RedisError::from((redis::ErrorKind::Io, "pubsub connect timed out"))
        })??;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
