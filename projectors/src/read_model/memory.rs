//! The embedded read model: everything in memory, rebuilt from the store at start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::Watermark;
use events::{CatalogEvent, Envelope, ProductStatus};
use parking_lot::RwLock;
use uuid::Uuid;

use super::evolve::{category_out_of_order, evolve, Evolved};
use super::port::{CatalogReadModel, MinPosition, ReadModelError, StampScope};
use super::view::{count_deltas, CategoryView, ListQuery, Page, ProductView, SortKey, SortOrder};
use crate::generations::{Generations, Live};
use crate::redis::{product_invalidation, Invalidation};
use crate::{Applied, Projection, ProjectionError};

type IndexKey = (Option<String>, SortOrder);

#[derive(Default)]
struct State {
    /// Every product, whatever its status.
    products: HashMap<Uuid, Arc<ProductView>>,
    categories: BTreeMap<String, CategoryView>,
    /// Versions applied per category aggregate.
    category_versions: HashMap<Uuid, u64>,
    /// Published products in each order, overall (`None`) and per category.
    indexes: HashMap<IndexKey, BTreeSet<SortKey>>,
    position: u64,
    /// Product changes applied per listing scope a product was or is in (`all` counts every
    /// one), and changes to the category list: the stamps of
    /// [`CatalogReadModel::change_stamp`].
    changed_in: HashMap<String, u64>,
    changed_categories: u64,
}

impl State {
    fn index(&mut self, product: &ProductView, add: bool) {
        if product.status != ProductStatus::Published {
            return;
        }
        for sort in SortOrder::ALL {
            let key = sort.key(product);
            for scope in [None, Some(product.category.clone())] {
                let index = self.indexes.entry((scope, sort)).or_default();
                if add {
                    index.insert(key.clone());
                } else {
                    index.remove(&key);
                }
            }
        }
        if let Some(category) = self.categories.get_mut(&product.category) {
            if add {
                category.product_count += 1;
            } else {
                category.product_count = category.product_count.saturating_sub(1);
            }
        }
    }

    /// Up to `query.limit + 1` products of the index `scope` that pass `query`'s filters, in
    /// order, strictly after its cursor.
    fn first_matches(&self, scope: &IndexKey, query: &ListQuery) -> Vec<Arc<ProductView>> {
        let Some(index) = self.indexes.get(scope) else {
            return Vec::new();
        };
        let start = match &query.after {
            Some(after) => Bound::Excluded(after.clone()),
            None => Bound::Unbounded,
        };
        index
            .range((start, Bound::Unbounded))
            .filter_map(|key| self.products.get(&key.id))
            .filter(|product| query.matches(product))
            .take(query.limit + 1)
            .cloned()
            .collect()
    }

    /// Applies a product's event; with what it changed, for the listener.
    fn apply_product(
        &mut self,
        envelope: &Envelope,
        event: CatalogEvent,
        checkpoint: u64,
    ) -> (Applied, Option<Invalidation>) {
        let existing = self.products.get(&envelope.aggregate_id).cloned();
        let product = match evolve(existing.as_deref(), envelope, event) {
            Evolved::Changed(product) => product,
            Evolved::Unchanged(applied) => return (applied, None),
        };
        if let Some(current) = &existing {
            self.index(current, false);
        }
        self.index(&product, true);
        let counts_moved = !count_deltas(existing.as_deref(), &product).is_empty();
        let changed = product_invalidation(existing.as_deref(), &product, checkpoint, counts_moved);
        for scope in &changed.scopes {
            *self.changed_in.entry(scope.clone()).or_default() += 1;
        }
        if counts_moved {
            self.changed_categories += 1;
        }
        self.products
            .insert(envelope.aggregate_id, Arc::new(*product));
        (Applied::Applied, Some(changed))
    }

    fn apply_category(&mut self, envelope: &Envelope, created: events::CategoryCreated) -> Applied {
        let applied = self
            .category_versions
            .entry(envelope.aggregate_id)
            .or_insert(0);
        if let Some(answer) = category_out_of_order(*applied, envelope) {
            return answer;
        }
        *applied = envelope.aggregate_version;
        self.changed_categories += 1;
        let product_count = self
            .indexes
            .get(&(Some(created.slug.clone()), SortOrder::Newest))
            .map_or(0, |index| index.len() as u64);
        self.categories.insert(
            created.slug.clone(),
            CategoryView {
                slug: created.slug,
                name: created.name,
                parent: created.parent,
                product_count,
            },
        );
        Applied::Applied
    }
}

/// Told, after each event is applied, what it changed (the edge cache's purges).
pub type ChangeListener = Box<dyn Fn(&Invalidation) + Send + Sync>;

/// The in-memory catalog read model. It is both a [`Projection`] and a [`CatalogReadModel`].
pub struct MemoryReadModel {
    state: RwLock<State>,
    position: Watermark,
    listener: std::sync::OnceLock<ChangeListener>,
    /// The generation being built by a rebuild, and the one it replaced (kept for the grace
    /// period); see [`crate::generations`].
    next: parking_lot::Mutex<Option<Arc<MemoryReadModel>>>,
    previous: parking_lot::Mutex<Option<State>>,
    generation: std::sync::atomic::AtomicU64,
}

impl Default for MemoryReadModel {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryReadModel {
    pub fn new() -> Self {
        MemoryReadModel {
            state: RwLock::new(State::default()),
            position: Watermark::new(0),
            listener: std::sync::OnceLock::new(),
            next: Default::default(),
            previous: Default::default(),
            generation: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Calls `listener` with what each event changed, once the view shows it (`false`: one
    /// was set already).
    pub fn on_change(&self, listener: ChangeListener) -> bool {
        self.listener.set(listener).is_ok()
    }
}

#[async_trait]
impl Projection for MemoryReadModel {
    fn name(&self) -> &str {
        "read-model"
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let Some(event) = crate::decode_event(envelope)? else {
            self.advance(checkpoint);
            return Ok(Applied::Duplicate);
        };
        let (applied, changed) = {
            let mut state = self.state.write();
            match event {
                CatalogEvent::CategoryCreated(created) => {
                    let applied = state.apply_category(envelope, created);
                    let changed =
                        (applied == Applied::Applied).then(|| Invalidation::categories(checkpoint));
                    (applied, changed)
                }
                // The search settings are the search projection's; only the position moves.
                CatalogEvent::SynonymsChanged(_) => (Applied::Duplicate, None),
                product_event => state.apply_product(envelope, product_event, checkpoint),
            }
        };
        self.advance(checkpoint);
        if let (Some(listener), Some(changed)) = (self.listener.get(), changed) {
            listener(&changed);
        }
        Ok(applied)
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.state.read().position)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        MemoryReadModel::advance(self, checkpoint);
        Ok(())
    }

    fn generations(&self) -> Option<&dyn Generations> {
        Some(self)
    }
}

/// The version of the in-memory read model (rebuilt at every start, so a deploy never finds
/// an older one; a rebuild is still what an operator asks for after a projection fix).
const MEMORY_VERSION: u64 = 1;

#[async_trait]
impl Generations for MemoryReadModel {
    fn version(&self) -> u64 {
        MEMORY_VERSION
    }

    async fn live(&self) -> Result<Live, ProjectionError> {
        Ok(Live {
            generation: self.generation.load(Ordering::SeqCst),
            version: MEMORY_VERSION,
        })
    }

    async fn prepare(&self) -> Result<Arc<dyn Projection>, ProjectionError> {
        let next = Arc::new(MemoryReadModel::new());
        *self.next.lock() = Some(next.clone());
        Ok(next)
    }

    async fn switch(&self) -> Result<u64, ProjectionError> {
        let Some(next) = self.next.lock().take() else {
            return Err(ProjectionError::Unavailable(
                "no generation is being built".into(),
            ));
        };
        let built = std::mem::take(&mut *next.state.write());
        let (position, changed) = {
            let mut state = self.state.write();
            let mut old = std::mem::replace(&mut *state, built);
            // Change stamps only grow: a cache keyed by one never takes the new generation for
            // the old.
            for (scope, count) in &old.changed_in {
                *state.changed_in.entry(scope.clone()).or_default() += count;
            }
            for count in state.changed_in.values_mut() {
                *count += 1;
            }
            state.changed_categories += old.changed_categories + 1;
            state.position = state.position.max(old.position);
            let changed = Invalidation {
                scopes: state.changed_in.keys().cloned().collect(),
                ..Invalidation::categories(state.position)
            };
            old.indexes.clear();
            *self.previous.lock() = Some(old);
            (state.position, changed)
        };
        self.position.advance(position);
        if let Some(listener) = self.listener.get() {
            listener(&changed);
        }
        Ok(self.generation.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn drop_previous(&self) -> Result<(), ProjectionError> {
        self.previous.lock().take();
        Ok(())
    }
}

impl MemoryReadModel {
    fn advance(&self, position: u64) {
        {
            let mut state = self.state.write();
            state.position = state.position.max(position);
        }
        self.position.advance(position);
    }
}

#[async_trait]
impl CatalogReadModel for MemoryReadModel {
    async fn product(
        &self,
        id: Uuid,
        _at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let state = self.state.read();
        let product = state
            .products
            .get(&id)
            .filter(|product| product.status == ProductStatus::Published)
            .cloned();
        Ok((product, state.position))
    }

    async fn product_any_status(
        &self,
        id: Uuid,
        _at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError> {
        let state = self.state.read();
        Ok((state.products.get(&id).cloned(), state.position))
    }

    async fn list(&self, query: &ListQuery, _at: MinPosition) -> Result<Page, ReadModelError> {
        let state = self.state.read();
        let scopes: Vec<Option<String>> = if query.categories.is_empty() {
            vec![None]
        } else {
            query.categories.iter().cloned().map(Some).collect()
        };
        // The first `limit + 1` matches of the union are among the first `limit + 1` matches
        // of each scope: take those, then merge them in order.
        let mut items = Vec::with_capacity(query.limit + 1);
        for scope in scopes {
            items.extend(state.first_matches(&(scope, query.sort), query));
        }
        if query.categories.len() > 1 {
            items.sort_by_cached_key(|product| query.sort.key(product));
            items.dedup_by_key(|product| product.id);
        }
        items.truncate(query.limit + 1);
        Ok(Page::cut(items, query, state.position))
    }

    async fn bestsellers(
        &self,
        category: Option<&str>,
        limit: usize,
        _at: MinPosition,
    ) -> Result<(Vec<Arc<ProductView>>, u64), ReadModelError> {
        let state = self.state.read();
        let items = state
            .indexes
            .get(&(category.map(str::to_owned), SortOrder::Bestselling))
            .map(|index| {
                index
                    .iter()
                    .take(limit)
                    .filter_map(|key| state.products.get(&key.id).cloned())
                    .collect()
            })
            .unwrap_or_default();
        Ok((items, state.position))
    }

    async fn categories(
        &self,
        _at: MinPosition,
    ) -> Result<(Vec<CategoryView>, u64), ReadModelError> {
        let state = self.state.read();
        Ok((state.categories.values().cloned().collect(), state.position))
    }

    fn change_stamp(&self, scope: StampScope<'_>) -> Option<u64> {
        let state = self.state.read();
        Some(match scope {
            StampScope::Products([]) => state.changed_in.get("all").copied().unwrap_or(0),
            // Each count only grows, so their sum moves whenever one of them does.
            StampScope::Products(categories) => categories
                .iter()
                .map(|category| state.changed_in.get(category).copied().unwrap_or(0))
                .sum(),
            StampScope::Categories => state.changed_categories,
        })
    }

    fn position(&self) -> u64 {
        self.position.current()
    }

    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        self.position.wait_for(position, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryReadModel;

    crate::read_model_conformance_suite!(async {
        let model = Arc::new(MemoryReadModel::new());
        (model.clone() as _, model as _)
    });
}
