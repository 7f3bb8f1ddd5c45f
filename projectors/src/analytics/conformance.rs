//! The analytics view's behaviour as one suite, run against every adapter (in memory, Redis,
//! Redis Cluster): [`analytics_view_suite!`](crate::analytics_view_suite) expands it into one
//! test per case. Built only with the `testsuite` feature (or for this crate's own tests).
//!
//! "Now" is the next half past the hour on the wall clock (within the coming hour, taken once
//! per test process), so the cases place events at fixed distances from a bucket boundary
//! while no bucket they expect to count has expired by the wall clock yet (the Redis view lets
//! buckets expire by it).

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use events::analytics::{AnalyticsEvent, Observation, ProductViewed, SearchPerformed};
use events::{CatalogEvent, Envelope, EventMetadata, NewEvent, SaleRecorded};
use uuid::Uuid;

use super::view::{AnalyticsProjection, SearchCount, Trending, TrendingQuery, Window};
use crate::Applied;

/// Expands the analytics suite into a module `$module` of tests, one per case, each against
/// a fresh, empty view from `$make` (an async function or closure of no arguments returning
/// an `Arc<dyn AnalyticsProjection>`):
///
/// ```ignore
/// projectors::analytics_view_suite!(on_redis, redis_view);
/// ```
#[macro_export]
macro_rules! analytics_view_suite {
    ($module:ident, $make:expr) => {
        $crate::analytics_view_suite!(@cases $module, $make;
            each_window_counts_the_buckets_it_covers_and_no_others,
            sales_come_from_the_catalog_stream_once_per_version_and_filter_by_category,
            searches_rank_by_count_and_zero_result_searches_are_listed_apart,
            the_limit_cuts_ties_by_id_and_the_category_filter_applies_to_views,
            the_search_settings_move_only_the_checkpoint,
            a_rebuild_derives_sales_again_and_carries_views_and_searches_over,
        );
    };
    (@cases $module:ident, $make:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let view: ::std::sync::Arc<dyn $crate::analytics::AnalyticsProjection> =
                        ($make)().await;
                    $crate::analytics::conformance::$case(view).await;
                }
            )+
        }
    };
}

/// Fixed at the first call, so a run that crosses half past the hour keeps one "now".
fn now() -> DateTime<Utc> {
    static NOW: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *NOW.get_or_init(|| {
        let wall = Utc::now();
        let half_past =
            wall.duration_trunc(Duration::hours(1)).unwrap_or(wall) + Duration::minutes(30);
        if half_past >= wall {
            half_past
        } else {
            half_past + Duration::hours(1)
        }
    })
}

fn viewed(product: Uuid, category: &str, at: DateTime<Utc>) -> Observation {
    Observation {
        event: AnalyticsEvent::ProductViewed(ProductViewed {
            product_id: product,
            category: category.into(),
        }),
        at,
    }
}

fn searched(query: &str, results: u64, at: DateTime<Utc>) -> Observation {
    Observation {
        event: AnalyticsEvent::SearchPerformed(SearchPerformed {
            query: query.into(),
            filters: Default::default(),
            result_count: results,
        }),
        at,
    }
}

fn views_of(trending: &Trending) -> Vec<(Uuid, u64)> {
    trending
        .by_views
        .iter()
        .map(|item| (item.product_id, item.views))
        .collect()
}

pub async fn each_window_counts_the_buckets_it_covers_and_no_others(
    view: Arc<dyn AnalyticsProjection>,
) {
    let (recent, earlier, yesterday, last_week, too_old) = (
        Uuid::from_u128(1),
        Uuid::from_u128(2),
        Uuid::from_u128(3),
        Uuid::from_u128(4),
        Uuid::from_u128(5),
    );
    let batch = vec![
        viewed(recent, "audio", now() - Duration::minutes(59)),
        viewed(recent, "audio", now()),
        // 61 minutes ago: out of the hour, in the day.
        viewed(earlier, "audio", now() - Duration::minutes(61)),
        // 23 h 10 min ago falls in the oldest of the day's 24 hour buckets.
        viewed(
            yesterday,
            "audio",
            now() - Duration::hours(23) - Duration::minutes(10),
        ),
        // 6 days ago: in the week only; 8 days ago: in no window.
        viewed(last_week, "audio", now() - Duration::days(6)),
        viewed(too_old, "audio", now() - Duration::days(8)),
    ];
    view.record(&batch).await.expect("record");
    let hour = view
        .trending(TrendingQuery {
            window: Window::Hour,
            category: None,
            limit: 10,
            now: now(),
        })
        .await
        .expect("1h");
    assert_eq!(views_of(&hour), vec![(recent, 2)]);
    assert_eq!(hour.window, "1h");
    let day = view
        .trending(TrendingQuery {
            window: Window::Day,
            category: None,
            limit: 10,
            now: now(),
        })
        .await
        .expect("24h");
    assert_eq!(
        views_of(&day),
        vec![(recent, 2), (earlier, 1), (yesterday, 1)]
    );
    let week = view
        .trending(TrendingQuery {
            window: Window::Week,
            category: None,
            limit: 10,
            now: now(),
        })
        .await
        .expect("7d");
    assert_eq!(
        views_of(&week),
        vec![(recent, 2), (earlier, 1), (yesterday, 1), (last_week, 1)]
    );
    assert_eq!(week.by_views[0].category.as_deref(), Some("audio"));
    assert!(week.by_sales.is_empty());
    // A minute later the hour has slid past `recent`'s first view.
    let later = view
        .trending(TrendingQuery {
            window: Window::Hour,
            category: None,
            limit: 10,
            now: now() + Duration::minutes(1),
        })
        .await
        .expect("1h later");
    assert_eq!(views_of(&later), vec![(recent, 1)]);
}

fn envelopes(product: Uuid, events: &[CatalogEvent], at: DateTime<Utc>) -> Vec<Envelope> {
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            NewEvent::from_event(
                product,
                index as u64 + 1,
                event,
                at,
                EventMetadata::default(),
            )
            .into_envelope(index as u64 + 1)
        })
        .collect()
}

fn created(category: &str) -> CatalogEvent {
    CatalogEvent::ProductCreated(events::conformance::published_product(
        "A-1", "Speaker", category,
    ))
}

pub async fn sales_come_from_the_catalog_stream_once_per_version_and_filter_by_category(
    view: Arc<dyn AnalyticsProjection>,
) {
    let product = Uuid::from_u128(9);
    let sale = CatalogEvent::SaleRecorded(SaleRecorded { quantity: 3 });
    let log = envelopes(
        product,
        &[created("audio"), sale.clone(), sale],
        now() - Duration::minutes(5),
    );
    for envelope in &log[..2] {
        assert_eq!(
            view.apply(envelope, envelope.position)
                .await
                .expect("apply"),
            Applied::Applied
        );
    }
    // A redelivered sale changes nothing.
    assert_eq!(
        view.apply(&log[1], 2).await.expect("apply"),
        Applied::Duplicate
    );
    // One skipped ahead is a gap, and changes nothing either.
    let mut ahead = log[2].clone();
    ahead.aggregate_version = 4;
    assert_eq!(
        view.apply(&ahead, 2).await.expect("apply"),
        Applied::Gap { applied_version: 2 }
    );
    let audio = view
        .trending(TrendingQuery {
            window: Window::Hour,
            category: Some("audio"),
            limit: 10,
            now: now(),
        })
        .await
        .expect("trending");
    assert_eq!(audio.category.as_deref(), Some("audio"));
    assert_eq!(audio.by_sales.len(), 1);
    assert_eq!(audio.by_sales[0].product_id, product);
    assert_eq!(audio.by_sales[0].units_sold, 3);
    assert_eq!(audio.by_sales[0].views, 0);
    assert_eq!(audio.by_sales[0].category.as_deref(), Some("audio"));
    let kitchen = view
        .trending(TrendingQuery {
            window: Window::Hour,
            category: Some("kitchen"),
            limit: 10,
            now: now(),
        })
        .await
        .expect("trending");
    assert!(kitchen.by_sales.is_empty());
    assert_eq!(view.checkpoint().await.expect("checkpoint"), 2);
}

pub async fn searches_rank_by_count_and_zero_result_searches_are_listed_apart(
    view: Arc<dyn AnalyticsProjection>,
) {
    let at = now() - Duration::minutes(1);
    view.record(&[
        searched("kettle", 12, at),
        searched("kettle", 12, at),
        searched("headphnes", 0, at),
        searched("lamp", 3, at),
        searched("headphnes", 0, at),
        searched("zzz", 0, at),
    ])
    .await
    .expect("record");
    let searches = view
        .searches(Window::Hour, 2, now())
        .await
        .expect("searches");
    let pairs = |items: &[SearchCount]| {
        items
            .iter()
            .map(|item| (item.query.clone(), item.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(searches.window, "1h");
    assert_eq!(
        pairs(&searches.top),
        vec![("headphnes".into(), 2), ("kettle".into(), 2)]
    );
    assert_eq!(
        pairs(&searches.zero_results),
        vec![("headphnes".into(), 2), ("zzz".into(), 1)]
    );
    let week = view
        .searches(Window::Week, 10, now())
        .await
        .expect("searches");
    assert_eq!(
        pairs(&week.top),
        vec![
            ("headphnes".into(), 2),
            ("kettle".into(), 2),
            ("lamp".into(), 1),
            ("zzz".into(), 1)
        ]
    );
}

pub async fn the_limit_cuts_ties_by_id_and_the_category_filter_applies_to_views(
    view: Arc<dyn AnalyticsProjection>,
) {
    let at = now() - Duration::minutes(2);
    // Ids 20..=26 in audio with one view each, 30 in kitchen with three, 31 in audio with two.
    let mut batch: Vec<Observation> = (20..=26)
        .rev()
        .map(|n| viewed(Uuid::from_u128(n), "audio", at))
        .collect();
    for _ in 0..3 {
        batch.push(viewed(Uuid::from_u128(30), "kitchen", at));
    }
    for _ in 0..2 {
        batch.push(viewed(Uuid::from_u128(31), "audio", at));
    }
    // Recorded in two batches: counts add up across them.
    let (first, second) = batch.split_at(4);
    view.record(first).await.expect("record");
    view.record(second).await.expect("record");
    let all = view
        .trending(TrendingQuery {
            window: Window::Day,
            category: None,
            limit: 4,
            now: now(),
        })
        .await
        .expect("trending");
    assert_eq!(
        views_of(&all),
        vec![
            (Uuid::from_u128(30), 3),
            (Uuid::from_u128(31), 2),
            (Uuid::from_u128(20), 1),
            (Uuid::from_u128(21), 1)
        ]
    );
    let audio = view
        .trending(TrendingQuery {
            window: Window::Day,
            category: Some("audio"),
            limit: 3,
            now: now(),
        })
        .await
        .expect("trending");
    assert_eq!(
        views_of(&audio),
        vec![
            (Uuid::from_u128(31), 2),
            (Uuid::from_u128(20), 1),
            (Uuid::from_u128(21), 1)
        ]
    );
    let kitchen = view
        .trending(TrendingQuery {
            window: Window::Day,
            category: Some("kitchen"),
            limit: 10,
            now: now(),
        })
        .await
        .expect("trending");
    assert_eq!(views_of(&kitchen), vec![(Uuid::from_u128(30), 3)]);
    assert_eq!(kitchen.by_views[0].category.as_deref(), Some("kitchen"));
    let none = view
        .trending(TrendingQuery {
            window: Window::Day,
            category: Some("garden"),
            limit: 10,
            now: now(),
        })
        .await
        .expect("trending");
    assert!(none.by_views.is_empty() && none.by_sales.is_empty());
}

pub async fn the_search_settings_move_only_the_checkpoint(view: Arc<dyn AnalyticsProjection>) {
    let product = Uuid::from_u128(11);
    let at = now() - Duration::minutes(5);
    let log = envelopes(
        product,
        &[
            created("audio"),
            CatalogEvent::SaleRecorded(SaleRecorded { quantity: 2 }),
        ],
        at,
    );
    assert_eq!(
        view.apply(&log[0], 1).await.expect("apply"),
        Applied::Applied
    );
    for (version, position) in [(1, 2), (2, 3)] {
        let synonyms = NewEvent::from_event(
            events::SEARCH_SETTINGS_ID,
            version,
            &CatalogEvent::SynonymsChanged(events::SynonymsChanged {
                groups: vec![vec!["tv".into(), "television".into()]],
            }),
            at,
            EventMetadata::default(),
        )
        .into_envelope(position);
        assert_eq!(
            view.apply(&synonyms, position)
                .await
                .expect("the analytics view skips the search settings without an error"),
            Applied::Duplicate
        );
        assert_eq!(view.checkpoint().await.expect("checkpoint"), position);
    }
    let mut sale = log[1].clone();
    sale.position = 4;
    assert_eq!(view.apply(&sale, 4).await.expect("apply"), Applied::Applied);
    let trending = view
        .trending(TrendingQuery {
            window: Window::Hour,
            category: None,
            limit: 10,
            now: now(),
        })
        .await
        .expect("trending");
    assert_eq!(trending.by_sales.len(), 1);
    assert_eq!(trending.by_sales[0].units_sold, 2);
    assert_eq!(view.checkpoint().await.expect("checkpoint"), 4);
}

/// A rebuild derives the sales again from the catalog stream (here
/// one more sale than the live generation applied, as a fixed projection would find) and
/// carries the shoppers' views and searches over from the live generation.
pub async fn a_rebuild_derives_sales_again_and_carries_views_and_searches_over(
    view: Arc<dyn AnalyticsProjection>,
) {
    let generations = view.generations().expect("a view with generations");
    let product = Uuid::from_u128(21);
    let sale = CatalogEvent::SaleRecorded(SaleRecorded { quantity: 2 });
    let at = now() - Duration::minutes(5);
    let log = envelopes(product, &[created("audio"), sale.clone(), sale], at);
    for envelope in &log[..2] {
        view.apply(envelope, envelope.position)
            .await
            .expect("apply");
    }
    // Sales the live generation counted that the log does not hold (a projection bug), in a
    // minute bucket of their own: the rebuilt generation has none of them.
    let phantom = Uuid::from_u128(22);
    let earlier = now() - Duration::minutes(20);
    for envelope in envelopes(phantom, &[created("audio"), sale_of(7)], earlier) {
        view.apply(&envelope, 2).await.expect("apply");
    }
    view.record(&[
        viewed(product, "audio", at),
        viewed(product, "audio", at),
        searched("speaker", 4, at),
    ])
    .await
    .expect("record");

    let live = generations.live().await.expect("live");
    let next = generations.prepare().await.expect("prepare");
    next.apply_batch(&log, 3).await.expect("the whole log");
    assert_eq!(
        generations.switch().await.expect("switch"),
        live.generation + 1
    );

    let hour = |category: Option<&'static str>| TrendingQuery {
        window: Window::Hour,
        category,
        limit: 10,
        now: now(),
    };
    let trending = view.trending(hour(None)).await.expect("trending");
    assert_eq!(trending.by_sales.len(), 1);
    assert_eq!(trending.by_sales[0].units_sold, 4, "the rebuilt sales");
    assert_eq!(
        views_of(&trending),
        vec![(product, 2)],
        "the views carried over"
    );
    let searches = view
        .searches(Window::Hour, 10, now())
        .await
        .expect("searches");
    assert_eq!(searches.top.len(), 1, "the searches carried over");
    assert_eq!(searches.top[0].query, "speaker");
    assert_eq!(view.checkpoint().await.expect("checkpoint"), 3);
    // The live generation goes on from the rebuilt one: the next sale counts once.
    let mut next_sale = envelopes(product, &[created("audio"), sale_of(1)], at).remove(1);
    next_sale.aggregate_version = 4;
    next_sale.position = 4;
    assert_eq!(
        view.apply(&next_sale, 4).await.expect("apply"),
        Applied::Applied
    );
    let trending = view.trending(hour(Some("audio"))).await.expect("trending");
    assert_eq!(trending.by_sales[0].units_sold, 5);
}

fn sale_of(quantity: i64) -> CatalogEvent {
    CatalogEvent::SaleRecorded(SaleRecorded { quantity })
}
