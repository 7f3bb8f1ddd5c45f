//! Consuming on SQS: long polling, up to 10 messages a receive, handed out one by one; a
//! message is deleted only when the projector acknowledges it (after the view applied it).
//!
//! While messages are held (received, not yet acknowledged), a heartbeat extends their
//! visibility timeout every third of it, so a slow batch is not delivered twice. A body that is
//! not an envelope is made visible again at once, so it reaches the dead-letter queue after
//! `maxReceiveCount` receives.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use events::bus::{Acknowledge, BusError, Delivery, EventStream};
use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::error::{describe, sdk_unavailable};
use crate::headers::decode_envelope;

/// The deliveries of the queue at `queue_url`, each acknowledged by deleting its message.
pub(super) fn subscribe(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    wait_seconds: i32,
    visibility_seconds: i32,
) -> EventStream {
    let held: Arc<Mutex<HashSet<String>>> = Arc::default();
    let heartbeat = tokio::spawn(extend_visibility(
        sqs.clone(),
        queue_url.clone(),
        held.clone(),
        visibility_seconds,
    ));
    let state = Receiver {
        sqs,
        queue_url,
        wait_seconds,
        buffer: VecDeque::new(),
        held,
        _heartbeat: AbortOnDrop(heartbeat),
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await;
        Some((item, state))
    });
    Box::pin(stream)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Receiver {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    wait_seconds: i32,
    buffer: VecDeque<Message>,
    /// Receipt handles received and not yet acknowledged.
    held: Arc<Mutex<HashSet<String>>>,
    _heartbeat: AbortOnDrop,
}

impl Receiver {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let Some(message) = self.buffer.pop_front() else {
                self.receive().await?;
                continue;
            };
            let Some(receipt) = message.receipt_handle().map(str::to_owned) else {
                continue;
            };
            match decode_envelope(message.body().map(str::as_bytes)) {
                Ok(envelope) => {
                    let traceparent = message
                        .message_attributes()
                        .and_then(|attributes| attributes.get("traceparent"))
                        .and_then(|value| value.string_value())
                        .map(str::to_owned);
                    let delivery = Delivery::with_ack(envelope, self.deleting(receipt));
                    return Ok(delivery.traced(traceparent));
                }
                Err(error) => self.release_undecodable(receipt, &error).await,
            }
        }
    }

    /// Long-polls for more messages into the buffer, holding each.
    async fn receive(&mut self) -> Result<(), BusError> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let output = match received {
            Ok(output) => output,
            Err(error) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                return Err(sdk_unavailable(error));
            }
        };
        let messages = output.messages.unwrap_or_default();
        let mut held = self.held.lock();
        for message in &messages {
            if let Some(receipt) = message.receipt_handle() {
                held.insert(receipt.to_owned());
            }
        }
        drop(held);
        self.buffer.extend(messages);
        Ok(())
    }

    /// The acknowledgement of a message: delete it (and stop holding it).
    fn deleting(&self, receipt: String) -> Acknowledge {
        let sqs = self.sqs.clone();
        let queue_url = self.queue_url.clone();
        let held = self.held.clone();
        Box::new(move || {
            Box::pin(async move {
                held.lock().remove(&receipt);
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(sdk_unavailable)
            }) as BoxFuture<'static, _>
        })
    }

    /// Makes a message that is not an envelope visible again at once: after
    /// `maxReceiveCount` receives SQS moves it to the dead-letter queue.
    async fn release_undecodable(&self, receipt: String, error: &str) {
        tracing::error!(queue = %self.queue_url, %error, "a message is not an envelope; it goes to the dead-letter queue after repeated receives");
        metrics::counter!("catalog_bus_undecodable_total", "bus" => "sns+sqs").increment(1);
        self.held.lock().remove(&receipt);
        let _ = self
            .sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

/// Keeps received, unacknowledged messages invisible while the projector works on them.
async fn extend_visibility(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    held: Arc<Mutex<HashSet<String>>>,
    visibility_seconds: i32,
) {
    let heartbeat = Duration::from_millis(visibility_seconds as u64 * 1000 / 3);
    let mut tick = tokio::time::interval(heartbeat);
    tick.tick().await;
    loop {
        tick.tick().await;
        let receipts: Vec<String> = held.lock().iter().cloned().collect();
        for receipt in receipts {
            let extended = sqs
                .change_message_visibility()
                .queue_url(&queue_url)
                .receipt_handle(&receipt)
                .visibility_timeout(visibility_seconds)
                .send()
                .await;
            match extended {
                Ok(_) => metrics::counter!("catalog_bus_visibility_extended_total").increment(1),
                Err(error) => {
                    tracing::debug!(error = %describe(&error), "cannot extend a message's visibility");
                    // A receipt that is no longer valid will never be: forget it.
                    held.lock().remove(&receipt);
                }
            }
        }
    }
}
