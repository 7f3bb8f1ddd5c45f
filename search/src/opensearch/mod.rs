//! `OpenSearchIndex`: the distributed search adapter (`CATALOG_SEARCH=opensearch://host:9200`),
//! answering as the embedded tantivy adapter does (the port's contract in `lib.rs`).
//!
//! - **Index template** `catalog-products` for indices `catalog-products-*` (`mapping`): the
//!   `catalog` analyzer (standard tokenizer, lowercase, ASCII folding, English stemmer), the
//!   same fields as the embedded index, keyword fields for filters and facets, and the
//!   unstemmed `name.words` / `brand.words` that suggestions and did-you-mean read.
//! - **Generations behind an alias** (`generations`): documents are written and searched
//!   through the alias `catalog-products`, created pointing at `catalog-products-v1`; a
//!   rebuild indexes into `catalog-products-vN+1` (its checkpoint in `_doc/search-vN+1`), then
//!   moves the alias in one `_aliases` call (remove and add), stores the new checkpoint as the
//!   live one, and deletes generation N after the grace period.
//! - **Bulk indexing** (`bulk`): `put` buffers; a flusher sends a `_bulk` request every 200 ms
//!   or 500 documents, with `refresh=wait_for` (a flushed write is searchable when the call
//!   returns). The answer is checked item by item; items refused with 429 or 5xx are retried
//!   with backoff; other refusals are logged and counted (`catalog_search_rejected_total`); an
//!   answer without items is an error and the batch is sent again. The projection's checkpoint
//!   is stored in `catalog-checkpoints/_doc/search` after everything up to it is in
//!   (`checkpoints`), the synonyms in `catalog-checkpoints/_doc/synonyms`.
//! - **Queries** (`query`): the tantivy adapter's query in the DSL: per word exact, fuzzy and
//!   (last word) prefix clauses, synonyms expanded at query time, a SKU `term`; filters in
//!   filter context, category and brand as `post_filter` under `filter` aggregations
//!   (multi-select facets); `search_after` cursors on `[sort value, id]`; highlights in `<em>`,
//!   HTML-escaped. When every word finds nothing for several words, a second request lets any
//!   word match; when that finds nothing too, a third asks the `term` suggester for
//!   `did_you_mean`.
//! - **Readiness** ([`OpenSearchIndex::ready`]): the cluster is not red and the alias exists.

mod bulk;
mod checkpoints;
mod generations;
mod mapping;
mod query;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opensearch::cluster::ClusterHealthParts;
use opensearch::http::transport::Transport;
use opensearch::indices::{
    IndicesCreateParts, IndicesExistsAliasParts, IndicesPutIndexTemplateParts,
};
use opensearch::{GetParts, OpenSearch, SearchParts};
use projectors::read_model::ProductView;
use serde_json::json;
use uuid::Uuid;

use self::bulk::BulkWriter;
use self::checkpoints::Checkpoints;
pub use self::mapping::{document, endpoint, index_template, ALIAS, CHECKPOINTS, FIRST_GENERATION};
use self::mapping::{get_json, json_body, unavailable};
pub use self::query::{
    did_you_mean_body, parse_did_you_mean, parse_search, parse_suggestions, search_body,
    suggest_body, text_clause, total_hits, Words,
};
use crate::{
    query_words, SearchError, SearchIndex, SearchQuery, SearchResults, SearchWriter, SuggestQuery,
    Suggestions, Synonyms,
};

const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often a query process reads the stored checkpoint.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// The OpenSearch adapter; see the module documentation.
pub struct OpenSearchIndex {
    client: OpenSearch,
    /// Where this index writes and reads: the alias, or a generation being rebuilt.
    index: String,
    writer: BulkWriter,
    checkpoints: Checkpoints,
    /// The generation a rebuild is writing, between `prepare` and `switch`.
    next: parking_lot::Mutex<Option<Arc<OpenSearchIndex>>>,
}

impl OpenSearchIndex {
    /// A client for `url` (`opensearch://host:9200`); talks to the server only when used.
    pub fn connect(url: &str) -> Result<Arc<Self>, SearchError> {
        let transport = Transport::single_node(&endpoint(url)?).map_err(unavailable)?;
        Ok(Arc::new(Self::writing(
            OpenSearch::new(transport),
            ALIAS,
            "",
        )))
    }

    /// The index that writes `index`, its checkpoints under ids ending with `suffix`.
    fn writing(client: OpenSearch, index: &str, suffix: &str) -> Self {
        OpenSearchIndex {
            writer: BulkWriter::new(client.clone(), index),
            checkpoints: Checkpoints::new(client.clone(), suffix),
            index: index.to_owned(),
            next: parking_lot::Mutex::new(None),
            client,
        }
    }

    /// Creates the index template, and the first generation behind the alias when there is no
    /// alias yet (`catalog search setup`, and the projector at start). Safe to run again.
    pub async fn setup(&self) -> Result<Vec<String>, SearchError> {
        let mut report = Vec::new();
        self.client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(ALIAS))
            .body(index_template())
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        report.push(format!("index template {ALIAS}"));
        let exists = self
            .client
            .indices()
            .exists_alias(IndicesExistsAliasParts::Name(&[ALIAS]))
            .send()
            .await
            .map_err(unavailable)?;
        if exists.status_code().is_success() {
            report.push(format!("alias {ALIAS} exists"));
            return Ok(report);
        }
        self.client
            .indices()
            .create(IndicesCreateParts::Index(FIRST_GENERATION))
            .body(json!({"aliases": {ALIAS: {"is_write_index": true}}}))
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        report.push(format!("created {FIRST_GENERATION} behind alias {ALIAS}"));
        Ok(report)
    }

    /// Starts the flusher (for the projector's writer). Stops when the index is dropped.
    pub fn start_flushing(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                let Some(strong) = weak.upgrade() else { return };
                if let Err(error) = strong.flush().await {
                    tracing::warn!(%error, "bulk indexing failed; retrying");
                }
            }
        });
    }

    /// Starts following the stored checkpoint (for query processes, which do not write).
    pub fn start_following(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(strong) = weak.upgrade() else { return };
                let _ = strong.checkpoints.refresh().await;
                drop(strong);
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        });
    }

    /// Sends one bulk request of what is buffered; retries refusals worth retrying; stores the
    /// checkpoint up to which everything is handled.
    pub async fn flush(&self) -> Result<(), SearchError> {
        self.writer.flush(&self.checkpoints).await
    }

    /// Whether OpenSearch takes searches now: the cluster's health is not red and the alias
    /// `catalog-products` exists (the readiness check of the processes that use it).
    pub async fn ready(&self) -> Result<(), SearchError> {
        let health = json_body(
            self.client
                .cluster()
                .health(ClusterHealthParts::None)
                .send()
                .await
                .map_err(unavailable)?,
        )
        .await?;
        match health["status"].as_str() {
            Some("green" | "yellow") => {}
            Some(status) => {
                return Err(SearchError::Unavailable(format!(
                    "OpenSearch cluster health is {status}"
                )))
            }
            None => {
                return Err(SearchError::Unexpected(
                    "OpenSearch answered its cluster health without a status".into(),
                ))
            }
        }
        let alias = self
            .client
            .indices()
            .exists_alias(IndicesExistsAliasParts::Name(&[ALIAS]))
            .send()
            .await
            .map_err(unavailable)?;
        if !alias.status_code().is_success() {
            return Err(SearchError::Unavailable(format!(
                "OpenSearch has no alias {ALIAS} (HTTP {}): the projectors role creates it at \
                 start, `catalog search setup` too",
                alias.status_code().as_u16()
            )));
        }
        Ok(())
    }

    /// Sends one `_search` to the alias and returns its answer.
    async fn send_search(&self, body: serde_json::Value) -> Result<serde_json::Value, SearchError> {
        let response = self
            .client
            .search(SearchParts::Index(&[ALIAS]))
            .body(body)
            .send()
            .await
            .map_err(unavailable)?;
        if response.status_code().as_u16() == 400 {
            let body = response.text().await.unwrap_or_default();
            return Err(SearchError::Unexpected(format!(
                "OpenSearch refused a search: {body}"
            )));
        }
        json_body(response).await
    }

    /// The correction of a search that found nothing; `None` when there is none or the
    /// suggester does not answer (a search that found nothing is still an answer).
    async fn did_you_mean(&self, text: &str) -> Option<String> {
        let body = did_you_mean_body(text)?;
        match self.send_search(body).await {
            Ok(response) => parse_did_you_mean(&response),
            Err(error) => {
                tracing::warn!(%error, "OpenSearch did not answer the did-you-mean suggester");
                None
            }
        }
    }

    /// Sends buffered documents until none waits (the documents before a synonyms change).
    async fn flush_everything(&self) -> Result<(), SearchError> {
        while self.writer.buffered() > 0 {
            self.flush().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl SearchIndex for OpenSearchIndex {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let after = match &query.cursor {
            Some(cursor) => Some(query::decode_cursor(cursor, query)?),
            None => None,
        };
        let position = self.checkpoints.position().current();
        let synonyms = self.checkpoints.synonyms();
        let mut response = self
            .send_search(search_body(query, after.as_ref(), &synonyms, Words::All))
            .await?;
        if total_hits(&response) == 0 && query_words(&query.text).len() > 1 {
            response = self
                .send_search(search_body(query, after.as_ref(), &synonyms, Words::Any))
                .await?;
        }
        let mut results = parse_search(&response, query, position)?;
        if results.total == 0 {
            results.did_you_mean = self.did_you_mean(&query.text).await;
        }
        Ok(results)
    }

    async fn suggest(&self, query: &SuggestQuery) -> Result<Suggestions, SearchError> {
        let Some(body) = suggest_body(query) else {
            return Ok(Suggestions::default());
        };
        let response = self.send_search(body).await?;
        parse_suggestions(&response, query)
    }

    async fn synonyms(&self) -> Result<Synonyms, SearchError> {
        self.checkpoints.stored_synonyms().await
    }

    fn position(&self) -> u64 {
        self.checkpoints.position().current()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.checkpoints
            .position()
            .wait_for(position, timeout)
            .await
    }
}

#[async_trait]
impl SearchWriter for OpenSearchIndex {
    async fn current(&self, id: Uuid) -> Result<Option<ProductView>, SearchError> {
        if let Some(product) = self.writer.overlaid(id) {
            return Ok(Some(product));
        }
        let id_text = id.to_string();
        let Some(body) = get_json(&self.client, GetParts::IndexId(&self.index, &id_text)).await?
        else {
            return Ok(None);
        };
        if body["found"] != json!(true) {
            return Ok(None);
        }
        serde_json::from_value(body["_source"]["doc"].clone())
            .map(Some)
            .map_err(|error| SearchError::Unexpected(format!("a stored document: {error}")))
    }

    async fn put(&self, product: ProductView, checkpoint: u64) -> Result<(), SearchError> {
        self.writer.put(product, checkpoint);
        Ok(())
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.writer.advance(checkpoint);
        Ok(())
    }

    async fn set_synonyms(&self, synonyms: Synonyms, checkpoint: u64) -> Result<(), SearchError> {
        // The documents before the change go in first; the synonyms are stored before their
        // checkpoint (see `checkpoints`), which the flush after them stores.
        self.flush_everything().await?;
        self.checkpoints
            .store_synonyms(&synonyms, checkpoint)
            .await?;
        self.writer.advance(checkpoint);
        self.flush().await
    }

    async fn checkpoint(&self) -> Result<u64, SearchError> {
        self.checkpoints.refresh().await
    }
}
