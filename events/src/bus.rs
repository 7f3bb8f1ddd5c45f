//! The bus port and the embedded in-process adapter.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::envelope::Envelope;
use crate::store::{EventStore, StoreError};

/// What can go wrong with the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected bus error: {0}")]
    Unexpected(String),
}

impl From<StoreError> for BusError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(message) => BusError::Unavailable(message),
            other => BusError::Unexpected(other.to_string()),
        }
    }
}

/// A subscription: envelopes in delivery order. An `Err` item is a passing failure: the
/// stream goes on after it.
pub type EventStream = BoxStream<'static, Result<Envelope, BusError>>;

/// Carries committed envelopes from the write side to every subscriber.
///
/// Contract:
/// - `publish` is called with envelopes that are already committed to the event store; it may
///   be called more than once for one envelope and out of order between calls.
/// - A subscription delivers every envelope with a position above `after`, at least once.
///   Per aggregate, envelopes arrive in `aggregate_version` order. Subscribers must apply
///   idempotently (ignore versions they already applied).
/// - A subscriber that restarts resumes by subscribing again after the last position it
///   applied.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Hands committed envelopes to the bus.
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError>;

    /// Subscribes `subscriber` (a projector's name) to everything after position `after`.
    async fn subscribe(&self, subscriber: &str, after: u64) -> Result<EventStream, BusError>;
}

/// The embedded bus: catch-up reads from the event store, then live envelopes from an
/// in-process broadcast channel.
///
/// Subscribers see a single global order (positions `after + 1, after + 2, …` with no gaps).
/// Whenever the live channel would break that order (an out-of-order publish, a lagging
/// subscriber, a write by another process on the same store), the subscriber reads the
/// missing range from the store instead; a periodic poll catches writes whose publish never
/// arrived (another process, or a crash between commit and publish).
pub struct InProcessBus {
    store: Arc<dyn EventStore>,
    sender: broadcast::Sender<Envelope>,
    poll_interval: Duration,
}

const CATCH_UP_BATCH: usize = 1000;
const LIVE_CAPACITY: usize = 8192;

impl InProcessBus {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self::with_poll_interval(store, Duration::from_millis(500))
    }

    pub fn with_poll_interval(store: Arc<dyn EventStore>, poll_interval: Duration) -> Self {
        let (sender, _) = broadcast::channel(LIVE_CAPACITY);
        InProcessBus {
            store,
            sender,
            poll_interval,
        }
    }
}

struct Subscription {
    store: Arc<dyn EventStore>,
    live: broadcast::Receiver<Envelope>,
    buffer: VecDeque<Envelope>,
    last_position: u64,
    catching_up: bool,
    poll_interval: Duration,
}

impl Subscription {
    async fn next(&mut self) -> Option<Result<Envelope, BusError>> {
        loop {
            if let Some(envelope) = self.buffer.pop_front() {
                self.last_position = envelope.position;
                return Some(Ok(envelope));
            }
            if self.catching_up {
                match self
                    .store
                    .read_all(self.last_position, CATCH_UP_BATCH)
                    .await
                {
                    Ok(batch) if batch.is_empty() => self.catching_up = false,
                    Ok(batch) => self.buffer.extend(batch),
                    Err(error) => {
                        // Back off so a store outage does not become a busy loop.
                        tokio::time::sleep(self.poll_interval).await;
                        return Some(Err(error.into()));
                    }
                }
                continue;
            }
            let received = tokio::time::timeout(self.poll_interval, self.live.recv()).await;
            match received {
                Ok(Ok(envelope)) if envelope.position <= self.last_position => {}
                Ok(Ok(envelope)) if envelope.position == self.last_position + 1 => {
                    self.last_position = envelope.position;
                    return Some(Ok(envelope));
                }
                // A gap, a lag, or a quiet period: the store has the truth.
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {
                    self.catching_up = true;
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            }
        }
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError> {
        for envelope in envelopes {
            // No receivers is fine: subscribers catch up from the store.
            let _ = self.sender.send(envelope.clone());
        }
        Ok(())
    }

    async fn subscribe(&self, subscriber: &str, after: u64) -> Result<EventStream, BusError> {
        tracing::debug!(subscriber, after, "in-process subscription");
        // Subscribe to the live channel before the catch-up read, so nothing published in
        // between is missed.
        let subscription = Subscription {
            store: self.store.clone(),
            live: self.sender.subscribe(),
            buffer: VecDeque::new(),
            last_position: after,
            catching_up: true,
            poll_interval: self.poll_interval,
        };
        let stream = futures::stream::unfold(subscription, |mut subscription| async move {
            subscription.next().await.map(|item| (item, subscription))
        });
        Ok(Box::pin(stream))
    }
}
