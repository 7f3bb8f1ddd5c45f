//! `OpenSearchIndex`: the distributed search adapter (`CATALOG_SEARCH=opensearch://host:9200`).
//!
//! - **Index template** `catalog-products` for indices `catalog-products-*`: the `catalog`
//!   analyzer (standard tokenizer, lowercase, ASCII folding, English stemmer), the same fields
//!   as the embedded index, and keyword fields for filters and facets.
//! - **Generations behind an alias**: documents are written and searched through the alias
//!   `catalog-products`, created pointing at `catalog-products-v1`; a rebuild indexes into a new
//!   generation and swaps the alias.
//! - **Bulk indexing**: `put` buffers; a flusher sends a `_bulk` request every 200 ms or 500
//!   documents, with `refresh=wait_for` (a flushed write is searchable when the call returns).
//!   Items refused with 429 or 5xx are retried with backoff; other refusals are logged and
//!   counted (`catalog_search_rejected_total`). The projection's checkpoint is stored in
//!   `catalog-checkpoints/_doc/search` after everything up to it is in.
//! - **Queries**: `multi_match` of type `bool_prefix` over name^3, brand^2, description with
//!   `fuzziness: AUTO:5,100` (one edit from five letters) and `operator: and`, or a SKU `term`;
//!   filters in `filter` context; `terms`/`range` aggregations for facets; `search_after`
//!   cursors on `[sort value, id]`; highlights in `<em>`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use opensearch::http::request::JsonBody;
use opensearch::http::transport::Transport;
use opensearch::indices::{
    IndicesCreateParts, IndicesExistsAliasParts, IndicesPutIndexTemplateParts,
};
use opensearch::params::Refresh;
use opensearch::{BulkParts, GetParts, IndexParts, OpenSearch, SearchParts};
use parking_lot::Mutex;
use projectors::read_model::ProductView;
use serde_json::{json, Value};
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    words, Facets, Highlight, PriceBucket, SearchError, SearchHit, SearchIndex, SearchQuery,
    SearchResults, SearchSort, SearchWriter, PRICE_BUCKETS,
};

pub const ALIAS: &str = "catalog-products";
pub const FIRST_GENERATION: &str = "catalog-products-v1";
pub const CHECKPOINTS: &str = "catalog-checkpoints";
const FLUSH_EVERY: Duration = Duration::from_millis(200);
const FLUSH_DOCUMENTS: usize = 500;

/// Parses `CATALOG_SEARCH=opensearch://host:9200` (`opensearchs://` for TLS).
pub fn endpoint(url: &str) -> Result<String, SearchError> {
    let invalid = |why: &str| SearchError::Invalid(format!("CATALOG_SEARCH {url:?}: {why}"));
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("opensearch://") {
        ("http", rest)
    } else if let Some(rest) = url.strip_prefix("opensearchs://") {
        ("https", rest)
    } else {
        return Err(invalid(
            "use opensearch://host:9200 (or opensearchs:// for TLS)",
        ));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(invalid("name the host and port"));
    }
    Ok(format!("{scheme}://{host}"))
}

/// The index template (settings and mappings) every generation is created from.
pub fn index_template() -> Value {
    json!({
        "index_patterns": ["catalog-products-*"],
        "template": {
            "settings": {
                "number_of_shards": 1,
                "analysis": {
                    "analyzer": {
                        "catalog": {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "asciifolding", "catalog_english_stemmer"]
                        }
                    },
                    "filter": {
                        "catalog_english_stemmer": {"type": "stemmer", "language": "english"}
                    },
                    "normalizer": {
                        "lowercase": {"type": "custom", "filter": ["lowercase", "asciifolding"]}
                    }
                }
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "id": {"type": "keyword"},
                    "name": {"type": "text", "analyzer": "catalog"},
                    "description": {"type": "text", "analyzer": "catalog"},
                    "brand": {"type": "text", "analyzer": "catalog"},
                    "brand_raw": {"type": "keyword"},
                    "brand_key": {"type": "keyword", "normalizer": "lowercase"},
                    "sku_key": {"type": "keyword", "normalizer": "lowercase"},
                    "category": {"type": "keyword"},
                    "price_cents": {"type": "long"},
                    "stock": {"type": "long"},
                    "created": {"type": "long"},
                    "version": {"type": "long"},
                    "status": {"type": "keyword"},
                    "doc": {"type": "object", "enabled": false}
                }
            }
        }
    })
}

/// The document of a product.
pub fn document(product: &ProductView) -> Value {
    json!({
        "id": product.id,
        "name": product.name,
        "description": product.description,
        "brand": product.brand,
        "brand_raw": product.brand,
        "brand_key": product.brand,
        "sku_key": product.sku,
        "category": product.category,
        "price_cents": product.price_cents,
        "stock": product.stock,
        "created": product.created_at.timestamp_micros(),
        "version": product.version,
        "status": product.status.as_str(),
        "doc": product,
    })
}

/// The search request body for `query` (filters in filter context, facets as aggregations).
pub fn search_body(query: &SearchQuery, search_after: Option<&Value>) -> Value {
    let text = words(&query.text).join(" ");
    let mut filter = vec![json!({"term": {"status": "published"}})];
    if let Some(category) = &query.category {
        filter.push(json!({"term": {"category": category}}));
    }
    if let Some(brand) = &query.brand {
        filter.push(json!({"term": {"brand_key": brand.to_lowercase()}}));
    }
    if query.min_price.is_some() || query.max_price.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(min) = query.min_price {
            range.insert("gte".into(), json!(min));
        }
        if let Some(max) = query.max_price {
            range.insert("lte".into(), json!(max));
        }
        filter.push(json!({"range": {"price_cents": range}}));
    }
    if query.in_stock {
        filter.push(json!({"range": {"stock": {"gt": 0}}}));
    }
    let matching = if text.is_empty() {
        json!({"bool": {"filter": filter}})
    } else {
        json!({"bool": {
            "should": [
                {"multi_match": {
                    "query": text,
                    "type": "bool_prefix",
                    "fields": ["name^3", "brand^2", "description"],
                    "fuzziness": "AUTO:5,100",
                    "operator": "and"
                }},
                {"term": {"sku_key": {"value": query.text.trim().to_lowercase(), "boost": 20}}}
            ],
            "minimum_should_match": 1,
            "filter": filter
        }})
    };
    let sort = match (query.sort, text.is_empty()) {
        (SearchSort::Relevance, false) => json!(["_score", {"id": "asc"}]),
        (SearchSort::PriceAsc, _) => json!([{"price_cents": "asc"}, {"id": "asc"}]),
        (SearchSort::PriceDesc, _) => json!([{"price_cents": "desc"}, {"id": "asc"}]),
        _ => json!([{"created": "desc"}, {"id": "asc"}]),
    };
    let mut body = json!({
        "size": query.limit,
        "track_total_hits": true,
        "query": matching,
        "sort": sort,
        "aggs": {
            "category": {"terms": {"field": "category", "size": 100}},
            "brand": {"terms": {"field": "brand_raw", "size": 100}},
            "price": {"range": {"field": "price_cents", "ranges": [
                {"to": 2500}, {"from": 2500, "to": 10000}, {"from": 10000}
            ]}}
        },
        "highlight": {
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": {"name": {"number_of_fragments": 0}, "description": {"fragment_size": 160, "number_of_fragments": 1}}
        }
    });
    if let Some(after) = search_after {
        body["search_after"] = after.clone();
    }
    body
}

/// Reads a search response into results. `next_cursor` carries the last hit's sort values.
pub fn parse_search(
    response: &Value,
    query: &SearchQuery,
    position: u64,
) -> Result<SearchResults, SearchError> {
    let malformed =
        |what: &str| SearchError::Unexpected(format!("OpenSearch answered without {what}"));
    let hits_value = response["hits"]["hits"]
        .as_array()
        .ok_or_else(|| malformed("hits"))?;
    let mut hits = Vec::with_capacity(hits_value.len());
    for hit in hits_value {
        let product: ProductView = serde_json::from_value(hit["_source"]["doc"].clone())
            .map_err(|error| SearchError::Unexpected(format!("a hit's document: {error}")))?;
        let fragment = |field: &str| {
            hit["highlight"][field]
                .as_array()
                .and_then(|fragments| fragments.first())
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        hits.push(SearchHit {
            highlight: Highlight {
                name: fragment("name"),
                description: fragment("description"),
            },
            product: Arc::new(product),
        });
    }
    let total = response["hits"]["total"]["value"]
        .as_u64()
        .unwrap_or(hits.len() as u64);
    let terms = |name: &str| -> BTreeMap<String, u64> {
        response["aggregations"][name]["buckets"]
            .as_array()
            .map(|buckets| {
                buckets
                    .iter()
                    .filter_map(|bucket| {
                        Some((
                            bucket["key"].as_str()?.to_owned(),
                            bucket["doc_count"].as_u64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut facets = Facets::empty();
    facets.category = terms("category");
    facets.brand = terms("brand");
    if let Some(buckets) = response["aggregations"]["price"]["buckets"].as_array() {
        facets.price = buckets
            .iter()
            .zip(PRICE_BUCKETS.iter())
            .map(|(bucket, (from, to))| PriceBucket {
                from: *from,
                to: *to,
                count: bucket["doc_count"].as_u64().unwrap_or(0),
            })
            .collect();
    }
    let next_cursor = if hits_value.len() == query.limit {
        hits_value
            .last()
            .map(|hit| encode_cursor(&hit["sort"], query))
    } else {
        None
    };
    Ok(SearchResults {
        hits,
        total,
        facets,
        next_cursor,
        position,
    })
}

fn fingerprint(query: &SearchQuery) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &query.text,
        &query.category,
        &query.brand,
        query.min_price,
        query.max_price,
        query.in_stock,
        query.sort,
    )
        .hash(&mut hasher);
    hasher.finish()
}

fn encode_cursor(sort: &Value, query: &SearchQuery) -> String {
    URL_SAFE_NO_PAD.encode(json!({"after": sort, "search": fingerprint(query)}).to_string())
}

fn decode_cursor(cursor: &str, query: &SearchQuery) -> Result<Value, SearchError> {
    let invalid = || SearchError::Invalid("cursor is not one this API gave out".into());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if value["search"].as_u64() != Some(fingerprint(query)) {
        return Err(SearchError::Invalid(
            "cursor belongs to another search; start again without it".into(),
        ));
    }
    match &value["after"] {
        Value::Array(after) if !after.is_empty() => Ok(Value::Array(after.clone())),
        _ => Err(invalid()),
    }
}

fn unavailable(error: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(format!("OpenSearch: {error}"))
}

struct Pending {
    product: ProductView,
    checkpoint: u64,
    sequence: u64,
    attempts: u32,
}

/// The OpenSearch adapter; see the module documentation.
pub struct OpenSearchIndex {
    client: OpenSearch,
    /// Documents waiting for the next bulk request.
    buffer: Mutex<Vec<Pending>>,
    /// Documents handed to `put` and not yet acknowledged by a bulk request.
    overlay: Mutex<HashMap<Uuid, (u64, ProductView)>>,
    sequence: AtomicU64,
    /// The highest checkpoint of anything handled: documents in the index (or refused for
    /// good) and events that changed nothing here.
    handled: AtomicU64,
    /// The stored checkpoint (what is in the index), as this process knows it.
    position: watch::Sender<u64>,
}

impl OpenSearchIndex {
    /// A client for `url` (`opensearch://host:9200`); talks to the server only when used.
    pub fn connect(url: &str) -> Result<Arc<Self>, SearchError> {
        let transport = Transport::single_node(&endpoint(url)?).map_err(unavailable)?;
        Ok(Arc::new(OpenSearchIndex {
            client: OpenSearch::new(transport),
            buffer: Mutex::new(Vec::new()),
            overlay: Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            position: watch::channel(0).0,
        }))
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
        } else {
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
        }
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
                if let Ok(stored) = strong.stored_checkpoint().await {
                    strong.position.send_if_modified(|current| {
                        let moved = stored > *current;
                        *current = (*current).max(stored);
                        moved
                    });
                }
                drop(strong);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    async fn stored_checkpoint(&self) -> Result<u64, SearchError> {
        let response = self
            .client
            .get(GetParts::IndexId(CHECKPOINTS, "search"))
            .send()
            .await
            .map_err(unavailable)?;
        if response.status_code().as_u16() == 404 {
            return Ok(0);
        }
        let body: Value = response
            .error_for_status_code()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        Ok(body["_source"]["position"].as_u64().unwrap_or(0))
    }

    /// Sends one bulk request of what is buffered; retries refusals worth retrying; stores the
    /// checkpoint up to which everything is handled.
    pub async fn flush(&self) -> Result<(), SearchError> {
        let batch: Vec<Pending> = {
            let mut buffer = self.buffer.lock();
            let take = buffer.len().min(FLUSH_DOCUMENTS);
            buffer.drain(..take).collect()
        };
        if !batch.is_empty() {
            self.send_bulk(batch).await?;
        }
        self.store_durable_checkpoint().await
    }

    async fn send_bulk(&self, batch: Vec<Pending>) -> Result<(), SearchError> {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(batch.len() * 2);
        for pending in &batch {
            body.push(json!({"index": {"_index": ALIAS, "_id": pending.product.id}}).into());
            body.push(document(&pending.product).into());
        }
        let sent = self
            .client
            .bulk(BulkParts::Index(ALIAS))
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
        let items = response["items"].as_array().cloned().unwrap_or_default();
        let mut retry = Vec::new();
        for (pending, item) in batch
            .into_iter()
            .zip(items.iter().map(|item| &item["index"]))
        {
            let status = item["status"].as_u64().unwrap_or(500);
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

    /// Stores the highest checkpoint below which nothing waits for the index any more.
    async fn store_durable_checkpoint(&self) -> Result<(), SearchError> {
        let handled = self.handled.load(Ordering::SeqCst);
        let waiting = self
            .buffer
            .lock()
            .iter()
            .map(|pending| pending.checkpoint)
            .min();
        let durable = match waiting {
            Some(lowest) => handled.min(lowest.saturating_sub(1)),
            None => handled,
        };
        if durable > *self.position.borrow() {
            self.store_checkpoint(durable).await?;
        }
        Ok(())
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

    async fn store_checkpoint(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.client
            .index(IndexParts::IndexId(CHECKPOINTS, "search"))
            .body(json!({"position": checkpoint}))
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        self.position.send_replace(checkpoint);
        Ok(())
    }
}

#[async_trait]
impl SearchIndex for OpenSearchIndex {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let after = match &query.cursor {
            Some(cursor) => Some(decode_cursor(cursor, query)?),
            None => None,
        };
        let position = *self.position.borrow();
        let response = self
            .client
            .search(SearchParts::Index(&[ALIAS]))
            .body(search_body(query, after.as_ref()))
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status_code();
        if status.as_u16() == 400 {
            let body = response.text().await.unwrap_or_default();
            return Err(SearchError::Unexpected(format!(
                "OpenSearch refused a search: {body}"
            )));
        }
        let body: Value = response
            .error_for_status_code()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        parse_search(&body, query, position)
    }

    fn position(&self) -> u64 {
        *self.position.borrow()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut receiver = self.position.subscribe();
        let reached =
            tokio::time::timeout(timeout, receiver.wait_for(|current| *current >= position)).await;
        matches!(reached, Ok(Ok(_)))
    }
}

#[async_trait]
impl SearchWriter for OpenSearchIndex {
    async fn current(&self, id: Uuid) -> Result<Option<ProductView>, SearchError> {
        if let Some((_, product)) = self.overlay.lock().get(&id) {
            return Ok(Some(product.clone()));
        }
        let response = self
            .client
            .get(GetParts::IndexId(ALIAS, &id.to_string()))
            .send()
            .await
            .map_err(unavailable)?;
        if response.status_code().as_u16() == 404 {
            return Ok(None);
        }
        let body: Value = response
            .error_for_status_code()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        if body["found"] != json!(true) {
            return Ok(None);
        }
        serde_json::from_value(body["_source"]["doc"].clone())
            .map(Some)
            .map_err(|error| SearchError::Unexpected(format!("a stored document: {error}")))
    }

    async fn put(&self, product: ProductView, checkpoint: u64) -> Result<(), SearchError> {
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
        Ok(())
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.handled.fetch_max(checkpoint, Ordering::SeqCst);
        Ok(())
    }

    async fn checkpoint(&self) -> Result<u64, SearchError> {
        let stored = self.stored_checkpoint().await?;
        self.position.send_if_modified(|current| {
            let moved = stored > *current;
            *current = (*current).max(stored);
            moved
        });
        Ok(stored)
    }
}
