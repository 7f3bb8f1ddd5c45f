//! Blue/green generations of the Redis analytics view (see [`crate::generations`]).
//!
//! What comes from the catalog stream (versions, categories, the checkpoint and the sales
//! buckets) is derived again from the event store under `an:next:` keys; the shoppers' views
//! and searches, which the store does not keep, stay where they are. The switch is one script:
//! every `an:next:` key is renamed over its live name, every live sales bucket the rebuild did
//! not produce is deleted, and the generation is counted. Readers never see half of it, and
//! nothing is left to drop afterwards.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use redis::Script;

use super::redis::RedisAnalytics;
use crate::generations::{Generations, Live};
use crate::redis::{drop_matching, read_live, unavailable, DROP_STEP};
use crate::{Projection, ProjectionError};

/// Where a generation being rebuilt keeps what comes from the catalog stream.
pub(super) const NEXT: &str = "an:next";

/// The version of the Redis analytics view this code builds.
pub const REDIS_ANALYTICS_VERSION: u64 = 1;

/// One step of listing the keys that match a pattern: `{next cursor, keys}`. KEYS[1] only
/// routes the script to the view's slot.
const LIST_STEP: &str = r#"
return redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
"#;

/// KEYS: 1 generation, 2 version, then pairs (from, to): `from` renamed over `to` when it
/// exists, else `to` deleted. ARGV: 1 the version built. Returns the new generation.
const SWITCH: &str = r#"
for i = 3, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
  else
    redis.call('DEL', KEYS[i + 1])
  end
end
local generation = tonumber(redis.call('GET', KEYS[1]) or '1') + 1
redis.call('SET', KEYS[1], generation)
redis.call('SET', KEYS[2], ARGV[1])
return generation
"#;

impl RedisAnalytics {
    /// Every key matching `pattern` (a glob under the view's hash tag).
    async fn list(&self, pattern: &str) -> Result<Vec<String>, ProjectionError> {
        let script = Script::new(LIST_STEP);
        let mut connection = self.connection.clone();
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = script
                .key(self.stored("generation"))
                .arg(cursor)
                .arg(pattern)
                .arg(DROP_STEP)
                .invoke_async(&mut connection)
                .await
                .map_err(unavailable)?;
            keys.extend(found);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// The live sales buckets (`an:m:<minute>:s…`, `an:h:<hour>:s…`), not the views or
    /// searches a glob would also match.
    async fn live_sales_buckets(&self) -> Result<Vec<String>, ProjectionError> {
        let live = self.config.key("an:");
        let mut buckets = Vec::new();
        for unit in ["m", "h"] {
            for key in self.list(&format!("{live}{unit}:*:s*")).await? {
                let kind = key
                    .strip_prefix(&live)
                    .and_then(|rest| rest.split_once(':'))
                    .and_then(|(_, rest)| rest.split_once(':'))
                    .map(|(_, kind)| kind);
                if matches!(kind, Some(kind) if kind == "s" || kind.starts_with("s:c:")) {
                    buckets.push(key);
                }
            }
        }
        Ok(buckets)
    }
}

#[async_trait]
impl Generations for RedisAnalytics {
    fn version(&self) -> u64 {
        REDIS_ANALYTICS_VERSION
    }

    async fn live(&self) -> Result<Live, ProjectionError> {
        read_live(
            &self.connection,
            self.stored("generation"),
            self.stored("generation:version"),
        )
        .await
    }

    async fn prepare(&self) -> Result<Arc<dyn Projection>, ProjectionError> {
        // What an interrupted rebuild left.
        let pattern = self.config.key(&format!("{NEXT}:*"));
        drop_matching(&self.connection, &self.stored("generation"), &pattern).await?;
        Ok(Arc::new(RedisAnalytics::writing(
            self.config.clone(),
            self.connection.clone(),
            &self.name,
            NEXT,
        )))
    }

    async fn switch(&self) -> Result<u64, ProjectionError> {
        let (next_prefix, live_prefix) =
            (self.config.key(&format!("{NEXT}:")), self.config.key("an:"));
        let next_keys = self.list(&format!("{next_prefix}*")).await?;
        let renamed: Vec<(String, String)> = next_keys
            .iter()
            .filter_map(|key| {
                let rest = key.strip_prefix(&next_prefix)?;
                Some((key.clone(), format!("{live_prefix}{rest}")))
            })
            .collect();
        let replaced: HashSet<&str> = renamed.iter().map(|(_, to)| to.as_str()).collect();
        let absent = self.config.key(&format!("{NEXT}:absent"));
        let mut gone = Vec::new();
        for bucket in self.live_sales_buckets().await? {
            if !replaced.contains(bucket.as_str()) {
                gone.push((absent.clone(), bucket));
            }
        }
        let script = Script::new(SWITCH);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.stored("generation"))
            .key(self.stored("generation:version"));
        for (from, to) in renamed.iter().chain(gone.iter()) {
            invocation.key(from).key(to);
        }
        invocation.arg(REDIS_ANALYTICS_VERSION);
        let mut connection = self.connection.clone();
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    /// The switch replaced the previous generation's keys: nothing is left of it.
    async fn drop_previous(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}
