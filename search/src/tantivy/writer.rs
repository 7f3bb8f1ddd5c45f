//! The writer thread: the one owner of the `IndexWriter`. It indexes what `put` hands it,
//! commits every [`COMMIT_EVERY`] when something changed (with the projection's checkpoint as
//! the commit payload, so a restart resumes after exactly what is durable), reloads the reader,
//! drops the overlay entries the commit made searchable, and only then moves the committed
//! watermark: a waiter woken at `p` finds everything up to `p` searchable.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use events::Watermark;
use parking_lot::{Mutex, RwLock};
use projectors::read_model::ProductView;
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{IndexReader, IndexWriter, Searcher, TantivyDocument, Term};
use uuid::Uuid;

use super::schema::{document, settings_document, Fields, SETTINGS_ID};
use crate::Synonyms;

const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// How long the writer sleeps when it has nothing to commit (any command wakes it).
const IDLE_WAIT: Duration = Duration::from_secs(60);

/// What the index and its writer thread share. Only the index holds it strongly, so the
/// writer stops once the index is dropped.
pub(super) struct Shared {
    pub fields: Fields,
    pub reader: IndexReader,
    /// Documents handed to the writer and not yet searchable, with the put's sequence number.
    pub pending: Mutex<HashMap<Uuid, (u64, ProductView)>>,
    /// The checkpoint of the last commit (what is searchable and durable).
    pub committed: Watermark,
    /// The synonyms of the last commit.
    pub synonyms: RwLock<Arc<Synonyms>>,
}

pub(super) enum Command {
    /// A product's document, the checkpoint to store with it, the put's sequence number.
    Put(Box<ProductView>, u64, u64),
    Advance(u64),
    /// New synonyms and the checkpoint of their event.
    Synonyms(Synonyms, u64),
}

/// What the writer has taken in since its last commit.
struct Uncommitted {
    checkpoint: u64,
    dirty: bool,
    last_sequence: u64,
    /// Synonyms written since the last commit.
    synonyms: Option<Synonyms>,
}

/// The synonyms stored in the index, none when it has none.
pub(super) fn stored_synonyms(fields: &Fields, searcher: &Searcher) -> Synonyms {
    let query = TermQuery::new(
        Term::from_field_text(fields.id, SETTINGS_ID),
        IndexRecordOption::Basic,
    );
    let Ok(hits) = searcher.search(&query, &TopDocs::with_limit(1).order_by_score()) else {
        return Synonyms::default();
    };
    hits.first()
        .and_then(|(_, address)| searcher.doc::<TantivyDocument>(*address).ok())
        .and_then(|document| {
            document
                .get_first(fields.doc)
                .and_then(|value| value.as_str())
                .and_then(|text| serde_json::from_str(text).ok())
        })
        .unwrap_or_default()
}

/// The writer thread's loop; returns when the index is dropped (committing what it wrote).
pub(super) fn write_loop(
    shared: Weak<Shared>,
    mut writer: IndexWriter,
    commands: Receiver<Command>,
    checkpoint: u64,
) {
    let mut state = Uncommitted {
        checkpoint,
        dirty: false,
        last_sequence: 0,
        synonyms: None,
    };
    let mut last_commit = Instant::now();
    loop {
        // Idle (nothing to commit): sleep until a command comes. A zero timeout here would
        // spin a core while the index has nothing to do.
        let wait = if state.dirty {
            COMMIT_EVERY.saturating_sub(last_commit.elapsed())
        } else {
            IDLE_WAIT
        };
        match commands.recv_timeout(wait) {
            Ok(command) => {
                if !take(&shared, &mut writer, &mut state, command) {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // The index is closing: make what was written durable.
                if state.dirty {
                    let _ = commit(&mut writer, state.checkpoint);
                }
                return;
            }
        }
        if !state.dirty || last_commit.elapsed() < COMMIT_EVERY {
            continue;
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        publish(&strong, &mut writer, &mut state);
        last_commit = Instant::now();
    }
}

/// Takes one command in; `false` when the index is gone.
fn take(
    shared: &Weak<Shared>,
    writer: &mut IndexWriter,
    state: &mut Uncommitted,
    command: Command,
) -> bool {
    match command {
        Command::Put(product, position, sequence) => {
            let Some(strong) = shared.upgrade() else {
                return false;
            };
            writer.delete_term(Term::from_field_text(
                strong.fields.id,
                &product.id.to_string(),
            ));
            if let Err(error) = writer.add_document(document(&strong.fields, &product)) {
                tracing::error!(%error, "cannot index a product");
            }
            state.checkpoint = state.checkpoint.max(position);
            state.last_sequence = sequence;
            state.dirty = true;
        }
        Command::Synonyms(synonyms, position) => {
            let Some(strong) = shared.upgrade() else {
                return false;
            };
            writer.delete_term(Term::from_field_text(strong.fields.id, SETTINGS_ID));
            if let Err(error) = writer.add_document(settings_document(&strong.fields, &synonyms)) {
                tracing::error!(%error, "cannot store the synonyms");
            }
            state.checkpoint = state.checkpoint.max(position);
            state.synonyms = Some(synonyms);
            state.dirty = true;
        }
        Command::Advance(position) => {
            if position > state.checkpoint {
                state.checkpoint = position;
                state.dirty = true;
            }
        }
    }
    true
}

fn commit(writer: &mut IndexWriter, checkpoint: u64) -> tantivy::Result<u64> {
    writer.prepare_commit().and_then(|mut prepared| {
        prepared.set_payload(&checkpoint.to_string());
        prepared.commit()
    })
}

/// Commits, makes the commit searchable, then moves the committed watermark.
fn publish(shared: &Arc<Shared>, writer: &mut IndexWriter, state: &mut Uncommitted) {
    let started = Instant::now();
    match commit(writer, state.checkpoint) {
        Ok(_) => {
            if let Err(error) = shared.reader.reload() {
                tracing::warn!(%error, "cannot reload the search reader");
            }
            let last_sequence = state.last_sequence;
            shared
                .pending
                .lock()
                .retain(|_, (sequence, _)| *sequence > last_sequence);
            if let Some(synonyms) = state.synonyms.take() {
                *shared.synonyms.write() = Arc::new(synonyms);
            }
            shared.committed.advance(state.checkpoint);
            metrics::histogram!("catalog_search_commit_seconds")
                .record(started.elapsed().as_secs_f64());
            state.dirty = false;
        }
        Err(error) => tracing::error!(%error, "cannot commit the search index; retrying"),
    }
}
