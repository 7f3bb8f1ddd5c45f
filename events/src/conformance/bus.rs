//! The bus port's contract ([`crate::bus::EventBus`]) as one suite, run against every adapter:
//! each case a `pub async fn` taking a fresh [`BusFixture`], and
//! [`event_bus_suite!`](crate::event_bus_suite) expanding them into one `#[tokio::test]` each.
//!
//! The cases hold for the embedded bus and the durable ones alike. Where the contract lets
//! them differ, the case asks: a subscriber always passes the position it last applied as
//! `after` (the in-process bus resumes there, the durable buses from their acknowledgements),
//! and a bus that says it is totally ordered must also deliver in position order.
//!
//! The helpers (`history`, `consume_distinct`, `assert_in_order_per_product`, …) are public
//! for the tests an adapter has of its own (fault injection, rebalances, the outbox relay).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SubsecRound, Utc};
use futures::StreamExt;
use uuid::Uuid;

use crate::bus::{Delivery, EventBus, EventStream};
use crate::catalog_events::{CatalogEvent, SaleRecorded};
use crate::envelope::{Envelope, EventMetadata, NewEvent};

/// How long a suite waits for one delivery before it fails.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// A bus under test, made fresh for each case (its own topic, queues or store). Not `Send`:
/// a fixture may hold what cannot cross threads (librdkafka's mock cluster), and the cases
/// run it on the test's own thread.
#[async_trait(?Send)]
pub trait BusFixture {
    /// The bus under test.
    fn bus(&self) -> Arc<dyn EventBus>;

    /// The name of a new subscriber, ready to subscribe before anything is published to it
    /// (SNS/SQS: its queue exists and is subscribed to the topic).
    async fn new_subscriber(&self) -> String;

    /// Commits `events` where the bus's catch-up reads them (the in-process bus reads the
    /// store), in the order given, and returns them as committed, with their positions. The
    /// suite publishes them itself.
    async fn commit(&self, events: Vec<NewEvent>) -> Vec<Envelope>;

    /// How long a subscription must stay quiet to show that nothing more is coming: longer
    /// than the bus takes to deliver an unacknowledged event again (SQS: the visibility
    /// timeout).
    fn quiet_period(&self) -> Duration;

    /// Whether events delivered again after a restart come in order per product. moto's SQS
    /// hands back expired in-flight messages out of order (real SQS FIFO does not; the
    /// projector runner repairs either from the store).
    fn redelivers_in_order(&self) -> bool {
        true
    }
}

/// Positions for buses that have no store: `commit` numbers envelopes densely from 1, as the
/// store would.
#[derive(Debug, Default)]
pub struct Positions(AtomicU64);

impl Positions {
    /// `events` as envelopes at the next positions.
    pub fn commit(&self, events: Vec<NewEvent>) -> Vec<Envelope> {
        let first = self.0.fetch_add(events.len() as u64, Ordering::SeqCst) + 1;
        numbered(events, first)
    }
}

/// `events` as envelopes at positions `first_position`, `first_position + 1`, …
pub fn numbered(events: Vec<NewEvent>, first_position: u64) -> Vec<Envelope> {
    (first_position..)
        .zip(events)
        .map(|(position, event)| event.into_envelope(position))
        .collect()
}

/// `count` new product ids.
pub fn products(count: usize) -> Vec<Uuid> {
    (0..count).map(|_| Uuid::now_v7()).collect()
}

/// `per_product` events for each of `products`, interleaved as concurrent writers would
/// produce them (version 1 of every product, then version 2, …). Each has its own
/// correlation id, a UUID, as a command's request id is.
pub fn history(products: &[Uuid], per_product: u64) -> Vec<NewEvent> {
    let mut events = Vec::new();
    for version in 1..=per_product {
        for id in products {
            let event = CatalogEvent::SaleRecorded(SaleRecorded { quantity: 1 });
            events.push(NewEvent::from_event(
                *id,
                version,
                &event,
                Utc::now().trunc_subsecs(6),
                EventMetadata {
                    actor: Some("tester".into()),
                    correlation_id: Some(Uuid::new_v4().to_string()),
                    causation_id: None,
                    traceparent: None,
                },
            ));
        }
    }
    events
}

/// The next delivery, within [`DELIVERY_TIMEOUT`].
pub async fn next_delivery(stream: &mut EventStream) -> Delivery {
    tokio::time::timeout(DELIVERY_TIMEOUT, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no delivery within {DELIVERY_TIMEOUT:?}"))
        .expect("stream open")
        .expect("no bus error")
}

/// Reads deliveries until `wanted` distinct events arrived, acknowledging each; returns every
/// envelope in arrival order (duplicates included).
pub async fn consume_distinct(stream: &mut EventStream, wanted: usize) -> Vec<Envelope> {
    let mut seen = HashSet::new();
    let mut arrived = Vec::new();
    while seen.len() < wanted {
        let delivery = tokio::time::timeout(DELIVERY_TIMEOUT, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {wanted} events within {DELIVERY_TIMEOUT:?}",
                    seen.len()
                )
            })
            .expect("stream open")
            .expect("no bus error");
        seen.insert(delivery.envelope.event_id);
        arrived.push(delivery.envelope.clone());
        delivery.ack().await.expect("ack");
    }
    arrived
}

/// Whatever else arrives until the stream has been quiet for `quiet` (acknowledging each).
pub async fn consume_until_quiet(stream: &mut EventStream, quiet: Duration) -> Vec<Envelope> {
    let mut arrived = Vec::new();
    while let Ok(Some(Ok(delivery))) = tokio::time::timeout(quiet, stream.next()).await {
        arrived.push(delivery.envelope.clone());
        delivery.ack().await.expect("ack");
    }
    arrived
}

/// Nothing arrives within `quiet`.
pub async fn assert_quiet(stream: &mut EventStream, quiet: Duration) {
    let extra = tokio::time::timeout(quiet, stream.next()).await;
    assert!(extra.is_err(), "unexpected extra delivery: {extra:?}");
}

/// Per product of `products`, the first arrival of each version comes in version order 1, 2,
/// 3, … up to `per_product`, with none missing.
pub fn assert_in_order_per_product(arrived: &[Envelope], products: &[Uuid], per_product: u64) {
    let mut seen = HashSet::new();
    let mut firsts: HashMap<Uuid, Vec<u64>> = HashMap::new();
    for envelope in arrived {
        if seen.insert(envelope.event_id) {
            firsts
                .entry(envelope.aggregate_id)
                .or_default()
                .push(envelope.aggregate_version);
        }
    }
    for id in products {
        assert_eq!(
            firsts.get(id).cloned().unwrap_or_default(),
            (1..=per_product).collect::<Vec<_>>(),
            "product {id} arrived out of order or incomplete"
        );
    }
}

/// On a totally ordered bus, `arrived` is `sent` in position order.
fn assert_position_order_when_total(bus: &dyn EventBus, arrived: &[Envelope], sent: &[Envelope]) {
    if !bus.is_totally_ordered() {
        return;
    }
    let positions: Vec<u64> = arrived.iter().map(|envelope| envelope.position).collect();
    let mut expected: Vec<u64> = sent.iter().map(|envelope| envelope.position).collect();
    expected.sort_unstable();
    assert_eq!(
        positions, expected,
        "a totally ordered bus delivers in position order"
    );
}

/// Commits `events` and publishes them one envelope to a `publish` call.
async fn commit_and_publish_one_by_one(
    fixture: &impl BusFixture,
    events: Vec<NewEvent>,
) -> Vec<Envelope> {
    let sent = fixture.commit(events).await;
    for envelope in &sent {
        fixture
            .bus()
            .publish(std::slice::from_ref(envelope))
            .await
            .expect("publish");
    }
    sent
}

/// Every published event arrives, as published, once (nothing failed, so nothing is
/// redelivered), and one product's events in version order.
pub async fn published_events_arrive_once_each_in_order_per_product(fixture: impl BusFixture) {
    let bus = fixture.bus();
    let subscriber = fixture.new_subscriber().await;
    let ids = products(20);
    let sent = fixture.commit(history(&ids, 10)).await;
    bus.publish(&sent).await.expect("publish");
    let mut stream = bus.subscribe(&subscriber, 0).await.expect("subscribe");
    let arrived = consume_distinct(&mut stream, sent.len()).await;
    assert_eq!(arrived.len(), sent.len(), "no duplicates without failures");
    assert_in_order_per_product(&arrived, &ids, 10);
    let sent_by_id: HashMap<Uuid, &Envelope> = sent.iter().map(|e| (e.event_id, e)).collect();
    for envelope in &arrived {
        assert_eq!(Some(&envelope), sent_by_id.get(&envelope.event_id));
    }
    assert_position_order_when_total(bus.as_ref(), &arrived, &sent);
}

/// Two subscribers each get every event: a subscription is per subscriber, not shared.
pub async fn every_subscriber_gets_every_event(fixture: impl BusFixture) {
    let bus = fixture.bus();
    let first_subscriber = fixture.new_subscriber().await;
    let second_subscriber = fixture.new_subscriber().await;
    let mut first = bus
        .subscribe(&first_subscriber, 0)
        .await
        .expect("subscribe");
    let mut second = bus
        .subscribe(&second_subscriber, 0)
        .await
        .expect("subscribe");
    let ids = products(20);
    let sent = commit_and_publish_one_by_one(&fixture, history(&ids, 1)).await;
    let expected: HashSet<Uuid> = sent.iter().map(|e| e.event_id).collect();
    for stream in [&mut first, &mut second] {
        let arrived = consume_distinct(stream, sent.len()).await;
        let distinct: HashSet<Uuid> = arrived.iter().map(|e| e.event_id).collect();
        assert_eq!(distinct, expected, "every subscriber gets every event");
        assert_in_order_per_product(&arrived, &ids, 1);
        assert_position_order_when_total(bus.as_ref(), &arrived, &sent);
    }
}

/// A delivery dropped without an acknowledgement comes again to the next subscription of the
/// subscriber; once acknowledged, it does not.
pub async fn a_delivery_is_repeated_until_it_is_acknowledged(fixture: impl BusFixture) {
    let bus = fixture.bus();
    let subscriber = fixture.new_subscriber().await;
    let sent = commit_and_publish_one_by_one(&fixture, history(&products(1), 1)).await;
    {
        let mut stream = bus.subscribe(&subscriber, 0).await.expect("subscribe");
        let dropped = next_delivery(&mut stream).await;
        assert_eq!(dropped.envelope, sent[0]);
        // A crash before applying it: dropped without an ack.
    }
    let mut again = bus.subscribe(&subscriber, 0).await.expect("subscribe");
    let repeated = next_delivery(&mut again).await;
    assert_eq!(
        repeated.envelope, sent[0],
        "the unacknowledged event comes again"
    );
    let applied = repeated.envelope.position;
    repeated.ack().await.expect("ack");
    drop(again);
    let mut after_ack = bus
        .subscribe(&subscriber, applied)
        .await
        .expect("subscribe");
    assert_quiet(&mut after_ack, fixture.quiet_period()).await;
}

/// A subscriber that restarts after acknowledging the first four of ten events, having
/// received the fifth without applying it, gets the fifth to the tenth, and none of the four.
pub async fn a_restarted_subscriber_resumes_after_what_it_acknowledged(fixture: impl BusFixture) {
    let bus = fixture.bus();
    let subscriber = fixture.new_subscriber().await;
    // One record batch per event: tansu 0.6 answers a fetch from the middle of a record batch
    // with nothing (Kafka returns the whole batch), and a restart resumes mid-stream.
    commit_and_publish_one_by_one(&fixture, history(&products(1), 10)).await;
    let applied = {
        let mut stream = bus.subscribe(&subscriber, 0).await.expect("subscribe");
        // Apply and acknowledge 4, receive a 5th but crash before applying it.
        let acknowledged = consume_distinct(&mut stream, 4).await;
        let versions: Vec<u64> = acknowledged.iter().map(|e| e.aggregate_version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        let unapplied = next_delivery(&mut stream).await;
        assert_eq!(unapplied.envelope.aggregate_version, 5);
        acknowledged[3].position
        // Dropping the stream closes the subscription; what was acknowledged stays so.
    };
    let mut again = bus
        .subscribe(&subscriber, applied)
        .await
        .expect("subscribe");
    let rest = consume_distinct(&mut again, 6).await;
    let mut versions: Vec<u64> = rest.iter().map(|e| e.aggregate_version).collect();
    if !fixture.redelivers_in_order() {
        versions.sort_unstable();
    }
    assert_eq!(versions, (5..=10).collect::<Vec<_>>());
    // Nothing acknowledged comes back.
    assert_quiet(&mut again, fixture.quiet_period()).await;
}

/// Publishing the same envelopes again (a relay retrying after a failure it could not tell
/// from a loss) loses nothing and breaks no product's order; whatever arrives beyond the
/// first copy of each event is a copy of a published one.
pub async fn an_event_published_twice_is_tolerated(fixture: impl BusFixture) {
    let bus = fixture.bus();
    let subscriber = fixture.new_subscriber().await;
    let ids = products(5);
    let sent = fixture.commit(history(&ids, 4)).await;
    bus.publish(&sent).await.expect("publish");
    bus.publish(&sent).await.expect("publish again");
    bus.publish(&sent[..sent.len() / 2])
        .await
        .expect("publish half a third time");
    let mut stream = bus.subscribe(&subscriber, 0).await.expect("subscribe");
    let mut arrived = consume_distinct(&mut stream, sent.len()).await;
    arrived.extend(consume_until_quiet(&mut stream, fixture.quiet_period()).await);
    assert_in_order_per_product(&arrived, &ids, 4);
    for envelope in &arrived {
        assert!(
            sent.contains(envelope),
            "not a published event: {envelope:?}"
        );
    }
}

/// Expands into one `#[tokio::test]` per case of the bus suite ([`crate::conformance::bus`]).
///
/// `$fixture` is an expression giving a future of a fresh [`BusFixture`] (evaluated once per
/// case). Invoke it inside a module of its own, so the tests are named `<module>::<case>`:
///
/// ```text
/// mod event_bus_suite {
///     events::event_bus_suite!(super::KafkaFixture::start());
/// }
/// ```
#[macro_export]
macro_rules! event_bus_suite {
    ($fixture:expr) => {
        $crate::event_bus_suite!(@cases $fixture;
            published_events_arrive_once_each_in_order_per_product,
            every_subscriber_gets_every_event,
            a_delivery_is_repeated_until_it_is_acknowledged,
            a_restarted_subscriber_resumes_after_what_it_acknowledged,
            an_event_published_twice_is_tolerated,
        );
    };
    (@cases $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::conformance::bus::$case($fixture.await).await;
            }
        )+
    };
}
