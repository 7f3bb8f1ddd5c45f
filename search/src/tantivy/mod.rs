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
//! - **Answers** ([`reader`], [`facets`], [`highlight`], [`suggest`]): the page, the total and
//!   the facets in one collector pass (a ticked category or brand counted again without its
//!   filter), highlights of the page only, suggestions and did-you-mean from the name and brand
//!   words.
//! - **Cost**: a search runs on tokio's blocking pool behind a semaphore of one permit per core,
//!   so a slow search never holds an async worker (or `/healthz`) and searches beyond the cores
//!   queue instead of competing; one that cannot start within its budget answers
//!   `Unavailable` (503 with `Retry-After`), and one that runs past its budget skips the work
//!   it has not started ([`reader::Deadline`]).
//! - **Synonyms**: a document of its own in the index (never found), written like a product and
//!   read back at each commit; a typed word also matches the other words of its groups.
//! - **Writes** ([`writer`]): one thread owns the `IndexWriter`; `put` hands it the document
//!   and returns. It commits every 200 ms when something changed, with the projection's
//!   checkpoint as the commit payload (so a restart resumes after exactly what is durable),
//!   then reloads the reader: a write is searchable within about a quarter of a second. Until
//!   then `current` answers from an overlay of pending documents.

mod expansions;
mod facets;
mod generations;
mod highlight;
mod query;
mod reader;
mod schema;
mod suggest;
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

use self::query::Context;
use self::reader::{run_search, unavailable, Deadline, Snapshot};
use self::schema::{register_analyzers, stored, SCHEMA_VERSION};
use self::writer::{write_loop, Command, Shared};
use crate::{
    SearchError, SearchIndex, SearchQuery, SearchResults, SearchWriter, SuggestQuery, Suggestions,
    Synonyms,
};
pub use generations::{TantivyGenerations, SEARCH_VIEW_VERSION};

const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// How long a search may take, waiting for a permit included.
pub const SEARCH_BUDGET: Duration = Duration::from_millis(500);

/// The file in the index directory naming the schema version its index was written with.
const SCHEMA_FILE: &str = "catalog-schema-version";

/// Ranking switches, all on in the product. The relevance test turns one off to show that its
/// thresholds would catch a ranking without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Name ×3, brand ×2, description ×1 (off: every field ×1).
    pub field_boosts: bool,
    /// One edit for words of five letters or more (off: exact words and prefixes only).
    pub typo_tolerance: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            field_boosts: true,
            typo_tolerance: true,
        }
    }
}

/// The embedded search index; see the module documentation.
pub struct TantivyIndex {
    shared: Arc<Shared>,
    commands: Sender<Command>,
    sequence: AtomicU64,
    /// The highest checkpoint handed to the writer (what [`TantivyIndex::flushed`] waits for).
    sent: AtomicU64,
    permits: Arc<tokio::sync::Semaphore>,
    tuning: Tuning,
    expansions: Arc<expansions::Expansions>,
}

/// Empties `directory` when it holds an index of another schema version (it is rebuilt from the
/// events: its checkpoint goes with it), and records the current version.
fn check_schema_version(directory: &Path) -> Result<(), SearchError> {
    let marker = directory.join(SCHEMA_FILE);
    let current = SCHEMA_VERSION.to_string();
    let recorded = std::fs::read_to_string(&marker).ok();
    if recorded.as_deref().map(str::trim) == Some(current.as_str()) {
        return Ok(());
    }
    if directory.join("meta.json").exists() {
        tracing::warn!(
            directory = %directory.display(),
            found = recorded.as_deref().unwrap_or("none"),
            wanted = SCHEMA_VERSION,
            "the search index has another schema version; rebuilding it from the events"
        );
        for entry in std::fs::read_dir(directory).map_err(unavailable)? {
            let path = entry.map_err(unavailable)?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(unavailable)?;
            } else {
                std::fs::remove_file(&path).map_err(unavailable)?;
            }
        }
    }
    std::fs::write(&marker, current).map_err(unavailable)
}

impl TantivyIndex {
    /// Opens (creating when missing) the index in `directory` and starts its writer thread.
    pub fn open(directory: &Path) -> Result<Arc<Self>, SearchError> {
        Self::open_tuned(directory, Tuning::default())
    }

    /// [`open`](Self::open) with ranking switches (for the relevance test).
    pub fn open_tuned(directory: &Path, tuning: Tuning) -> Result<Arc<Self>, SearchError> {
        std::fs::create_dir_all(directory).map_err(unavailable)?;
        check_schema_version(directory)?;
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
        let synonyms = writer::stored_synonyms(&fields, &reader.searcher());
        let shared = Arc::new(Shared {
            fields,
            reader,
            pending: Default::default(),
            committed: Watermark::new(checkpoint),
            synonyms: parking_lot::RwLock::new(Arc::new(synonyms)),
        });
        let worker = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("search-writer".into())
            .spawn(move || write_loop(worker, writer, received, checkpoint))
            .map_err(unavailable)?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Arc::new(TantivyIndex {
            shared,
            commands,
            sequence: AtomicU64::new(0),
            sent: AtomicU64::new(checkpoint),
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            tuning,
            expansions: Default::default(),
        }))
    }

    /// Runs `work` over a snapshot of the last commit on the blocking pool, once a permit is
    /// free, within [`SEARCH_BUDGET`].
    async fn with_snapshot<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Snapshot<'_>, Deadline) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        let deadline = Deadline::after(SEARCH_BUDGET);
        let permit = tokio::time::timeout(SEARCH_BUDGET, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                metrics::counter!("catalog_search_rejected_busy_total").increment(1);
                SearchError::Unavailable("every search worker is busy; retry shortly".into())
            })?
            .map_err(|_| SearchError::Unavailable("the search index is closing".into()))?;
        let shared = self.shared.clone();
        let tuning = self.tuning;
        let expansions = self.expansions.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let searcher = shared.reader.searcher();
            let position = shared.committed.current();
            let synonyms = shared.synonyms.read().clone();
            let snapshot = Snapshot {
                position,
                context: Context {
                    fields: &shared.fields,
                    searcher: &searcher,
                    expansions: &expansions,
                    synonyms: &synonyms,
                    tuning,
                },
            };
            work(&snapshot, deadline)
        })
        .await
        .map_err(|error| SearchError::Unexpected(format!("a search stopped: {error}")))?
    }

    /// Waits until everything handed to the writer is committed and searchable.
    pub(crate) async fn flushed(&self, timeout: Duration) -> bool {
        let sent = self.sent.load(Ordering::SeqCst);
        self.shared.committed.wait_for(sent, timeout).await
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
        let query = query.clone();
        let result = self
            .with_snapshot(move |snapshot, deadline| run_search(snapshot, &query, deadline))
            .await;
        metrics::histogram!("catalog_search_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    async fn suggest(&self, query: &SuggestQuery) -> Result<Suggestions, SearchError> {
        let query = query.clone();
        self.with_snapshot(move |snapshot, _| {
            suggest::suggest(snapshot.context.searcher, snapshot.context, &query)
        })
        .await
    }

    async fn synonyms(&self) -> Result<Synonyms, SearchError> {
        Ok(self.shared.synonyms.read().as_ref().clone())
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
        self.sent.fetch_max(checkpoint, Ordering::SeqCst);
        self.commands
            .send(Command::Put(Box::new(product), checkpoint, sequence))
            .map_err(writer_stopped)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.sent.fetch_max(checkpoint, Ordering::SeqCst);
        self.commands
            .send(Command::Advance(checkpoint))
            .map_err(writer_stopped)
    }

    async fn set_synonyms(&self, synonyms: Synonyms, checkpoint: u64) -> Result<(), SearchError> {
        self.sent.fetch_max(checkpoint, Ordering::SeqCst);
        self.commands
            .send(Command::Synonyms(synonyms, checkpoint))
            .map_err(writer_stopped)
    }

    async fn checkpoint(&self) -> Result<u64, SearchError> {
        Ok(self.shared.committed.current())
    }
}
