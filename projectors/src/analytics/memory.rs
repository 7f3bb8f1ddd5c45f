//! The analytics view in memory (the embedded mode): buckets in a map, pruned to an hour of
//! minutes and a week of hours behind the newest.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::analytics::{AnalyticsEvent, Observation};
use events::Envelope;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use super::view::{
    hour, minute, AnalyticsError, AnalyticsView, CatalogFacts, SearchCount, Searches, Trending,
    TrendingProduct, TrendingQuery, Window,
};
use crate::generations::{Generations, Live};
use crate::{Applied, Projection, ProjectionError};

#[derive(Default)]
struct Bucket {
    views: HashMap<Uuid, u64>,
    sales: HashMap<Uuid, u64>,
    searches: HashMap<String, u64>,
    zero_results: HashMap<String, u64>,
}

#[derive(Default)]
struct State {
    minutes: BTreeMap<i64, Bucket>,
    hours: BTreeMap<i64, Bucket>,
    /// Each product's current category.
    categories: HashMap<Uuid, String>,
    /// Each product's applied version (the catalog stream is at-least-once).
    versions: HashMap<Uuid, u64>,
    position: u64,
}

impl State {
    fn count(&mut self, at: DateTime<Utc>, add: impl Fn(&mut Bucket)) {
        add(self.minutes.entry(minute(at)).or_default());
        add(self.hours.entry(hour(at)).or_default());
        // Keep an hour of minutes and a week of hours behind the newest bucket.
        prune(&mut self.minutes, 59);
        prune(&mut self.hours, 167);
    }

    /// One of the buckets' counts, summed over the buckets `window` covers at `now`.
    fn sum<K: Clone + Eq + std::hash::Hash>(
        &self,
        window: Window,
        now: DateTime<Utc>,
        counts: impl Fn(&Bucket) -> &HashMap<K, u64>,
    ) -> HashMap<K, u64> {
        let (minutes, first, last) = window.buckets(now);
        let map = if minutes { &self.minutes } else { &self.hours };
        let mut sum: HashMap<K, u64> = HashMap::new();
        for (_, bucket) in map.range(first..=last) {
            for (key, count) in counts(bucket) {
                *sum.entry(key.clone()).or_default() += count;
            }
        }
        sum
    }
}

/// Drops the buckets more than `keep` buckets older than the newest.
fn prune(buckets: &mut BTreeMap<i64, Bucket>, keep: i64) {
    let (Some(&oldest), Some(&newest)) = (buckets.keys().next(), buckets.keys().next_back()) else {
        return;
    };
    if oldest < newest - keep {
        *buckets = buckets.split_off(&(newest - keep));
    }
}

/// The `limit` largest counts, ties by key.
fn top<K: Clone + Ord>(counts: &HashMap<K, u64>, limit: usize) -> Vec<(K, u64)> {
    let mut items: Vec<(&K, &u64)> = counts.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    items
        .into_iter()
        .take(limit)
        .map(|(key, count)| (key.clone(), *count))
        .collect()
}

/// The analytics view in memory (the embedded mode): rebuilt from the event store at start
/// for sales; shopper views and searches since the process started.
pub struct MemoryAnalytics {
    state: RwLock<State>,
    /// A generation being rebuilt beside this one.
    next: Mutex<Option<Arc<MemoryAnalytics>>>,
    generation: AtomicU64,
}

impl Default for MemoryAnalytics {
    fn default() -> Self {
        MemoryAnalytics {
            state: RwLock::default(),
            next: Mutex::new(None),
            generation: AtomicU64::new(1),
        }
    }
}

impl MemoryAnalytics {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The version of the in-memory analytics view (rebuilt at every start).
const MEMORY_ANALYTICS_VERSION: u64 = 1;

/// A rebuild re-derives what comes from the event store (sales, categories, versions); the
/// shoppers' views and searches, which the store does not keep, are carried over from the live
/// generation at the switch.
#[async_trait]
impl Generations for MemoryAnalytics {
    fn version(&self) -> u64 {
        MEMORY_ANALYTICS_VERSION
    }

    async fn live(&self) -> Result<Live, ProjectionError> {
        Ok(Live {
            generation: self.generation.load(Ordering::SeqCst),
            version: MEMORY_ANALYTICS_VERSION,
        })
    }

    async fn prepare(&self) -> Result<Arc<dyn Projection>, ProjectionError> {
        let next = Arc::new(MemoryAnalytics::new());
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
        let mut guard = self.state.write();
        let state = &mut *guard;
        for (live, rebuilt) in [
            (&mut state.minutes, built.minutes),
            (&mut state.hours, built.hours),
        ] {
            for bucket in live.values_mut() {
                bucket.sales.clear();
            }
            for (at, bucket) in rebuilt {
                live.entry(at).or_default().sales = bucket.sales;
            }
        }
        // Categories first seen in a view stay; the store's say where it knows.
        state.categories.extend(built.categories);
        state.versions = built.versions;
        state.position = state.position.max(built.position);
        Ok(self.generation.fetch_add(1, Ordering::SeqCst) + 1)
    }

    async fn drop_previous(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// Bounds a bucket's distinct search texts (anyone can send new ones): past
/// [`super::SEARCHES_PER_BUCKET`] + 10 %, the least counted go, down to the cap.
fn keep_most_counted(counts: &mut HashMap<String, u64>) {
    let cap = super::SEARCHES_PER_BUCKET;
    if counts.len() <= cap + cap / 10 {
        return;
    }
    let mut by_count: Vec<u64> = counts.values().copied().collect();
    let cut = by_count.len() - cap;
    by_count.select_nth_unstable(cut);
    let threshold = by_count[cut];
    let mut over = counts.len() - cap;
    counts.retain(|_, count| {
        if over > 0 && *count <= threshold {
            over -= 1;
            false
        } else {
            true
        }
    });
}

#[async_trait]
impl AnalyticsView for MemoryAnalytics {
    async fn record(&self, batch: &[Observation]) -> Result<(), AnalyticsError> {
        let mut state = self.state.write();
        for observation in batch {
            match &observation.event {
                AnalyticsEvent::ProductViewed(viewed) => {
                    state
                        .categories
                        .entry(viewed.product_id)
                        .or_insert_with(|| viewed.category.clone());
                    state.count(observation.at, |bucket| {
                        *bucket.views.entry(viewed.product_id).or_default() += 1;
                    });
                }
                AnalyticsEvent::SearchPerformed(search) => {
                    state.count(observation.at, |bucket| {
                        *bucket.searches.entry(search.query.clone()).or_default() += 1;
                        keep_most_counted(&mut bucket.searches);
                        if search.result_count == 0 {
                            *bucket.zero_results.entry(search.query.clone()).or_default() += 1;
                            keep_most_counted(&mut bucket.zero_results);
                        }
                    });
                }
            }
        }
        Ok(())
    }

    async fn trending(&self, query: TrendingQuery<'_>) -> Result<Trending, AnalyticsError> {
        let state = self.state.read();
        let mut views = state.sum(query.window, query.now, |bucket| &bucket.views);
        let mut sales = state.sum(query.window, query.now, |bucket| &bucket.sales);
        let in_category = |id: &Uuid| match query.category {
            None => true,
            Some(slug) => state.categories.get(id).map(String::as_str) == Some(slug),
        };
        views.retain(|id, _| in_category(id));
        sales.retain(|id, _| in_category(id));
        let item = |id: Uuid| TrendingProduct {
            product_id: id,
            category: state.categories.get(&id).cloned(),
            views: views.get(&id).copied().unwrap_or(0),
            units_sold: sales.get(&id).copied().unwrap_or(0),
        };
        let by_views = top(&views, query.limit)
            .into_iter()
            .map(|(id, _)| item(id))
            .collect();
        let by_sales = top(&sales, query.limit)
            .into_iter()
            .map(|(id, _)| item(id))
            .collect();
        Ok(Trending {
            window: query.window.as_str().to_owned(),
            category: query.category.map(str::to_owned),
            by_views,
            by_sales,
        })
    }

    async fn searches(
        &self,
        window: Window,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Searches, AnalyticsError> {
        let state = self.state.read();
        let all = state.sum(window, now, |bucket| &bucket.searches);
        let zero = state.sum(window, now, |bucket| &bucket.zero_results);
        let counts = |items: Vec<(String, u64)>| {
            items
                .into_iter()
                .map(|(query, count)| SearchCount { query, count })
                .collect()
        };
        Ok(Searches {
            window: window.as_str().to_owned(),
            top: counts(top(&all, limit)),
            zero_results: counts(top(&zero, limit)),
        })
    }
}

#[async_trait]
impl Projection for MemoryAnalytics {
    fn name(&self) -> &str {
        "analytics"
    }

    fn generations(&self) -> Option<&dyn Generations> {
        Some(self)
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let event = crate::decode_product_event(envelope)?;
        let mut state = self.state.write();
        state.position = state.position.max(checkpoint);
        let Some(event) = event else {
            return Ok(Applied::Duplicate);
        };
        let id = envelope.aggregate_id;
        let applied = state.versions.get(&id).copied().unwrap_or(0);
        if envelope.aggregate_version <= applied {
            return Ok(Applied::Duplicate);
        }
        if envelope.aggregate_version > applied + 1 {
            return Ok(Applied::Gap {
                applied_version: applied,
            });
        }
        state.versions.insert(id, envelope.aggregate_version);
        let facts = CatalogFacts::of(&event);
        if let Some(category) = facts.category {
            state.categories.insert(id, category);
        }
        if let Some(units) = facts.sold {
            state.count(envelope.occurred_at, |bucket| {
                *bucket.sales.entry(id).or_default() += units;
            });
        }
        Ok(Applied::Applied)
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        Ok(self.state.read().position)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        let mut state = self.state.write();
        state.position = state.position.max(checkpoint);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::analytics::view::AnalyticsProjection;

    async fn memory_view() -> Arc<dyn AnalyticsProjection> {
        Arc::new(MemoryAnalytics::new())
    }

    crate::analytics_view_suite!(the_memory_view_passes, memory_view);
}

#[cfg(test)]
mod bound_tests {
    use super::*;

    #[test]
    fn a_bucket_keeps_its_most_counted_search_texts() {
        let cap = super::super::SEARCHES_PER_BUCKET;
        let mut counts: HashMap<String, u64> = HashMap::new();
        counts.insert("tv".into(), 50);
        for index in 0..(cap * 2) {
            counts.insert(format!("junk {index}"), 1);
            keep_most_counted(&mut counts);
        }
        assert!(counts.len() <= cap + cap / 10, "{}", counts.len());
        assert_eq!(counts.get("tv"), Some(&50));
    }
}
