//! What every analytics view answers and how: the windows and their buckets, the answer
//! types, the port ([`AnalyticsView`]), and what a catalog event means for a view.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::analytics::Observation;
use events::CatalogEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::Projection;

/// A window of the analytics endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    pub fn parse(text: &str) -> Option<Window> {
        match text {
            "1h" => Some(Window::Hour),
            "24h" => Some(Window::Day),
            "7d" => Some(Window::Week),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// The buckets the window sums, ending with the one holding `now`: `(minute buckets?,
    /// first bucket, last bucket)`.
    pub(super) fn buckets(self, now: DateTime<Utc>) -> (bool, i64, i64) {
        match self {
            Window::Hour => {
                let last = minute(now);
                (true, last - 59, last)
            }
            Window::Day => {
                let last = hour(now);
                (false, last - 23, last)
            }
            Window::Week => {
                let last = hour(now);
                (false, last - 167, last)
            }
        }
    }
}

pub(super) fn minute(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

pub(super) fn hour(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

/// One product's counts in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TrendingProduct {
    pub product_id: Uuid,
    pub category: Option<String>,
    /// Product pages served.
    pub views: u64,
    /// Units sold (`SaleRecorded`).
    pub units_sold: u64,
}

/// `GET /api/analytics/trending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Trending {
    pub window: String,
    pub category: Option<String>,
    /// Most viewed first (ties by id).
    pub by_views: Vec<TrendingProduct>,
    /// Most units sold first (ties by id).
    pub by_sales: Vec<TrendingProduct>,
}

/// One search text's count in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SearchCount {
    /// The normalised query text.
    pub query: String,
    pub count: u64,
}

/// `GET /api/analytics/searches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Searches {
    pub window: String,
    /// Most frequent first (ties by text).
    pub top: Vec<SearchCount>,
    /// Most frequent searches that found nothing.
    pub zero_results: Vec<SearchCount>,
}

#[derive(Debug, thiserror::Error)]
#[error("analytics view unavailable: {0}")]
pub struct AnalyticsError(pub String);

/// What [`AnalyticsView::trending`] is asked: the top `limit` products over `window` ending
/// at `now`, in one `category` (by slug) or across all.
#[derive(Debug, Clone, Copy)]
pub struct TrendingQuery<'a> {
    pub window: Window,
    pub category: Option<&'a str>,
    pub limit: usize,
    pub now: DateTime<Utc>,
}

/// The analytics view, whatever keeps it.
#[async_trait]
pub trait AnalyticsView: Send + Sync + 'static {
    /// Counts a batch of shopper analytics events.
    async fn record(&self, batch: &[Observation]) -> Result<(), AnalyticsError>;
    /// The most viewed and best selling products of `query.window` up to `query.now`.
    async fn trending(&self, query: TrendingQuery<'_>) -> Result<Trending, AnalyticsError>;
    async fn searches(
        &self,
        window: Window,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Searches, AnalyticsError>;
}

/// What a product's catalog event means for the analytics view.
pub(super) struct CatalogFacts {
    /// The product's category, when the event sets it.
    pub category: Option<String>,
    /// Units sold, for a `SaleRecorded`.
    pub sold: Option<u64>,
}

impl CatalogFacts {
    pub(super) fn of(event: &CatalogEvent) -> CatalogFacts {
        let (category, sold) = match event {
            CatalogEvent::ProductCreated(created) => (Some(created.category.clone()), None),
            CatalogEvent::ProductDetailsChanged(changed) => (changed.category.clone(), None),
            CatalogEvent::SaleRecorded(sale) => {
                (None, Some(u64::try_from(sale.quantity).unwrap_or(0)))
            }
            _ => (None, None),
        };
        CatalogFacts { category, sold }
    }
}

/// An analytics view that also follows the catalog stream (for sales and categories): what
/// the projectors role and the embedded mode run.
pub trait AnalyticsProjection: AnalyticsView + Projection {}

impl<T: AnalyticsView + Projection> AnalyticsProjection for T {}
