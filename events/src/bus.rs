//! The bus port and the embedded in-process adapter.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use crate::envelope::Envelope;
use crate::store::{EventStore, StoreError};

/// What can go wrong with the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The topic, queue or subscription the bus needs does not exist (run `catalog bus setup`).
    #[error("{0}")]
    Missing(String),
    /// The bus configuration (URL) is wrong.
    #[error("{0}")]
    Invalid(String),
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

/// Tells the bus a delivery was handled, so it is not delivered to this subscriber again
/// (Kafka: store the offset for the next commit; SQS: delete the message).
pub type Acknowledge = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BusError>> + Send>;

/// One envelope handed to a subscriber. Dropping it without [`Delivery::ack`] leaves it to be
/// delivered again (at-least-once).
pub struct Delivery {
    pub envelope: Envelope,
    /// The W3C trace context the message carried (the relay's publish), when it had one.
    pub traceparent: Option<String>,
    acknowledge: Option<Acknowledge>,
}

impl Delivery {
    /// A delivery that needs no acknowledgement (the in-process bus).
    pub fn unacknowledged(envelope: Envelope) -> Self {
        Delivery {
            envelope,
            traceparent: None,
            acknowledge: None,
        }
    }

    pub fn with_ack(envelope: Envelope, acknowledge: Acknowledge) -> Self {
        Delivery {
            envelope,
            traceparent: None,
            acknowledge: Some(acknowledge),
        }
    }

    /// The delivery, with the trace context its message carried.
    pub fn traced(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// Acknowledges the delivery: call it only after the envelope was applied.
    pub async fn ack(self) -> Result<(), BusError> {
        match self.acknowledge {
            Some(acknowledge) => acknowledge().await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Delivery")
            .field("position", &self.envelope.position)
            .field("event_type", &self.envelope.event_type)
            .finish()
    }
}

/// A subscription: deliveries in delivery order. An `Err` item is a passing failure: the
/// stream goes on after it.
pub type EventStream = BoxStream<'static, Result<Delivery, BusError>>;

/// Carries committed envelopes from the write side to every subscriber.
///
/// Contract:
/// - `publish` is called with envelopes that are already committed to the event store; it may
///   be called more than once for one envelope and out of order between calls.
/// - `publish` returns `Ok` only once the bus holds every envelope durably (Kafka: acked by
///   all in-sync replicas; SNS: accepted); on `Err` some may have been published, and the
///   caller publishes them all again (duplicates are allowed, loss is not).
/// - A subscription delivers every envelope at least once until the subscriber acknowledges
///   it ([`Delivery::ack`]). Per aggregate, envelopes are published and delivered in
///   `aggregate_version` order; across aggregates a partitioned bus may interleave them, so
///   positions are not necessarily increasing. Subscribers apply idempotently (ignore versions
///   they already applied) and repair a gap (a version above the next one) from the store.
/// - Durable buses (Kafka consumer groups, SQS queues) resume where the subscriber's
///   acknowledgements left off and ignore `after`; the in-process bus starts after `after`.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Hands committed envelopes to the bus.
    async fn publish(&self, envelopes: &[Envelope]) -> Result<(), BusError>;

    /// Like [`EventBus::publish`], each envelope's message carrying the W3C trace context at
    /// the same index of `traceparents` (a missing or `None` one: the context derived from the
    /// envelope, as `publish` does). Buses without message metadata ignore them.
    async fn publish_traced(
        &self,
        envelopes: &[Envelope],
        traceparents: &[Option<String>],
    ) -> Result<(), BusError> {
        let _ = traceparents;
        self.publish(envelopes).await
    }

    /// Subscribes `subscriber` (a projector's name) to everything after position `after`.
    async fn subscribe(&self, subscriber: &str, after: u64) -> Result<EventStream, BusError>;

    /// Whether deliveries come in one global position order (then a subscriber's checkpoint is
    /// simply the last position it applied).
    fn is_totally_ordered(&self) -> bool {
        false
    }

    /// Answers when the bus can be reached (for readiness checks).
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
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
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            if let Some(envelope) = self.buffer.pop_front() {
                self.last_position = envelope.position;
                return Some(Ok(Delivery::unacknowledged(envelope)));
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
                    return Some(Ok(Delivery::unacknowledged(envelope)));
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

    fn is_totally_ordered(&self) -> bool {
        true
    }
}
