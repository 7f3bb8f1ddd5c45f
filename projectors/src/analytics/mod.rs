//! The analytics view: trending products (by views and by units sold) and top and
//! zero-result searches over sliding windows, from the catalog stream (`SaleRecorded`, and
//! each product's category) and the shopper analytics stream (`ProductViewed`,
//! `SearchPerformed`).
//!
//! Counts live in time buckets keyed by each event's own `occurred_at`: one-minute buckets for
//! the last hour, one-hour buckets for the last seven days. The `1h` window sums the 60 minute
//! buckets ending at "now"; `24h` and `7d` sum 24 and 168 hour buckets (the current hour
//! included), so they slide an hour at a time. "Now" comes from the caller, which keeps the
//! arithmetic testable with a controlled clock.

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
mod memory;

/// The distinct search texts one bucket (a minute or an hour) keeps, its most counted: any
/// client can send new texts, so they are bounded where they are stored.
pub const SEARCHES_PER_BUCKET: usize = 10_000;

mod redis;
mod redis_generations;
mod view;

pub use self::memory::MemoryAnalytics;
pub use self::redis::RedisAnalytics;
pub use self::view::{
    AnalyticsError, AnalyticsProjection, AnalyticsView, SearchCount, Searches, Trending,
    TrendingProduct, TrendingQuery, Window,
};
