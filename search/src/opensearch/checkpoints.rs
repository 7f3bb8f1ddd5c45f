//! What the writer stores beside the documents, in the index `catalog-checkpoints`: the search
//! projection's checkpoint (`_doc/search`, once everything up to it is in the index) and the
//! synonyms searches use (`_doc/synonyms`); and what this process knows of both.
//!
//! A query process follows them: it reads the checkpoint first and the synonyms second, and
//! only then moves its watermark. The writer stores the synonyms before the checkpoint of
//! their event, so synonyms read after a checkpoint are at least those of that checkpoint:
//! a search that waited for a position (`X-Min-Position`) uses the synonyms of that position.

use events::Watermark;
use opensearch::{GetParts, IndexParts, OpenSearch};
use parking_lot::RwLock;
use serde_json::json;

use super::mapping::{get_json, unavailable, CHECKPOINTS};
use crate::{SearchError, Synonyms};

/// The document ids in [`CHECKPOINTS`] of the live generation; a generation being rebuilt
/// keeps its own (`search-v2`, `synonyms-v2`) until the switch.
pub(super) const CHECKPOINT_ID: &str = "search";
pub(super) const SYNONYMS_ID: &str = "synonyms";

pub(super) struct Checkpoints {
    client: OpenSearch,
    checkpoint_id: String,
    synonyms_id: String,
    /// The stored checkpoint (what is in the index), as this process knows it.
    position: Watermark,
    /// The stored synonyms, as this process last read them.
    synonyms: RwLock<Synonyms>,
}

impl Checkpoints {
    pub(super) fn new(client: OpenSearch, suffix: &str) -> Self {
        Checkpoints {
            client,
            checkpoint_id: format!("{CHECKPOINT_ID}{suffix}"),
            synonyms_id: format!("{SYNONYMS_ID}{suffix}"),
            position: Watermark::new(0),
            synonyms: RwLock::new(Synonyms::default()),
        }
    }

    pub(super) fn position(&self) -> &Watermark {
        &self.position
    }

    /// The synonyms as this process last read (or wrote) them.
    pub(super) fn synonyms(&self) -> Synonyms {
        self.synonyms.read().clone()
    }

    /// The stored checkpoint (0 before the first is stored).
    pub(super) async fn stored(&self) -> Result<u64, SearchError> {
        let found = get_json(
            &self.client,
            GetParts::IndexId(CHECKPOINTS, &self.checkpoint_id),
        )
        .await?;
        Ok(found
            .and_then(|body| body["_source"]["position"].as_u64())
            .unwrap_or(0))
    }

    /// The stored synonyms (none before the first are stored).
    pub(super) async fn stored_synonyms(&self) -> Result<Synonyms, SearchError> {
        let found = get_json(
            &self.client,
            GetParts::IndexId(CHECKPOINTS, &self.synonyms_id),
        )
        .await?;
        let Some(body) = found else {
            return Ok(Synonyms::default());
        };
        if body["found"] == json!(false) {
            return Ok(Synonyms::default());
        }
        serde_json::from_value(body["_source"]["synonyms"].clone())
            .map_err(|error| SearchError::Unexpected(format!("the stored synonyms: {error}")))
    }

    /// Reads the stored checkpoint, then the stored synonyms, then moves the watermark up to
    /// the checkpoint (see the module documentation for why in this order).
    pub(super) async fn refresh(&self) -> Result<u64, SearchError> {
        let stored = self.stored().await?;
        let synonyms = self.stored_synonyms().await?;
        *self.synonyms.write() = synonyms;
        self.position.advance(stored);
        Ok(stored)
    }

    /// Stores `checkpoint`, then moves the watermark to it.
    pub(super) async fn store(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.client
            .index(IndexParts::IndexId(CHECKPOINTS, &self.checkpoint_id))
            .body(json!({"position": checkpoint}))
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        self.position.advance(checkpoint);
        Ok(())
    }

    /// Stores the synonyms of the event at `checkpoint` (before that checkpoint is stored).
    pub(super) async fn store_synonyms(
        &self,
        synonyms: &Synonyms,
        checkpoint: u64,
    ) -> Result<(), SearchError> {
        self.client
            .index(IndexParts::IndexId(CHECKPOINTS, &self.synonyms_id))
            .body(json!({"synonyms": synonyms, "position": checkpoint}))
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        *self.synonyms.write() = synonyms.clone();
        Ok(())
    }
}
