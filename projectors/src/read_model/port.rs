//! The read model port.
//!
//! Read-your-writes is part of every read's signature: a caller that has seen position `p`
//! (a client's `X-Min-Position`) passes [`MinPosition`]`(p)`, and a read model that keeps
//! copies of older answers (the layered read path's caches) must not answer with one that
//! is older than `p`. Nothing travels beside the call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::view::{CategoryView, ListQuery, Page, ProductView};

#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    /// This view would have to scan too much to answer (a very selective filter on a view
    /// without an index for it): ask another view.
    #[error("the view cannot answer this query cheaply")]
    TooCostly,
}

/// The position an answer must reflect at least: the one the caller has already seen applied
/// (`X-Min-Position`), [`MinPosition::ANY`] when it needs nothing in particular.
///
/// The caller has already waited (with [`CatalogReadModel::wait_for`]) until the view reached
/// it, so a read model that reads its engine directly answers from a state at least this new
/// by construction; one that answers from copies must check each copy against it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MinPosition(pub u64);

impl MinPosition {
    /// No requirement: any answer the view has will do.
    pub const ANY: MinPosition = MinPosition(0);

    /// The position itself.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What an answer depends on, for [`CatalogReadModel::change_stamp`].
#[derive(Debug, Clone, Copy)]
pub enum StampScope<'a> {
    /// Listings and bestsellers over these categories (none: over every category).
    Products(&'a [String]),
    /// The category list (names, counts).
    Categories,
}

/// What the query side reads. Every answer carries the position the view had reached when
/// it was read, and reflects at least the [`MinPosition`] it was asked for.
///
/// Only `published` products are visible through it, except through `product_any_status`.
#[async_trait]
pub trait CatalogReadModel: Send + Sync + 'static {
    /// A published product, or `None` (unknown, or not published), and the position.
    async fn product(
        &self,
        id: Uuid,
        at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError>;
    /// A product whatever its status (draft, published, archived): for admins.
    async fn product_any_status(
        &self,
        id: Uuid,
        at: MinPosition,
    ) -> Result<(Option<Arc<ProductView>>, u64), ReadModelError>;
    /// Up to `query.limit` published products matching `query`, in its order, strictly after
    /// its cursor; `next_cursor` is set when more follow. Keyset pagination: a product that
    /// does not change is never shown twice nor skipped across pages.
    async fn list(&self, query: &ListQuery, at: MinPosition) -> Result<Page, ReadModelError>;
    /// The top `limit` published products by sales (ties by id), optionally in one category:
    /// by default the first page of that listing.
    async fn bestsellers(
        &self,
        category: Option<&str>,
        limit: usize,
        at: MinPosition,
    ) -> Result<(Vec<Arc<ProductView>>, u64), ReadModelError> {
        let page = self
            .list(&ListQuery::bestsellers(category, limit), at)
            .await?;
        Ok((page.items, page.position))
    }
    /// Every category, by slug, with counts of published products.
    async fn categories(&self, at: MinPosition)
        -> Result<(Vec<CategoryView>, u64), ReadModelError>;
    /// A number that changes whenever an answer over `scope` may change, for caches of
    /// encoded answers: an answer built after reading stamp `s` is still the answer while the
    /// stamp is `s`. `None` (the default): this view offers none, its answers are not cached.
    fn change_stamp(&self, _scope: StampScope<'_>) -> Option<u64> {
        None
    }
    /// The position the view has applied everything up to; it never moves back.
    fn position(&self) -> u64;
    /// Waits until the view has applied `position`: `true` as soon as it has (at once when it
    /// already has), `false` after `timeout`.
    async fn wait_for(&self, position: u64, timeout: Duration) -> bool;
}
