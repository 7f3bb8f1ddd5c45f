//! Keeps a search index in step with the events: each product's document, whatever its status
//! (only published ones are found), idempotent per `aggregate_version`; and the synonyms
//! searches use, from the search settings' `SynonymsChanged` events.
//!
//! Each `SynonymsChanged` carries the whole set, so applying the latest one is enough and a
//! skipped older one loses nothing. What must not happen is an older one applied after a newer
//! one (a redelivery after a rebalance, say): the projection remembers the settings version it
//! applied and skips anything at or below it, and after a restart it skips anything at or
//! below the writer's durable checkpoint (applied before the restart). Replays from the
//! checkpoint come in version order, so the last one applied is the newest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use events::{CatalogEvent, Envelope, SynonymsChanged};
use projectors::generations::{Generations, Live};
use projectors::read_model::{evolve, Evolved};
use projectors::{Applied, Projection, ProjectionError};

use crate::{SearchError, SearchGenerations, SearchWriter, Synonyms};

/// The search projection over any [`SearchWriter`].
pub struct SearchProjection {
    writer: Arc<dyn SearchWriter>,
    /// The index's generations, when it can be rebuilt beside itself.
    generations: Option<Arc<dyn SearchGenerations>>,
    name: String,
    /// The version of the search settings last applied by this process (0: none yet).
    settings_version: AtomicU64,
}

impl SearchProjection {
    pub fn new(writer: Arc<dyn SearchWriter>, name: &str) -> Self {
        SearchProjection {
            writer,
            generations: None,
            name: name.to_owned(),
            settings_version: AtomicU64::new(0),
        }
    }

    /// The projection over an index with generations: `catalog projections rebuild` builds
    /// the next one beside it.
    pub fn with_generations<I>(index: Arc<I>, name: &str) -> Self
    where
        I: SearchWriter + SearchGenerations,
    {
        SearchProjection {
            generations: Some(index.clone()),
            ..SearchProjection::new(index, name)
        }
    }

    fn live_generations(&self) -> Result<&Arc<dyn SearchGenerations>, ProjectionError> {
        self.generations.as_ref().ok_or_else(|| {
            ProjectionError::Unavailable("this search index has no generations".into())
        })
    }

    /// Replaces the writer's synonyms with the event's, unless a newer set is applied already.
    async fn apply_synonyms(
        &self,
        envelope: &Envelope,
        changed: SynonymsChanged,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let already_applied = envelope.aggregate_version
            <= self.settings_version.load(Ordering::SeqCst)
            || envelope.position <= self.writer.checkpoint().await.map_err(failed)?;
        if already_applied {
            self.writer.advance(checkpoint).await.map_err(failed)?;
            return Ok(Applied::Duplicate);
        }
        let synonyms = Synonyms {
            groups: changed.groups,
        };
        self.writer
            .set_synonyms(synonyms, checkpoint)
            .await
            .map_err(failed)?;
        self.settings_version
            .fetch_max(envelope.aggregate_version, Ordering::SeqCst);
        Ok(Applied::Applied)
    }
}

fn failed(error: SearchError) -> ProjectionError {
    ProjectionError::Unavailable(error.to_string())
}

#[async_trait]
impl Projection for SearchProjection {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let event = match projectors::decode_event(envelope)? {
            Some(CatalogEvent::SynonymsChanged(changed)) => {
                return self.apply_synonyms(envelope, changed, checkpoint).await;
            }
            // Categories are not searched (products carry their slug).
            Some(event) if projectors::is_product_event(&event) => event,
            _ => {
                self.writer.advance(checkpoint).await.map_err(failed)?;
                return Ok(Applied::Duplicate);
            }
        };
        let current = self
            .writer
            .current(envelope.aggregate_id)
            .await
            .map_err(failed)?;
        match evolve(current.as_ref(), envelope, event) {
            Evolved::Changed(product) => {
                self.writer
                    .put(*product, checkpoint)
                    .await
                    .map_err(failed)?;
                Ok(Applied::Applied)
            }
            Evolved::Unchanged(Applied::Duplicate) => {
                self.writer.advance(checkpoint).await.map_err(failed)?;
                Ok(Applied::Duplicate)
            }
            Evolved::Unchanged(other) => Ok(other),
        }
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        self.writer.checkpoint().await.map_err(failed)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        self.writer.advance(checkpoint).await.map_err(failed)
    }

    fn generations(&self) -> Option<&dyn Generations> {
        self.generations.as_ref().map(|_| self as &dyn Generations)
    }
}

#[async_trait]
impl Generations for SearchProjection {
    fn version(&self) -> u64 {
        self.generations.as_ref().map_or(1, |g| g.version())
    }

    async fn live(&self) -> Result<Live, ProjectionError> {
        self.live_generations()?.live().await.map_err(failed)
    }

    async fn prepare(&self) -> Result<Arc<dyn Projection>, ProjectionError> {
        let writer = self.live_generations()?.prepare().await.map_err(failed)?;
        Ok(Arc::new(SearchProjection::new(writer, &self.name)))
    }

    async fn switch(&self) -> Result<u64, ProjectionError> {
        self.live_generations()?.switch().await.map_err(failed)
    }

    async fn drop_previous(&self) -> Result<(), ProjectionError> {
        self.live_generations()?
            .drop_previous()
            .await
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Utc;
    use events::{
        CategoryCreated, EventMetadata, NewEvent, ProductCreated, ProductStatus, SaleRecorded,
        SEARCH_SETTINGS_ID,
    };
    use parking_lot::Mutex;
    use projectors::read_model::ProductView;
    use uuid::Uuid;

    use super::*;

    /// A writer that keeps everything in memory and makes every write durable at once.
    #[derive(Default)]
    struct MemoryWriter {
        products: Mutex<HashMap<Uuid, ProductView>>,
        synonyms: Mutex<Vec<(Synonyms, u64)>>,
        checkpoint: AtomicU64,
    }

    #[async_trait]
    impl SearchWriter for MemoryWriter {
        async fn current(&self, id: Uuid) -> Result<Option<ProductView>, SearchError> {
            Ok(self.products.lock().get(&id).cloned())
        }

        async fn put(&self, product: ProductView, checkpoint: u64) -> Result<(), SearchError> {
            self.products.lock().insert(product.id, product);
            self.advance(checkpoint).await
        }

        async fn advance(&self, checkpoint: u64) -> Result<(), SearchError> {
            self.checkpoint.fetch_max(checkpoint, Ordering::SeqCst);
            Ok(())
        }

        async fn set_synonyms(
            &self,
            synonyms: Synonyms,
            checkpoint: u64,
        ) -> Result<(), SearchError> {
            self.synonyms.lock().push((synonyms, checkpoint));
            self.advance(checkpoint).await
        }

        async fn checkpoint(&self) -> Result<u64, SearchError> {
            Ok(self.checkpoint.load(Ordering::SeqCst))
        }
    }

    fn envelope(id: Uuid, version: u64, event: CatalogEvent, position: u64) -> Envelope {
        NewEvent::from_event(id, version, &event, Utc::now(), EventMetadata::default())
            .into_envelope(position)
    }

    fn synonyms_changed(version: u64, groups: &[&[&str]], position: u64) -> Envelope {
        let groups = groups
            .iter()
            .map(|words| words.iter().map(|word| (*word).to_owned()).collect())
            .collect();
        envelope(
            SEARCH_SETTINGS_ID,
            version,
            CatalogEvent::SynonymsChanged(SynonymsChanged { groups }),
            position,
        )
    }

    fn groups(synonyms: &Synonyms) -> Vec<Vec<&str>> {
        synonyms
            .groups
            .iter()
            .map(|group| group.iter().map(String::as_str).collect())
            .collect()
    }

    fn television(id: Uuid, position: u64) -> Envelope {
        envelope(
            id,
            1,
            CatalogEvent::ProductCreated(ProductCreated {
                sku: "TV-55".into(),
                name: "Sonora Television 55".into(),
                description: String::new(),
                category: "electronics".into(),
                brand: Some("Sonora".into()),
                price_cents: 49_900,
                currency: "USD".into(),
                stock: 3,
                status: ProductStatus::Published,
                attributes: Default::default(),
                images: Vec::new(),
            }),
            position,
        )
    }

    async fn apply(projection: &SearchProjection, envelope: &Envelope) -> Applied {
        projection
            .apply(envelope, envelope.position)
            .await
            .expect("applies")
    }

    #[tokio::test]
    async fn synonyms_changed_sets_the_writers_synonyms_at_its_checkpoint() {
        let writer = Arc::new(MemoryWriter::default());
        let projection = SearchProjection::new(writer.clone(), "search");
        let changed = synonyms_changed(1, &[&["tv", "television"]], 1);
        assert_eq!(apply(&projection, &changed).await, Applied::Applied);
        let set = writer.synonyms.lock().clone();
        assert_eq!(set.len(), 1);
        assert_eq!(groups(&set[0].0), [["tv", "television"]]);
        assert_eq!(set[0].1, 1);
        // Clearing them is a change like any other.
        let cleared = synonyms_changed(2, &[], 2);
        assert_eq!(apply(&projection, &cleared).await, Applied::Applied);
        assert_eq!(writer.synonyms.lock()[1], (Synonyms::default(), 2));
    }

    #[tokio::test]
    async fn an_older_synonyms_change_delivered_again_after_a_newer_one_changes_nothing() {
        let writer = Arc::new(MemoryWriter::default());
        let projection = SearchProjection::new(writer.clone(), "search");
        let first = synonyms_changed(1, &[&["tv", "television"]], 1);
        let second = synonyms_changed(2, &[&["sofa", "couch"]], 2);
        apply(&projection, &first).await;
        apply(&projection, &second).await;
        // Redelivered out of order (a rebalance), with a later checkpoint.
        let applied = projection.apply(&first, 3).await.expect("applies");
        assert_eq!(applied, Applied::Duplicate);
        let set = writer.synonyms.lock().clone();
        assert_eq!(set.len(), 2);
        assert_eq!(groups(&set[1].0), [["sofa", "couch"]]);
        assert_eq!(writer.checkpoint.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn after_a_restart_a_change_at_or_below_the_durable_checkpoint_is_not_applied_again() {
        let writer = Arc::new(MemoryWriter::default());
        let before_restart = SearchProjection::new(writer.clone(), "search");
        let first = synonyms_changed(1, &[&["tv", "television"]], 1);
        let second = synonyms_changed(2, &[&["sofa", "couch"]], 2);
        apply(&before_restart, &first).await;
        apply(&before_restart, &second).await;
        let after_restart = SearchProjection::new(writer.clone(), "search");
        assert_eq!(apply(&after_restart, &first).await, Applied::Duplicate);
        assert_eq!(writer.synonyms.lock().len(), 2);
        let third = synonyms_changed(3, &[&["tv", "telly"]], 3);
        assert_eq!(apply(&after_restart, &third).await, Applied::Applied);
        assert_eq!(groups(&writer.synonyms.lock()[2].0), [["tv", "telly"]]);
    }

    #[tokio::test]
    async fn products_keep_applying_around_synonyms_and_categories_only_move_the_checkpoint() {
        let writer = Arc::new(MemoryWriter::default());
        let projection = SearchProjection::new(writer.clone(), "search");
        let category = envelope(
            events::catalog_events::category_aggregate_id("electronics"),
            1,
            CatalogEvent::CategoryCreated(CategoryCreated {
                slug: "electronics".into(),
                name: "Electronics".into(),
                parent: None,
            }),
            1,
        );
        assert_eq!(apply(&projection, &category).await, Applied::Duplicate);
        assert_eq!(writer.checkpoint.load(Ordering::SeqCst), 1);
        let id = Uuid::now_v7();
        assert_eq!(
            apply(&projection, &television(id, 2)).await,
            Applied::Applied
        );
        let changed = synonyms_changed(1, &[&["tv", "television"]], 3);
        assert_eq!(apply(&projection, &changed).await, Applied::Applied);
        let sale = envelope(
            id,
            2,
            CatalogEvent::SaleRecorded(SaleRecorded { quantity: 1 }),
            4,
        );
        assert_eq!(apply(&projection, &sale).await, Applied::Applied);
        let product = writer.products.lock().get(&id).cloned().expect("indexed");
        assert_eq!((product.stock, product.version), (2, 2));
        assert_eq!(writer.checkpoint.load(Ordering::SeqCst), 4);
    }
}
