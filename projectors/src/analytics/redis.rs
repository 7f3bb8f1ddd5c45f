//! The analytics view in Redis (the distributed mode): one view shared by every query-api
//! replica, fed by the projectors role from the catalog stream (sales, categories) and from
//! `catalog.analytics-events` (views, searches).
//!
//! # Layout (every key under the view's hash tag, see [`redis_client`])
//!
//! | key | what |
//! | --- | --- |
//! | `an:m:<minute>:<kind>` | sorted set, one per one-minute bucket: member → count |
//! | `an:h:<hour>:<kind>` | the same per one-hour bucket |
//! | `an:cat` | hash: product id → category slug |
//! | `an:ver` | hash: product id → the catalog version applied (sales are counted once) |
//! | `an:checkpoint` | every catalog position up to it applied |
//! | `an:intact` | set once the projector caught the view up (see [`Projection::is_intact`]) |
//! | `an:generation`, `an:generation:version` | how many times the view was rebuilt, and the view version it was built with |
//! | `an:next:…` | a generation being rebuilt: `ver`, `cat`, `checkpoint` and the sales buckets (see [`super::redis_generations`]) |
//!
//! Kinds: `v` views and `s` units sold by product id, `v:c:<slug>` and `s:c:<slug>` the same
//! for one category, `q` searches and `z` zero-result searches by normalised text. Bucket
//! numbers are minutes or hours since the Unix epoch of each event's own time, as in the
//! memory view; each bucket key expires (`EXPIREAT`) once no window can cover it any more, so
//! the view keeps an hour of minutes and a week of hours with nothing to prune.
//!
//! A window is one script: `ZUNIONSTORE` of its buckets into a scratch key, the top `limit`
//! members plus the members tied with the last of them (so ties order by member, as in the
//! memory view, and nothing beyond `2 × limit` members leaves Redis), then the scratch keys
//! are deleted — all inside the script, so concurrent readers never see each other's.
//!
//! The category filter counts views and sales under the category the product had when they
//! happened (the memory view re-files a product's counts when its category changes).
//!
//! Views and searches arrive at least once (Kafka): a redelivered batch after a projector
//! crash counts twice. Sales are exact: each `SaleRecorded` is applied once per
//! `aggregate_version`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::analytics::{AnalyticsEvent, Observation};
use events::Envelope;
use redis::Script;
use redis_client::{RedisConfig, RedisConnection};
use uuid::Uuid;

use super::view::{
    hour, minute, AnalyticsError, AnalyticsView, CatalogFacts, SearchCount, Searches, Trending,
    TrendingProduct, TrendingQuery, Window,
};
use crate::generations::Generations;
use crate::redis::{is_marked, lost_during_fill, mark, mark_filled, read_position, unavailable};
use crate::{Applied, Projection, ProjectionError};

/// Seconds past a bucket's start until no window covers it (plus a minute's slack).
const MINUTE_BUCKET_LIFE: i64 = 61 * 60;
const HOUR_BUCKET_LIFE: i64 = 169 * 3600;

const APPLY_CATALOG: &str = r#"
-- KEYS: 1 versions, 2 categories, 3 checkpoint, then the sales buckets to add to.
-- ARGV: 1 product id, 2 version, 3 checkpoint, 4 category ('' = unchanged), 5 units, then
-- one expire-at per sales bucket.
if tonumber(ARGV[3]) > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], ARGV[3])
end
local applied = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local version = tonumber(ARGV[2])
if version <= applied then return {0, applied} end
if version > applied + 1 then return {2, applied} end
redis.call('HSET', KEYS[1], ARGV[1], version)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[4]) end
local units = tonumber(ARGV[5])
if units > 0 then
  for i = 4, #KEYS do
    redis.call('ZINCRBY', KEYS[i], units, ARGV[1])
    redis.call('EXPIREAT', KEYS[i], ARGV[i + 2])
  end
end
return {1, applied}
"#;

const SAVE_CHECKPOINT: &str = r#"
-- KEYS: 1 checkpoint. ARGV: 1 checkpoint.
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"#;

/// The top of two windows: `{best, ties, best, ties}`, each a flat member/score list, with
/// the scores of every returned member in the other window when `ARGV[3]` is `cross`, and the
/// categories of the members when `KEYS[3]` names a hash.
const TOP: &str = r#"
-- KEYS: 1 scratch A, 2 scratch B, 3 categories hash (or the scratch A again: none), then n
-- buckets of A, then n buckets of B.
-- ARGV: 1 n, 2 limit, 3 'cross' or 'plain'.
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local function top(scratch, first)
  local buckets = {}
  for i = first, first + n - 1 do buckets[#buckets + 1] = KEYS[i] end
  redis.call('ZUNIONSTORE', scratch, #buckets, unpack(buckets))
  local best = redis.call('ZREVRANGE', scratch, 0, limit - 1, 'WITHSCORES')
  if #best == 0 then return best, {} end
  local boundary = best[#best]
  local ties = redis.call('ZRANGEBYSCORE', scratch, boundary, boundary, 'WITHSCORES', 'LIMIT', 0, limit)
  return best, ties
end
local a_best, a_ties = top(KEYS[1], 4)
local b_best, b_ties = top(KEYS[2], 4 + n)
local extra = {}
if ARGV[3] == 'cross' then
  for _, list in ipairs({a_best, a_ties, b_best, b_ties}) do
    for i = 1, #list, 2 do
      local member = list[i]
      if extra[member] == nil then
        extra[member] = true
        extra[#extra + 1] = member
        extra[#extra + 1] = redis.call('ZSCORE', KEYS[1], member) or '0'
        extra[#extra + 1] = redis.call('ZSCORE', KEYS[2], member) or '0'
        extra[#extra + 1] = redis.call('HGET', KEYS[3], member) or ''
      end
    end
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
local out = {}
for i = 1, #extra do out[i] = extra[i] end
return {a_best, a_ties, b_best, b_ties, out}
"#;

/// The analytics view in Redis; see the module documentation.
pub struct RedisAnalytics {
    pub(super) config: Arc<RedisConfig>,
    pub(super) connection: RedisConnection,
    pub(super) name: String,
    /// Where what comes from the catalog stream is kept (versions, categories, checkpoint,
    /// sales): `an` for the live view, [`super::redis_generations::NEXT`] for one being
    /// rebuilt. Views and searches are always under `an`.
    pub(super) space: &'static str,
    /// A fill from the store began ([`Projection::begin_fill`]) and has not been marked.
    filling: AtomicBool,
    apply_catalog: Script,
    save_checkpoint: Script,
    top: Script,
}

fn view_error(error: redis::RedisError) -> AnalyticsError {
    AnalyticsError(format!("Redis: {error}"))
}

/// One bucket of one kind: its key and when it expires.
struct BucketKey {
    key: String,
    expire_at: i64,
}

/// `{best, ties, best, ties, extra}` as the `TOP` script returns them.
type TopReply = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// `(member, score)` pairs of a flat `WITHSCORES` reply.
fn pairs(flat: &[String]) -> Vec<(String, u64)> {
    flat.chunks_exact(2)
        .map(|pair| {
            (
                pair[0].clone(),
                pair[1].parse::<f64>().unwrap_or(0.0) as u64,
            )
        })
        .collect()
}

/// The top `limit` of `best` and `ties` (see [`TOP`]): highest count first, ties by member.
fn ranked(best: &[String], ties: &[String], limit: usize) -> Vec<(String, u64)> {
    let mut all: BTreeMap<String, u64> = pairs(best).into_iter().collect();
    all.extend(pairs(ties));
    let mut items: Vec<(String, u64)> = all.into_iter().filter(|(_, n)| *n > 0).collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(limit);
    items
}

impl RedisAnalytics {
    pub fn new(config: Arc<RedisConfig>, connection: RedisConnection, name: &str) -> Self {
        Self::writing(config, connection, name, "an")
    }

    /// The view whose catalog-derived keys are under `space`.
    pub(super) fn writing(
        config: Arc<RedisConfig>,
        connection: RedisConnection,
        name: &str,
        space: &'static str,
    ) -> Self {
        RedisAnalytics {
            config,
            connection,
            name: name.to_owned(),
            space,
            filling: AtomicBool::new(false),
            apply_catalog: Script::new(APPLY_CATALOG),
            save_checkpoint: Script::new(SAVE_CHECKPOINT),
            top: Script::new(TOP),
        }
    }

    /// A key of what comes from the catalog stream (`ver`, `cat`, `checkpoint`).
    pub(super) fn stored(&self, suffix: &str) -> String {
        self.config.key(&format!("{}:{suffix}", self.space))
    }

    /// Where buckets of `kind` live: sales (`s…`) with the catalog-derived keys, views and
    /// searches always in the live space.
    fn space_of(&self, kind: &str) -> &'static str {
        if kind.starts_with('s') {
            self.space
        } else {
            "an"
        }
    }

    /// The minute and the hour bucket of `kind` holding `at`.
    fn buckets_at(&self, at: DateTime<Utc>, kind: &str) -> [BucketKey; 2] {
        let (m, h) = (minute(at), hour(at));
        let space = self.space_of(kind);
        [
            BucketKey {
                key: self.config.key(&format!("{space}:m:{m}:{kind}")),
                expire_at: m * 60 + MINUTE_BUCKET_LIFE,
            },
            BucketKey {
                key: self.config.key(&format!("{space}:h:{h}:{kind}")),
                expire_at: h * 3600 + HOUR_BUCKET_LIFE,
            },
        ]
    }

    /// The bucket keys of `kind` that `window` sums at `now`.
    fn window_keys(&self, window: Window, now: DateTime<Utc>, kind: &str) -> Vec<String> {
        let (minutes, first, last) = window.buckets(now);
        let unit = if minutes { "m" } else { "h" };
        let space = self.space_of(kind);
        (first..=last)
            .map(|bucket| self.config.key(&format!("{space}:{unit}:{bucket}:{kind}")))
            .collect()
    }

    /// Runs [`TOP`] over the buckets of two kinds.
    async fn top(
        &self,
        window: Window,
        now: DateTime<Utc>,
        kinds: (&str, &str),
        limit: usize,
        cross: bool,
    ) -> Result<TopReply, AnalyticsError> {
        let first = self.window_keys(window, now, kinds.0);
        let second = self.window_keys(window, now, kinds.1);
        let scratch = (
            self.config.key(&format!("an:scratch:{}", kinds.0)),
            self.config.key(&format!("an:scratch:{}", kinds.1)),
        );
        let mut invocation = self.top.prepare_invoke();
        invocation.key(&scratch.0).key(&scratch.1);
        if cross {
            invocation.key(self.stored("cat"));
        } else {
            invocation.key(&scratch.0);
        }
        for key in first.iter().chain(second.iter()) {
            invocation.key(key);
        }
        invocation
            .arg(first.len())
            .arg(limit)
            .arg(if cross { "cross" } else { "plain" });
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(view_error)
    }

    async fn save_checkpoint(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        let mut connection = self.connection.clone();
        let _: i64 = self
            .save_checkpoint
            .key(self.stored("checkpoint"))
            .arg(checkpoint)
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl AnalyticsView for RedisAnalytics {
    async fn record(&self, batch: &[Observation]) -> Result<(), AnalyticsError> {
        // Summed per key and member first: one ZINCRBY per pair, whatever the batch repeats.
        let mut counts: HashMap<String, (i64, HashMap<String, u64>)> = HashMap::new();
        let mut categories: HashMap<Uuid, &str> = HashMap::new();
        let oldest = Utc::now().timestamp();
        let mut add = |bucket: BucketKey, member: String| {
            if bucket.expire_at > oldest {
                *counts
                    .entry(bucket.key)
                    .or_insert_with(|| (bucket.expire_at, HashMap::new()))
                    .1
                    .entry(member)
                    .or_default() += 1;
            }
        };
        for observation in batch {
            match &observation.event {
                AnalyticsEvent::ProductViewed(viewed) => {
                    let id = viewed.product_id.to_string();
                    let in_category = format!("v:c:{}", viewed.category);
                    for bucket in self
                        .buckets_at(observation.at, "v")
                        .into_iter()
                        .chain(self.buckets_at(observation.at, &in_category))
                    {
                        add(bucket, id.clone());
                    }
                    categories.insert(viewed.product_id, &viewed.category);
                }
                AnalyticsEvent::SearchPerformed(search) => {
                    for bucket in self.buckets_at(observation.at, "q") {
                        add(bucket, search.query.clone());
                    }
                    if search.result_count == 0 {
                        for bucket in self.buckets_at(observation.at, "z") {
                            add(bucket, search.query.clone());
                        }
                    }
                }
            }
        }
        if counts.is_empty() && categories.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, (expire_at, members)) in &counts {
            for (member, count) in members {
                pipe.cmd("ZINCRBY")
                    .arg(key)
                    .arg(*count)
                    .arg(member)
                    .ignore();
            }
            pipe.cmd("EXPIREAT").arg(key).arg(*expire_at).ignore();
            if (key.ends_with(":q") || key.ends_with(":z")) && !key.contains(":v:c:") {
                // Anyone can send new search texts: a bucket keeps its most counted ones.
                pipe.cmd("ZREMRANGEBYRANK")
                    .arg(key)
                    .arg(0)
                    .arg(-(super::SEARCHES_PER_BUCKET as i64) - 1)
                    .ignore();
            }
        }
        // A view's category stands until the catalog stream says otherwise.
        let category_key = self.stored("cat");
        for (id, slug) in categories {
            pipe.cmd("HSETNX")
                .arg(&category_key)
                .arg(id.to_string())
                .arg(slug)
                .ignore();
        }
        let mut connection = self.connection.clone();
        pipe.query_async::<()>(&mut connection)
            .await
            .map_err(view_error)
    }

    async fn trending(&self, query: TrendingQuery<'_>) -> Result<Trending, AnalyticsError> {
        let kinds = match query.category {
            None => ("v".to_owned(), "s".to_owned()),
            Some(slug) => (format!("v:c:{slug}"), format!("s:c:{slug}")),
        };
        let (views_best, views_ties, sales_best, sales_ties, extra) = self
            .top(
                query.window,
                query.now,
                (&kinds.0, &kinds.1),
                query.limit,
                true,
            )
            .await?;
        let mut known: HashMap<Uuid, TrendingProduct> = HashMap::new();
        for row in extra.chunks_exact(4) {
            let Ok(id) = Uuid::parse_str(&row[0]) else {
                continue;
            };
            let count = |text: &str| text.parse::<f64>().unwrap_or(0.0) as u64;
            known.insert(
                id,
                TrendingProduct {
                    product_id: id,
                    category: (!row[3].is_empty()).then(|| row[3].clone()),
                    views: count(&row[1]),
                    units_sold: count(&row[2]),
                },
            );
        }
        let items = |best: &[String], ties: &[String]| -> Vec<TrendingProduct> {
            ranked(best, ties, query.limit)
                .into_iter()
                .filter_map(|(member, _)| {
                    Uuid::parse_str(&member)
                        .ok()
                        .and_then(|id| known.get(&id).cloned())
                })
                .collect()
        };
        Ok(Trending {
            window: query.window.as_str().to_owned(),
            category: query.category.map(str::to_owned),
            by_views: items(&views_best, &views_ties),
            by_sales: items(&sales_best, &sales_ties),
        })
    }

    async fn searches(
        &self,
        window: Window,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Searches, AnalyticsError> {
        let (top_best, top_ties, zero_best, zero_ties, _) =
            self.top(window, now, ("q", "z"), limit, false).await?;
        let counts = |best: &[String], ties: &[String]| {
            ranked(best, ties, limit)
                .into_iter()
                .map(|(query, count)| SearchCount { query, count })
                .collect()
        };
        Ok(Searches {
            window: window.as_str().to_owned(),
            top: counts(&top_best, &top_ties),
            zero_results: counts(&zero_best, &zero_ties),
        })
    }
}

#[async_trait]
impl Projection for RedisAnalytics {
    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        envelope: &Envelope,
        checkpoint: u64,
    ) -> Result<Applied, ProjectionError> {
        let Some(event) = crate::decode_product_event(envelope)? else {
            self.save_checkpoint(checkpoint).await?;
            return Ok(Applied::Duplicate);
        };
        let id = envelope.aggregate_id;
        let facts = CatalogFacts::of(&event);
        let (category, units) = (facts.category, facts.sold.unwrap_or(0));
        let mut connection = self.connection.clone();
        let mut buckets = Vec::new();
        // A sale older than every window (a rebuild replaying the log) only moves the version.
        let alive = |bucket: &BucketKey| bucket.expire_at > Utc::now().timestamp();
        if units > 0 && self.buckets_at(envelope.occurred_at, "s").iter().any(alive) {
            buckets.extend(self.buckets_at(envelope.occurred_at, "s"));
            // The product's category is the projector's to change, and one product's events
            // are applied in order: reading it before the script cannot race.
            let slug: Option<String> = redis::cmd("HGET")
                .arg(self.stored("cat"))
                .arg(id.to_string())
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if let Some(slug) = slug {
                buckets.extend(self.buckets_at(envelope.occurred_at, &format!("s:c:{slug}")));
            }
            buckets.retain(alive);
        }
        let mut invocation = self.apply_catalog.prepare_invoke();
        invocation
            .key(self.stored("ver"))
            .key(self.stored("cat"))
            .key(self.stored("checkpoint"));
        for bucket in &buckets {
            invocation.key(&bucket.key);
        }
        invocation
            .arg(id.to_string())
            .arg(envelope.aggregate_version)
            .arg(checkpoint)
            .arg(category.unwrap_or_default())
            .arg(units);
        for bucket in &buckets {
            invocation.arg(bucket.expire_at);
        }
        let (outcome, applied): (i64, u64) = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(match outcome {
            0 => Applied::Duplicate,
            2 => Applied::Gap {
                applied_version: applied,
            },
            _ => Applied::Applied,
        })
    }

    async fn checkpoint(&self) -> Result<u64, ProjectionError> {
        read_position(&self.connection, self.stored("checkpoint"))
            .await
            .map_err(unavailable)
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), ProjectionError> {
        self.save_checkpoint(checkpoint).await
    }

    fn generations(&self) -> Option<&dyn Generations> {
        Some(self)
    }

    async fn is_intact(&self) -> Result<bool, ProjectionError> {
        is_marked(&self.connection, self.config.key("an:intact"))
            .await
            .map_err(unavailable)
    }

    async fn mark_intact(&self) -> Result<(), ProjectionError> {
        let intact = self.config.key("an:intact");
        if !self.filling.swap(false, Ordering::SeqCst) {
            return mark(&self.connection, intact).await.map_err(unavailable);
        }
        match mark_filled(&self.connection, self.config.key("an:filling"), intact).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(lost_during_fill()),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn begin_fill(&self) -> Result<(), ProjectionError> {
        mark(&self.connection, self.config.key("an:filling"))
            .await
            .map_err(unavailable)?;
        self.filling.store(true, Ordering::SeqCst);
        Ok(())
    }
}
