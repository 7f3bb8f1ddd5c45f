//! Group commit, shared by both adapters: appends wait in a channel for the adapter's one
//! writer task, which takes every append waiting and commits them in one transaction. Under
//! load, many concurrent commands cost one commit (one WAL flush), not one each; alone, an
//! append commits at once. Each append of a group still succeeds or fails on its own.

use events::store::{StoreError, StreamAppend};
use events::Envelope;
use tokio::sync::{mpsc, oneshot};

/// Appends waiting for the writer are grouped up to this many per transaction.
pub const MAX_BATCH_APPENDS: usize = 256;
/// … or this many events, whichever comes first (one oversized append still goes alone).
pub const MAX_BATCH_EVENTS: usize = 5_000;

pub type AppendResult = Result<Vec<Envelope>, StoreError>;

/// One caller's append, and where its answer goes.
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub answer: oneshot::Sender<AppendResult>,
}

impl AppendRequest {
    fn event_count(&self) -> usize {
        self.streams.iter().map(|stream| stream.events.len()).sum()
    }
}

/// The sending side of a writer task's queue.
#[derive(Clone)]
pub struct Appender {
    requests: mpsc::Sender<AppendRequest>,
}

/// Creates a writer queue; the receiver goes to the adapter's writer task.
pub fn queue() -> (Appender, mpsc::Receiver<AppendRequest>) {
    let (requests, receiver) = mpsc::channel(4 * MAX_BATCH_APPENDS);
    (Appender { requests }, receiver)
}

impl Appender {
    /// Queues `streams` for the writer and waits for their answer.
    pub async fn append(&self, streams: Vec<StreamAppend>) -> AppendResult {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the event store writer stopped".into());
        self.requests
            .send(AppendRequest { streams, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// The next group: waits for one append, then takes every append already waiting, up to the
/// limits. `None` once every [`Appender`] is gone.
pub async fn next_group(
    requests: &mut mpsc::Receiver<AppendRequest>,
) -> Option<Vec<AppendRequest>> {
    let first = requests.recv().await?;
    let mut events = first.event_count();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH_APPENDS && events < MAX_BATCH_EVENTS {
        match requests.try_recv() {
            Ok(request) => {
                events += request.event_count();
                batch.push(request);
            }
            Err(_) => break,
        }
    }
    metrics::histogram!("catalog_event_store_group_commit_appends").record(batch.len() as f64);
    Some(batch)
}

/// Answers every append of a group: each its own result, or all the transaction's failure.
pub fn answer_group(batch: Vec<AppendRequest>, outcome: Result<Vec<AppendResult>, StoreError>) {
    match outcome {
        Ok(results) => {
            for (request, result) in batch.into_iter().zip(results) {
                let _ = request.answer.send(result);
            }
        }
        Err(error) => {
            tracing::warn!(%error, appends = batch.len(), "group commit failed");
            let message = error.to_string();
            for request in batch {
                let failure = match &error {
                    StoreError::Unavailable(_) => StoreError::Unavailable(message.clone()),
                    // A version taken by another writer: the caller decides again.
                    StoreError::Conflict { .. } => match request.streams.first() {
                        Some(stream) => StoreError::Conflict {
                            aggregate_id: stream.aggregate_id,
                            expected_version: stream.expected_version,
                        },
                        None => StoreError::Unexpected(message.clone()),
                    },
                    _ => StoreError::Unexpected(message.clone()),
                };
                let _ = request.answer.send(Err(failure));
            }
        }
    }
}
