//! Generations of the OpenSearch index behind the alias `catalog-products` (see
//! `projectors::generations`): generation N is the index `catalog-products-vN`. A rebuild
//! creates `catalog-products-vN+1` (from the index template) and writes it with a bulk writer
//! of its own, its checkpoint and synonyms under `_doc/search-vN+1` and `_doc/synonyms-vN+1`.
//! The switch flushes both writers, moves the alias in one `_aliases` call (remove from N, add
//! to N+1 as the write index: searches never see no index or two), then stores the new
//! generation's synonyms and checkpoint as the live ones and records the generation and its
//! version in `_doc/generation`. Generation N is deleted after the grace period.

use std::sync::Arc;

use async_trait::async_trait;
use opensearch::http::response::Response;
use opensearch::indices::{IndicesCreateParts, IndicesDeleteParts, IndicesGetAliasParts};
use opensearch::{DeleteParts, GetParts, IndexParts};
use serde_json::json;

use super::mapping::{get_json, json_body, unavailable, ALIAS, CHECKPOINTS};
use super::OpenSearchIndex;
use crate::{Live, SearchError, SearchGenerations, SearchWriter};

/// The version of the OpenSearch index this code builds.
pub const OPENSEARCH_VIEW_VERSION: u64 = 1;

/// The document in [`CHECKPOINTS`] recording the live generation and its version.
const GENERATION_ID: &str = "generation";

fn generation_index(generation: u64) -> String {
    format!("{ALIAS}-v{generation}")
}

/// The generation of an index name of the alias, if it is one.
fn generation_of(index: &str) -> Option<u64> {
    index.strip_prefix(ALIAS)?.strip_prefix("-v")?.parse().ok()
}

/// The answer to a delete: done, or there was nothing to delete.
async fn done_or_absent(response: Response) -> Result<(), SearchError> {
    if response.status_code().as_u16() == 404 {
        return Ok(());
    }
    json_body(response).await.map(drop)
}

impl OpenSearchIndex {
    /// The generation the alias points at (the highest, should it point at several).
    async fn aliased_generation(&self) -> Result<u64, SearchError> {
        let response = self
            .client
            .indices()
            .get_alias(IndicesGetAliasParts::Name(&[ALIAS]))
            .send()
            .await
            .map_err(unavailable)?;
        if response.status_code().as_u16() == 404 {
            return Err(SearchError::Unavailable(format!(
                "OpenSearch has no alias {ALIAS}: the projectors role creates it at start, \
                 `catalog search setup` too"
            )));
        }
        let body = json_body(response).await?;
        body.as_object()
            .into_iter()
            .flat_map(|indices| indices.keys())
            .filter_map(|index| generation_of(index))
            .max()
            .ok_or_else(|| {
                SearchError::Unexpected(format!(
                    "the alias {ALIAS} points at no index named {ALIAS}-vN: {body}"
                ))
            })
    }

    /// Deletes an index, if it is there.
    async fn delete_index(&self, index: &str) -> Result<(), SearchError> {
        let response = self
            .client
            .indices()
            .delete(IndicesDeleteParts::Index(&[index]))
            .send()
            .await
            .map_err(unavailable)?;
        done_or_absent(response).await
    }

    /// Deletes a document of [`CHECKPOINTS`], if it is there.
    async fn delete_checkpoint_document(&self, id: &str) -> Result<(), SearchError> {
        let response = self
            .client
            .delete(DeleteParts::IndexId(CHECKPOINTS, id))
            .send()
            .await
            .map_err(unavailable)?;
        done_or_absent(response).await
    }

    /// Sends everything buffered and stores the checkpoint it reaches.
    async fn flush_all(&self) -> Result<(), SearchError> {
        self.flush_everything().await?;
        self.flush().await
    }
}

#[async_trait]
impl SearchGenerations for OpenSearchIndex {
    fn version(&self) -> u64 {
        OPENSEARCH_VIEW_VERSION
    }

    async fn live(&self) -> Result<Live, SearchError> {
        let generation = self.aliased_generation().await?;
        let recorded = get_json(&self.client, GetParts::IndexId(CHECKPOINTS, GENERATION_ID))
            .await?
            .filter(|body| body["found"] == json!(true));
        let version = recorded
            .as_ref()
            .filter(|body| body["_source"]["generation"].as_u64() == Some(generation))
            .and_then(|body| body["_source"]["version"].as_u64())
            .unwrap_or(1);
        Ok(Live {
            generation,
            version,
        })
    }

    async fn prepare(&self) -> Result<Arc<dyn SearchWriter>, SearchError> {
        let generation = self.aliased_generation().await? + 1;
        let index = generation_index(generation);
        let suffix = format!("-v{generation}");
        // Whatever an interrupted rebuild left.
        self.next.lock().take();
        self.delete_index(&index).await?;
        for id in ["search", "synonyms"] {
            self.delete_checkpoint_document(&format!("{id}{suffix}"))
                .await?;
        }
        self.client
            .indices()
            .create(IndicesCreateParts::Index(&index))
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        let next = Arc::new(OpenSearchIndex::writing(
            self.client.clone(),
            &index,
            &suffix,
        ));
        next.start_flushing();
        *self.next.lock() = Some(next.clone());
        Ok(next)
    }

    async fn switch(&self) -> Result<u64, SearchError> {
        let next = self
            .next
            .lock()
            .clone()
            .ok_or_else(|| SearchError::Unexpected("no generation was prepared".into()))?;
        let live = self.aliased_generation().await?;
        let generation = live + 1;
        // What the live writer holds goes to the old index first: sent after the move, it
        // would overwrite newer documents of the new one.
        self.flush_all().await?;
        next.flush_all().await?;
        let actions = json!({"actions": [
            {"remove": {"index": generation_index(live), "alias": ALIAS}},
            {"add": {"index": generation_index(generation), "alias": ALIAS, "is_write_index": true}},
        ]});
        self.client
            .indices()
            .update_aliases()
            .body(actions)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        self.next.lock().take();
        let synonyms = next.checkpoints.stored_synonyms().await?;
        let checkpoint = next.checkpoints.stored().await?;
        self.checkpoints
            .store_synonyms(&synonyms, checkpoint)
            .await?;
        self.checkpoints.store(checkpoint).await?;
        self.writer.advance(checkpoint);
        self.client
            .index(IndexParts::IndexId(CHECKPOINTS, GENERATION_ID))
            .body(json!({"generation": generation, "version": OPENSEARCH_VIEW_VERSION}))
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status_code()
            .map_err(unavailable)?;
        Ok(generation)
    }

    async fn drop_previous(&self) -> Result<(), SearchError> {
        let live = self.aliased_generation().await?;
        if live > 1 {
            self.delete_index(&generation_index(live - 1)).await?;
        }
        for id in ["search", "synonyms"] {
            self.delete_checkpoint_document(&format!("{id}-v{live}"))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_indices_are_named_after_the_alias() {
        assert_eq!(generation_index(3), "catalog-products-v3");
        assert_eq!(generation_of("catalog-products-v12"), Some(12));
        assert_eq!(generation_of("catalog-products"), None);
        assert_eq!(generation_of("catalog-checkpoints"), None);
    }
}
