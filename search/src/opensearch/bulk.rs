//! Bulk indexing: `put` buffers; a flush sends one `_bulk` request of up to 500 documents
//! with `refresh=wait_for` (a flushed write is searchable when the call returns). Items
//! refused with 429 or 5xx are retried with backoff; other refusals are logged and counted
//! (`catalog_search_rejected_total`). The checkpoint stored after a flush is the highest below
//! which nothing waits for the index any more, so a restart never skips a buffered document.
//!
//! The answer is read item by item, in the order of the request: an answer without `items`,
//! or with another number of items than documents sent, is an error, and the whole batch is
//! buffered again (indexing a document twice replaces it with itself), so the checkpoint never
//! moves past a document nobody acknowledged. Flushes run one at a time: the checkpoint a
//! flush stores must not pass a batch another flush still has in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opensearch::http::request::JsonBody;
use opensearch::params::Refresh;
use opensearch::{BulkParts, OpenSearch};
use parking_lot::Mutex;
use projectors::read_model::ProductView;
use serde_json::{json, Value};
use uuid::Uuid;

use super::checkpoints::Checkpoints;
use super::mapping::{document, unavailable};
use crate::SearchError;

const FLUSH_DOCUMENTS: usize = 500;

struct Pending {
    product: ProductView,
    checkpoint: u64,
    sequence: u64,
    attempts: u32,
}

pub(super) struct BulkWriter {
    client: OpenSearch,
    /// Where documents go: the alias, or a generation being rebuilt.
    index: String,
    /// Documents waiting for the next bulk request.
    buffer: Mutex<Vec<Pending>>,
    /// Documents handed to `put` and not yet acknowledged by a bulk request.
    overlay: Mutex<HashMap<Uuid, (u64, ProductView)>>,
    sequence: AtomicU64,
    /// The highest checkpoint of anything handled: documents in the index (or refused for
    /// good) and events that changed nothing here.
    handled: AtomicU64,
    /// Held for the whole of a flush (see the module documentation).
    flushing: tokio::sync::Mutex<()>,
}

impl BulkWriter {
    pub(super) fn new(client: OpenSearch, index: &str) -> Self {
        BulkWriter {
            client,
            index: index.to_owned(),
            buffer: Mutex::new(Vec::new()),
            overlay: Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// A product put and not yet acknowledged.
    pub(super) fn overlaid(&self, id: Uuid) -> Option<ProductView> {
        self.overlay
            .lock()
            .get(&id)
            .map(|(_, product)| product.clone())
    }

    pub(super) fn put(&self, product: ProductView, checkpoint: u64) {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        self.overlay
            .lock()
            .insert(product.id, (sequence, product.clone()));
        self.buffer.lock().push(Pending {
            product,
            checkpoint,
            sequence,
            attempts: 0,
        });
    }

    /// How many documents wait for a bulk request.
    pub(super) fn buffered(&self) -> usize {
        self.buffer.lock().len()
    }

    pub(super) fn advance(&self, checkpoint: u64) {
        self.handled.fetch_max(checkpoint, Ordering::SeqCst);
    }

    /// Sends one bulk request of what is buffered; retries refusals worth retrying; stores the
    /// checkpoint up to which everything is handled.
    pub(super) async fn flush(&self, checkpoints: &Checkpoints) -> Result<(), SearchError> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch: Vec<Pending> = {
            let mut buffer = self.buffer.lock();
            let take = buffer.len().min(FLUSH_DOCUMENTS);
            buffer.drain(..take).collect()
        };
        if !batch.is_empty() {
            self.send_bulk(batch).await?;
        }
        let durable = self.durable_checkpoint();
        if durable > checkpoints.position().current() {
            checkpoints.store(durable).await?;
        }
        Ok(())
    }

    async fn send_bulk(&self, batch: Vec<Pending>) -> Result<(), SearchError> {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(batch.len() * 2);
        for pending in &batch {
            body.push(json!({"index": {"_index": self.index, "_id": pending.product.id}}).into());
            body.push(document(&pending.product).into());
        }
        let sent = self
            .client
            .bulk(BulkParts::Index(&self.index))
            .refresh(Refresh::WaitFor)
            .body(body)
            .send()
            .await;
        let response: Value = match sent {
            Ok(response) if response.status_code().is_success() => {
                response.json().await.map_err(unavailable)?
            }
            Ok(response) => {
                let status = response.status_code();
                self.requeue(batch);
                return Err(SearchError::Unavailable(format!(
                    "OpenSearch bulk answered {status}"
                )));
            }
            Err(error) => {
                self.requeue(batch);
                return Err(unavailable(error));
            }
        };
        let Some(items) = response["items"].as_array().cloned() else {
            let sent = batch.len();
            self.requeue(batch);
            return Err(SearchError::Unexpected(format!(
                "OpenSearch answered a bulk request of {sent} documents without items; \
                 they are sent again"
            )));
        };
        if items.len() != batch.len() {
            let sent = batch.len();
            self.requeue(batch);
            return Err(SearchError::Unexpected(format!(
                "OpenSearch answered a bulk request of {sent} documents with {} items; \
                 they are sent again",
                items.len()
            )));
        }
        let retry = self.settle(batch, &items);
        if !retry.is_empty() {
            let attempts = retry
                .iter()
                .map(|pending| pending.attempts)
                .max()
                .unwrap_or(0);
            self.requeue(retry);
            tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempts.min(6)))).await;
        }
        Ok(())
    }

    /// Reads the bulk answer item by item: what is in (or refused for good) is handled and
    /// leaves the overlay; what is returned are the documents to retry.
    fn settle(&self, batch: Vec<Pending>, items: &[Value]) -> Vec<Pending> {
        let mut retry = Vec::new();
        for (pending, item) in batch
            .into_iter()
            .zip(items.iter().map(|item| &item["index"]))
        {
            let status = item["status"].as_u64().unwrap_or(500);
            let answered_for = item["_id"].as_str();
            if answered_for.is_some_and(|id| id != pending.product.id.to_string()) {
                tracing::warn!(
                    product_id = %pending.product.id,
                    answered_for = answered_for.unwrap_or(""),
                    "a bulk item answered for another document; the document is sent again"
                );
                retry.push(pending);
                continue;
            }
            if status == 429 || status >= 500 {
                retry.push(pending);
                continue;
            }
            if !(200..300).contains(&status) {
                metrics::counter!("catalog_search_rejected_total").increment(1);
                tracing::error!(
                    product_id = %pending.product.id,
                    status,
                    reason = %item["error"]["reason"].as_str().unwrap_or(""),
                    "OpenSearch refused a document; it is left out of the index"
                );
            }
            self.handled.fetch_max(pending.checkpoint, Ordering::SeqCst);
            let mut overlay = self.overlay.lock();
            if overlay
                .get(&pending.product.id)
                .is_some_and(|(sequence, _)| *sequence == pending.sequence)
            {
                overlay.remove(&pending.product.id);
            }
        }
        retry
    }

    /// The highest checkpoint below which nothing waits for the index any more.
    fn durable_checkpoint(&self) -> u64 {
        let handled = self.handled.load(Ordering::SeqCst);
        let waiting = self
            .buffer
            .lock()
            .iter()
            .map(|pending| pending.checkpoint)
            .min();
        match waiting {
            Some(lowest) => handled.min(lowest.saturating_sub(1)),
            None => handled,
        }
    }

    fn requeue(&self, mut batch: Vec<Pending>) {
        for pending in &mut batch {
            pending.attempts += 1;
        }
        let mut buffer = self.buffer.lock();
        let later = std::mem::take(&mut *buffer);
        buffer.extend(batch);
        buffer.extend(later);
    }
}
