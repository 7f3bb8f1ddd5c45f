//! `TantivyIndex`: the embedded search adapter, a tantivy index in a directory.
//!
//! - **Analysis**: names, brands and descriptions go through the `catalog` analyzer (split on
//!   non-alphanumerics, lower-case, fold accents, English stemming), so "Cafés" finds "cafe" and
//!   "mats" finds "mat". SKUs are kept whole and lower-cased.
//! - **Matching**: every word must match in name (×3), brand (×2) or description (×1); a word
//!   of five letters or more may be one edit off (a fuzzy term, scored below an exact one); the
//!   last word also matches as a prefix (search as you type). A query equal to a SKU finds it
//!   first. When all-words finds nothing for several words, any word may match.
//! - **Filters** (category, brand, price range, in stock, published only) do not change scores.
//! - **Writes**: one thread owns the `IndexWriter`; `put` hands it the document and returns. It
//!   commits every 200 ms when something changed, with the projection's checkpoint as the commit
//!   payload (so a restart resumes after exactly what is durable), then reloads the reader: a
//!   write is searchable within about a quarter of a second. Until then `current` answers from
//!   an overlay of pending documents.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use events::ProductStatus;
use parking_lot::Mutex;
use projectors::read_model::ProductView;
use serde::{Deserialize, Serialize};
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::agg_result::{AggregationResult, AggregationResults, BucketResult};
use tantivy::aggregation::{AggContextParams, AggregationCollector, Key};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, RangeQuery,
    TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    STRING,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, SimpleTokenizer, Stemmer, TextAnalyzer,
    TokenStream,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Score, Searcher,
    TantivyDocument, Term,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    allowed_edits, edit_distance, words, Facets, Highlight, PriceBucket, SearchError, SearchHit,
    SearchIndex, SearchQuery, SearchResults, SearchSort, SearchWriter, PRICE_BUCKETS,
};

const ANALYZER: &str = "catalog";
const RAW_LOWER: &str = "lowercase_raw";
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// How long the writer sleeps when it has nothing to commit (any command wakes it).
const IDLE_WAIT: Duration = Duration::from_secs(60);
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// The deepest result a cursor may reach.
const MAX_OFFSET: usize = 10_000;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    name: Field,
    description: Field,
    brand: Field,
    sku: Field,
    category: Field,
    brand_key: Field,
    brand_raw: Field,
    price: Field,
    stock: Field,
    created: Field,
    status: Field,
    doc: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let analyzed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        name: builder.add_text_field("name", analyzed.clone()),
        description: builder.add_text_field("description", analyzed.clone()),
        brand: builder.add_text_field("brand", analyzed),
        sku: builder.add_text_field(
            "sku",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(RAW_LOWER)
                    .set_index_option(IndexRecordOption::Basic),
            ),
        ),
        category: builder.add_text_field("category", STRING | FAST),
        brand_key: builder.add_text_field("brand_key", STRING),
        brand_raw: builder.add_text_field("brand_raw", STRING | FAST),
        price: builder.add_i64_field("price_cents", INDEXED | FAST),
        stock: builder.add_i64_field("stock", INDEXED | FAST),
        created: builder.add_i64_field("created", INDEXED | FAST),
        status: builder.add_text_field("status", STRING),
        doc: builder.add_text_field("doc", STORED),
    };
    (builder.build(), fields)
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The same analyzer without stemming: what a partly typed last word is compared with.
fn folding() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while let Some(token) = stream.next() {
        out.push(token.text.clone());
    }
    out
}

fn unavailable(error: impl std::fmt::Display) -> SearchError {
    SearchError::Unavailable(error.to_string())
}

enum Command {
    Put(Box<ProductView>, u64, u64),
    Advance(u64),
}

/// The embedded search index; see the module documentation.
pub struct TantivyIndex {
    fields: Fields,
    reader: IndexReader,
    commands: std::sync::mpsc::Sender<Command>,
    /// Documents handed to the writer and not yet searchable, with the put's sequence number.
    pending: Arc<Mutex<HashMap<Uuid, (u64, ProductView)>>>,
    sequence: AtomicU64,
    /// The checkpoint of the last commit (what is searchable and durable).
    committed: watch::Sender<u64>,
}

/// A search cursor: where the next page starts in the result list, and which search it is
/// for (a cursor of another search is refused).
#[derive(Serialize, Deserialize)]
struct Cursor {
    offset: usize,
    search: u64,
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

impl TantivyIndex {
    /// Opens (creating when missing) the index in `directory` and starts its writer thread.
    pub fn open(directory: &Path) -> Result<Arc<Self>, SearchError> {
        std::fs::create_dir_all(directory).map_err(unavailable)?;
        let (schema, fields) = schema();
        let mmap = MmapDirectory::open(directory).map_err(unavailable)?;
        let index = Index::open_or_create(mmap, schema).map_err(|error| {
            SearchError::Unavailable(format!(
                "cannot open the search index in {} ({error}); delete the directory to rebuild it",
                directory.display()
            ))
        })?;
        index.tokenizers().register(ANALYZER, analyzer());
        index.tokenizers().register(
            RAW_LOWER,
            TextAnalyzer::builder(RawTokenizer::default())
                .filter(LowerCaser)
                .build(),
        );
        let checkpoint = index
            .load_metas()
            .map_err(unavailable)?
            .payload
            .and_then(|payload| payload.parse::<u64>().ok())
            .unwrap_or(0);
        // The lock may still be held for a moment by a writer of this directory that is
        // closing (a restart within one process: its last commit runs as it lets go).
        let mut attempts = 0;
        let writer: IndexWriter = loop {
            match index.writer_with_num_threads(1, WRITER_MEMORY_BYTES) {
                Ok(writer) => break writer,
                Err(tantivy::TantivyError::LockFailure(..)) if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(tantivy::TantivyError::LockFailure(..)) => {
                    return Err(SearchError::Unavailable(format!(
                        "the search index in {} is in use by another process",
                        directory.display()
                    )))
                }
                Err(error) => return Err(unavailable(error)),
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(unavailable)?;
        let (commands, received) = std::sync::mpsc::channel();
        let (committed, _) = watch::channel(checkpoint);
        let model = Arc::new(TantivyIndex {
            fields,
            reader,
            commands,
            pending: Arc::default(),
            sequence: AtomicU64::new(0),
            committed,
        });
        let worker = Arc::downgrade(&model);
        std::thread::Builder::new()
            .name("search-writer".into())
            .spawn(move || write_loop(worker, writer, received, checkpoint))
            .map_err(unavailable)?;
        Ok(model)
    }

    fn document(&self, product: &ProductView) -> TantivyDocument {
        let fields = self.fields;
        let mut document = TantivyDocument::default();
        document.add_text(fields.id, product.id.to_string());
        document.add_text(fields.name, &product.name);
        document.add_text(fields.description, &product.description);
        if let Some(brand) = &product.brand {
            document.add_text(fields.brand, brand);
            document.add_text(fields.brand_key, brand.to_lowercase());
            document.add_text(fields.brand_raw, brand);
        }
        document.add_text(fields.sku, &product.sku);
        document.add_text(fields.category, &product.category);
        document.add_i64(fields.price, product.price_cents);
        document.add_i64(fields.stock, product.stock);
        document.add_i64(fields.created, product.created_at.timestamp_micros());
        document.add_text(fields.status, product.status.as_str());
        document.add_text(
            fields.doc,
            serde_json::to_string(product).unwrap_or_default(),
        );
        document
    }

    fn stored(&self, searcher: &Searcher, address: DocAddress) -> Option<ProductView> {
        let document: TantivyDocument = searcher.doc(address).ok()?;
        let text = document.get_first(self.fields.doc)?.as_str()?.to_owned();
        serde_json::from_str(&text).ok()
    }

    /// The query's text part: `None` for a search without words (everything).
    fn text_query(&self, text: &str, all_words: bool) -> Option<Box<dyn Query>> {
        let typed = words(text);
        if typed.is_empty() {
            return None;
        }
        let mut stemmer = analyzer();
        let mut fold = folding();
        let fields = self.fields;
        let boosted = [
            (fields.name, 3.0),
            (fields.brand, 2.0),
            (fields.description, 1.0),
        ];
        let last = typed.len() - 1;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (index, word) in typed.iter().enumerate() {
            let stems = tokens(&mut stemmer, word);
            let folded = tokens(&mut fold, word);
            let (Some(stem), Some(folded)) = (stems.first(), folded.first()) else {
                continue;
            };
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost) in boosted {
                let exact = TermQuery::new(
                    Term::from_field_text(field, stem),
                    IndexRecordOption::WithFreqs,
                );
                alternatives.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(exact), boost)),
                ));
                let edits = allowed_edits(word);
                if edits > 0 {
                    // Against the stem and the unstemmed word: a typo can throw the stemmer off
                    // ("wireles" stems to "wirele", one edit from nothing indexed).
                    let mut forms = vec![stem.as_str()];
                    if folded != stem {
                        forms.push(folded.as_str());
                    }
                    for form in forms {
                        let fuzzy =
                            FuzzyTermQuery::new(Term::from_field_text(field, form), edits, true);
                        alternatives.push((
                            Occur::Should,
                            Box::new(BoostQuery::new(Box::new(fuzzy), boost * 0.5)),
                        ));
                    }
                }
                if index == last {
                    let prefix =
                        FuzzyTermQuery::new_prefix(Term::from_field_text(field, folded), 0, true);
                    alternatives.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(prefix), boost * 0.4)),
                    ));
                }
            }
            let occur = if all_words {
                Occur::Must
            } else {
                Occur::Should
            };
            clauses.push((occur, Box::new(BooleanQuery::new(alternatives))));
        }
        if clauses.is_empty() {
            return None;
        }
        let words_query: Box<dyn Query> = Box::new(BooleanQuery::new(clauses));
        // A query equal to a SKU finds that product first.
        let sku = TermQuery::new(
            Term::from_field_text(fields.sku, &text.trim().to_lowercase()),
            IndexRecordOption::Basic,
        );
        Some(Box::new(BooleanQuery::new(vec![
            (Occur::Should, words_query),
            (
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(sku), 20.0)),
            ),
        ])))
    }

    fn filters(&self, query: &SearchQuery) -> Vec<(Occur, Box<dyn Query>)> {
        let fields = self.fields;
        let constant = |query: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
        };
        let mut filters = vec![constant(Box::new(TermQuery::new(
            Term::from_field_text(fields.status, ProductStatus::Published.as_str()),
            IndexRecordOption::Basic,
        )))];
        if let Some(category) = &query.category {
            filters.push(constant(Box::new(TermQuery::new(
                Term::from_field_text(fields.category, category),
                IndexRecordOption::Basic,
            ))));
        }
        if let Some(brand) = &query.brand {
            filters.push(constant(Box::new(TermQuery::new(
                Term::from_field_text(fields.brand_key, &brand.to_lowercase()),
                IndexRecordOption::Basic,
            ))));
        }
        if query.min_price.is_some() || query.max_price.is_some() {
            let lower = query.min_price.map_or(Bound::Unbounded, |min| {
                Bound::Included(Term::from_field_i64(fields.price, min))
            });
            let upper = query.max_price.map_or(Bound::Unbounded, |max| {
                Bound::Included(Term::from_field_i64(fields.price, max))
            });
            filters.push(constant(Box::new(RangeQuery::new(lower, upper))));
        }
        if query.in_stock {
            filters.push(constant(Box::new(RangeQuery::new(
                Bound::Excluded(Term::from_field_i64(fields.stock, 0)),
                Bound::Unbounded,
            ))));
        }
        filters
    }

    fn full_query(&self, query: &SearchQuery, all_words: bool) -> (Box<dyn Query>, bool) {
        let text = self.text_query(&query.text, all_words);
        let has_text = text.is_some();
        let mut clauses = self.filters(query);
        clauses.push((Occur::Must, text.unwrap_or_else(|| Box::new(AllQuery))));
        (Box::new(BooleanQuery::new(clauses)), has_text)
    }

    fn facets(&self, results: &AggregationResults) -> Facets {
        let mut facets = Facets::empty();
        let terms = |name: &str| -> BTreeMap<String, u64> {
            match results.0.get(name) {
                Some(AggregationResult::BucketResult(BucketResult::Terms { buckets, .. })) => {
                    buckets
                        .iter()
                        .filter_map(|bucket| match &bucket.key {
                            Key::Str(key) => Some((key.clone(), bucket.doc_count)),
                            _ => None,
                        })
                        .collect()
                }
                _ => BTreeMap::new(),
            }
        };
        facets.category = terms("category");
        facets.brand = terms("brand");
        if let Some(AggregationResult::BucketResult(BucketResult::Range { buckets })) =
            results.0.get("price")
        {
            facets.price = buckets
                .iter()
                .zip(PRICE_BUCKETS.iter())
                .map(|(bucket, (from, to))| PriceBucket {
                    from: *from,
                    to: *to,
                    count: bucket.doc_count,
                })
                .collect();
        }
        facets
    }

    fn aggregations() -> Aggregations {
        serde_json::from_value(serde_json::json!({
            "category": {"terms": {"field": "category", "size": 100}},
            "brand": {"terms": {"field": "brand_raw", "size": 100}},
            "price": {"range": {"field": "price_cents", "ranges": [
                {"to": 2500.0}, {"from": 2500.0, "to": 10000.0}, {"from": 10000.0}
            ]}}
        }))
        .unwrap_or_default()
    }

    /// Highlights: the document's own words that match a query word (the same word, one edit
    /// off, or continuing the last word), marked in `<em>`.
    fn highlight(&self, text: &str, product: &ProductView) -> Highlight {
        let typed = words(text);
        if typed.is_empty() {
            return Highlight::default();
        }
        let mut stemmer = analyzer();
        let mut fold = folding();
        let wanted: Vec<(String, String, u8, bool)> = typed
            .iter()
            .enumerate()
            .filter_map(|(index, word)| {
                Some((
                    tokens(&mut stemmer, word).first()?.clone(),
                    tokens(&mut fold, word).first()?.clone(),
                    allowed_edits(word),
                    index == typed.len() - 1,
                ))
            })
            .collect();
        let mut marked = |field: Field, value: &str| -> Option<String> {
            let mut terms = BTreeMap::new();
            for word in words(value) {
                let (Some(token), Some(plain)) = (
                    tokens(&mut stemmer, &word).first().cloned(),
                    tokens(&mut fold, &word).first().cloned(),
                ) else {
                    continue;
                };
                let hit = wanted.iter().any(|(stem, folded, edits, last)| {
                    token == *stem
                        || plain == *folded
                        || (*edits > 0
                            && (edit_distance(&token, stem) <= usize::from(*edits)
                                || edit_distance(&plain, folded) <= usize::from(*edits)))
                        || (*last && plain.starts_with(folded.as_str()))
                });
                if hit {
                    terms.insert(token, 1.0 as Score);
                }
            }
            if terms.is_empty() {
                return None;
            }
            let generator = SnippetGenerator::new(terms, analyzer(), field, 160);
            let mut snippet = generator.snippet(value);
            snippet.set_snippet_prefix_postfix("<em>", "</em>");
            let html = snippet.to_html();
            (!html.is_empty()).then_some(html)
        };
        Highlight {
            name: marked(self.fields.name, &product.name),
            description: marked(self.fields.description, &product.description),
        }
    }

    fn run_search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let offset = match &query.cursor {
            None => 0,
            Some(text) => {
                let cursor: Cursor = URL_SAFE_NO_PAD
                    .decode(text)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .ok_or_else(|| {
                        SearchError::Invalid("cursor is not one this API gave out".into())
                    })?;
                if cursor.search != fingerprint(query) {
                    return Err(SearchError::Invalid(
                        "cursor belongs to another search; start again without it".into(),
                    ));
                }
                cursor.offset
            }
        };
        if offset > MAX_OFFSET {
            return Err(SearchError::Invalid(format!(
                "results beyond the first {MAX_OFFSET} are not paged; narrow the search"
            )));
        }
        let searcher = self.reader.searcher();
        let position = *self.committed.borrow();
        let (mut full, has_text) = self.full_query(query, true);
        let mut count = searcher.search(&full, &Count).map_err(unavailable)?;
        if count == 0 && has_text && words(&query.text).len() > 1 {
            full = self.full_query(query, false).0;
            count = searcher.search(&full, &Count).map_err(unavailable)?;
        }
        let aggregation =
            AggregationCollector::from_aggs(Self::aggregations(), AggContextParams::default());
        let limit = query.limit.max(1);
        let sort = if !has_text && query.sort == SearchSort::Relevance {
            SearchSort::Newest
        } else {
            query.sort
        };
        let (addresses, aggregations): (Vec<DocAddress>, AggregationResults) = match sort {
            SearchSort::Relevance => {
                let (top, aggregations) = searcher
                    .search(
                        &full,
                        &(
                            TopDocs::with_limit(limit)
                                .and_offset(offset)
                                .order_by_score(),
                            aggregation,
                        ),
                    )
                    .map_err(unavailable)?;
                (
                    top.into_iter().map(|(_, address)| address).collect(),
                    aggregations,
                )
            }
            sorted => {
                let (field, order) = match sorted {
                    SearchSort::PriceAsc => ("price_cents", Order::Asc),
                    SearchSort::PriceDesc => ("price_cents", Order::Desc),
                    _ => ("created", Order::Desc),
                };
                let (top, aggregations) = searcher
                    .search(
                        &full,
                        &(
                            TopDocs::with_limit(limit)
                                .and_offset(offset)
                                .order_by_fast_field::<i64>(field, order),
                            aggregation,
                        ),
                    )
                    .map_err(unavailable)?;
                (
                    top.into_iter().map(|(_, address)| address).collect(),
                    aggregations,
                )
            }
        };
        let hits: Vec<SearchHit> = addresses
            .into_iter()
            .filter_map(|address| self.stored(&searcher, address))
            .map(|product| SearchHit {
                highlight: self.highlight(&query.text, &product),
                product: Arc::new(product),
            })
            .collect();
        let next = offset + hits.len();
        let next_cursor = (next < count && !hits.is_empty()).then(|| {
            URL_SAFE_NO_PAD.encode(
                serde_json::to_vec(&Cursor {
                    offset: next,
                    search: fingerprint(query),
                })
                .unwrap_or_default(),
            )
        });
        Ok(SearchResults {
            hits,
            total: count as u64,
            facets: self.facets(&aggregations),
            next_cursor,
            position,
        })
    }

    /// Documents in the index (all statuses), for tests and the index build report.
    pub fn document_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

fn write_loop(
    model: std::sync::Weak<TantivyIndex>,
    mut writer: IndexWriter,
    commands: std::sync::mpsc::Receiver<Command>,
    mut checkpoint: u64,
) {
    let mut dirty = false;
    let mut last_sequence = 0;
    let mut last_commit = Instant::now();
    loop {
        // Idle (nothing to commit): sleep until a command comes. A zero timeout here would
        // spin a core while the index has nothing to do.
        let wait = if dirty {
            COMMIT_EVERY.saturating_sub(last_commit.elapsed())
        } else {
            IDLE_WAIT
        };
        match commands.recv_timeout(wait) {
            Ok(Command::Put(product, position, sequence)) => {
                let Some(strong) = model.upgrade() else {
                    return;
                };
                writer.delete_term(Term::from_field_text(
                    strong.fields.id,
                    &product.id.to_string(),
                ));
                if let Err(error) = writer.add_document(strong.document(&product)) {
                    tracing::error!(%error, "cannot index a product");
                }
                checkpoint = checkpoint.max(position);
                last_sequence = sequence;
                dirty = true;
            }
            Ok(Command::Advance(position)) => {
                if position > checkpoint {
                    checkpoint = position;
                    dirty = true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The index is closing: make what was written durable.
                if dirty {
                    let _ = writer.prepare_commit().and_then(|mut prepared| {
                        prepared.set_payload(&checkpoint.to_string());
                        prepared.commit()
                    });
                }
                return;
            }
        }
        if !dirty || last_commit.elapsed() < COMMIT_EVERY {
            continue;
        }
        let Some(strong) = model.upgrade() else {
            return;
        };
        let started = Instant::now();
        let committed = writer.prepare_commit().and_then(|mut prepared| {
            prepared.set_payload(&checkpoint.to_string());
            prepared.commit()
        });
        match committed {
            Ok(_) => {
                if let Err(error) = strong.reader.reload() {
                    tracing::warn!(%error, "cannot reload the search reader");
                }
                strong
                    .pending
                    .lock()
                    .retain(|_, (sequence, _)| *sequence > last_sequence);
                strong.committed.send_replace(checkpoint);
                metrics::histogram!("catalog_search_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                dirty = false;
            }
            Err(error) => tracing::error!(%error, "cannot commit the search index; retrying"),
        }
        last_commit = Instant::now();
    }
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let started = Instant::now();
        // A search takes about a millisecond of CPU: run it in place rather than pay a hop to
        // the blocking pool.
        let result = self.run_search(query);
        metrics::histogram!("catalog_search_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    fn position(&self) -> u64 {
        *self.committed.borrow()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut receiver = self.committed.subscribe();
        let reached =
            tokio::time::timeout(timeout, receiver.wait_for(|current| *current >= position)).await;
        matches!(reached, Ok(Ok(_)))
    }
}

#[async_trait]
impl SearchWriter for TantivyIndex {
    async fn current(&self, id: Uuid) -> Result<Option<ProductView>, SearchError> {
        if let Some((_, product)) = self.pending.lock().get(&id) {
            return Ok(Some(product.clone()));
        }
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, &id.to_string()),
            IndexRecordOption::Basic,
        );
        let hits: Vec<(Score, DocAddress)> = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(unavailable)?;
        Ok(hits
            .first()
            .and_then(|(_, address)| self.stored(&searcher, *address)))
    }

    async fn put(&self, product: ProductView, checkpoint: u64) -> Result<(), SearchError> {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        self.pending
            .lock()
            .insert(product.id, (sequence, product.clone()));
        self.commands
            .send(Command::Put(Box::new(product), checkpoint, sequence))
            .map_err(|_| SearchError::Unavailable("the search writer stopped".into()))
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.commands
            .send(Command::Advance(checkpoint))
            .map_err(|_| SearchError::Unavailable("the search writer stopped".into()))
    }

    async fn checkpoint(&self) -> Result<u64, SearchError> {
        Ok(*self.committed.borrow())
    }
}
