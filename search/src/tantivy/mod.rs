//! `TantivyIndex`: the embedded search adapter, a tantivy index in a directory.
//!
//! - **Analysis** ([`schema`]): names, brands and descriptions go through the `catalog`
//!   analyzer (split on non-alphanumerics, lower-case, fold accents, English stemming), so
//!   "Cafés" finds "cafe" and "mats" finds "mat". SKUs are kept whole and lower-cased.
//! - **Matching** ([`query`]): every word must match in name (×3), brand (×2) or description
//!   (×1); a word of five letters or more may be one edit off (a fuzzy term, scored below an
//!   exact one); the last word also matches as a prefix (search as you type). A query equal to
//!   a SKU finds it first. When all-words finds nothing for several words, any word may match.
//! - **Filters** (category, brand, price range, in stock, published only) do not change scores.
//! - **Answers** ([`reader`], [`aggregations`], [`highlight`]): the page, facets, highlights.
//! - **Writes** ([`writer`]): one thread owns the `IndexWriter`; `put` hands it the document
//!   and returns. It commits every 200 ms when something changed, with the projection's
//!   checkpoint as the commit payload (so a restart resumes after exactly what is durable),
//!   then reloads the reader: a write is searchable within about a quarter of a second. Until
//!   then `current` answers from an overlay of pending documents.

mod aggregations;
mod highlight;
mod query;
mod reader;
mod schema;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::Watermark;
use projectors::read_model::ProductView;
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, Index, IndexWriter, ReloadPolicy, Score, Term};
use uuid::Uuid;

use self::reader::{run_search, unavailable};
use self::schema::{register_analyzers, stored};
use self::writer::{write_loop, Command, Shared};
use crate::{
    SearchError, SearchIndex, SearchQuery, SearchResults, SearchWriter, SuggestQuery, Suggestions,
    Synonyms,
};

const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// The embedded search index; see the module documentation.
pub struct TantivyIndex {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    sequence: AtomicU64,
}

impl TantivyIndex {
    /// Opens (creating when missing) the index in `directory` and starts its writer thread.
    pub fn open(directory: &Path) -> Result<Arc<Self>, SearchError> {
        std::fs::create_dir_all(directory).map_err(unavailable)?;
        let (schema, fields) = schema::schema();
        let mmap = MmapDirectory::open(directory).map_err(unavailable)?;
        let index = Index::open_or_create(mmap, schema).map_err(|error| {
            SearchError::Unavailable(format!(
                "cannot open the search index in {} ({error}); delete the directory to rebuild it",
                directory.display()
            ))
        })?;
        register_analyzers(&index);
        let checkpoint = index
            .load_metas()
            .map_err(unavailable)?
            .payload
            .and_then(|payload| payload.parse::<u64>().ok())
            .unwrap_or(0);
        let writer = take_writer(&index, directory)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(unavailable)?;
        let (commands, received) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared {
            fields,
            reader,
            pending: Default::default(),
            committed: Watermark::new(checkpoint),
        });
        let worker = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("search-writer".into())
            .spawn(move || write_loop(worker, writer, received, checkpoint))
            .map_err(unavailable)?;
        Ok(Arc::new(TantivyIndex {
            shared,
            commands,
            sequence: AtomicU64::new(0),
        }))
    }

    /// Documents in the index (all statuses), for tests and the index build report.
    pub fn document_count(&self) -> u64 {
        self.shared.reader.searcher().num_docs()
    }
}

/// The index's writer. The lock may still be held for a moment by a writer of this directory
/// that is closing (a restart within one process: its last commit runs as it lets go).
fn take_writer(index: &Index, directory: &Path) -> Result<IndexWriter, SearchError> {
    let mut attempts = 0;
    loop {
        match index.writer_with_num_threads(1, WRITER_MEMORY_BYTES) {
            Ok(writer) => return Ok(writer),
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
    }
}

fn writer_stopped<T>(_: T) -> SearchError {
    SearchError::Unavailable("the search writer stopped".into())
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let started = Instant::now();
        // A search takes about a millisecond of CPU: run it in place rather than pay a hop to
        // the blocking pool.
        let shared = &self.shared;
        let result = run_search(&shared.fields, &shared.reader, &shared.committed, query);
        metrics::histogram!("catalog_search_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    async fn suggest(&self, _query: &SuggestQuery) -> Result<Suggestions, SearchError> {
        Ok(Suggestions::default())
    }

    async fn synonyms(&self) -> Result<Synonyms, SearchError> {
        Ok(Synonyms::default())
    }

    fn position(&self) -> u64 {
        self.shared.committed.current()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.shared.committed.wait_for(position, timeout).await
    }
}

#[async_trait]
impl SearchWriter for TantivyIndex {
    async fn current(&self, id: Uuid) -> Result<Option<ProductView>, SearchError> {
        if let Some((_, product)) = self.shared.pending.lock().get(&id) {
            return Ok(Some(product.clone()));
        }
        let searcher = self.shared.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.shared.fields.id, &id.to_string()),
            IndexRecordOption::Basic,
        );
        let hits: Vec<(Score, DocAddress)> = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(unavailable)?;
        Ok(hits
            .first()
            .and_then(|(_, address)| stored(&self.shared.fields, &searcher, *address)))
    }

    async fn put(&self, product: ProductView, checkpoint: u64) -> Result<(), SearchError> {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared
            .pending
            .lock()
            .insert(product.id, (sequence, product.clone()));
        self.commands
            .send(Command::Put(Box::new(product), checkpoint, sequence))
            .map_err(writer_stopped)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.commands
            .send(Command::Advance(checkpoint))
            .map_err(writer_stopped)
    }

    async fn set_synonyms(&self, _synonyms: Synonyms, checkpoint: u64) -> Result<(), SearchError> {
        self.advance(checkpoint).await
    }

    async fn checkpoint(&self) -> Result<u64, SearchError> {
        Ok(self.shared.committed.current())
    }
}
