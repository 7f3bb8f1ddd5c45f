//! The search projection's checkpoint, stored in `catalog-checkpoints/_doc/search` once
//! everything up to it is in the index, and the watermark that follows it in this process.

use events::Watermark;
use opensearch::{GetParts, IndexParts, OpenSearch};
use serde_json::json;

use super::mapping::{get_json, unavailable, CHECKPOINTS};
use crate::SearchError;

pub(super) struct Checkpoints {
    client: OpenSearch,
    /// The stored checkpoint (what is in the index), as this process knows it.
    position: Watermark,
}

impl Checkpoints {
    pub(super) fn new(client: OpenSearch) -> Self {
        Checkpoints {
            client,
            position: Watermark::new(0),
        }
    }

    pub(super) fn position(&self) -> &Watermark {
        &self.position
    }

    /// The stored checkpoint (0 before the first is stored).
    pub(super) async fn stored(&self) -> Result<u64, SearchError> {
        let found = get_json(&self.client, GetParts::IndexId(CHECKPOINTS, "search")).await?;
        Ok(found
            .and_then(|body| body["_source"]["position"].as_u64())
            .unwrap_or(0))
    }

    /// Reads the stored checkpoint and moves the watermark up to it.
    pub(super) async fn refresh(&self) -> Result<u64, SearchError> {
        let stored = self.stored().await?;
        self.position.advance(stored);
        Ok(stored)
    }

    /// Stores `checkpoint`, then moves the watermark to it.
    pub(super) async fn store(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.client
            .index(IndexParts::IndexId(CHECKPOINTS, "search"))
            .body(json!({"position": checkpoint}))
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        self.position.advance(checkpoint);
        Ok(())
    }
}
