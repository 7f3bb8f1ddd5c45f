//! Limits shared through Redis, so N command replicas enforce one limit: the failed-login
//! throttle ([`RedisLoginThrottle`]) and the GCRA rate-limit buckets of the auth and write
//! classes ([`RedisRateLimits`]). Each check is one Lua script (atomic; Redis's own clock, so
//! replicas' clocks do not matter); every key carries the configuration's hash tag, so a
//! script's keys share a cluster slot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::Script;
use redis_client::{RedisConfig, RedisConnection};
use web::rate_limit::{
    BoxFuture, ClientKey, Decision, LocalBackend, RateLimitBackend, RateLimits, RouteClass,
};

use crate::accounts::throttle::{AttemptKeys, LoginThrottle};
use crate::accounts::AccountError;

const BEGIN: &str = r#"
-- KEYS: the attempt's keys. ARGV: 1 forget (ms), then per key: free, base (ms), max (ms).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local wait = 0
for _, key in ipairs(KEYS) do
  local next_allowed = tonumber(redis.call('HGET', key, 'next') or '0')
  if next_allowed - now > wait then wait = next_allowed - now end
end
if wait > 0 then return wait end
for index, key in ipairs(KEYS) do
  local at = 2 + (index - 1) * 3
  local free, base, max = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local failures = redis.call('HINCRBY', key, 'n', 1)
  local delay = 0
  if failures >= free then delay = math.min(base * 2 ^ math.min(failures - free, 30), max) end
  redis.call('HSET', key, 'next', now + delay)
  redis.call('PEXPIRE', key, ARGV[1])
end
return 0
"#;

const SUCCEEDED: &str = r#"
-- KEYS: the attempt's keys; a key whose name has ARGV[1] in it (the pair) is forgotten.
for _, key in ipairs(KEYS) do
  if string.find(key, ARGV[1], 1, true) then
    redis.call('DEL', key)
  elseif redis.call('EXISTS', key) == 1 and tonumber(redis.call('HGET', key, 'n') or '0') > 0 then
    redis.call('HINCRBY', key, 'n', -1)
  end
end
return 1
"#;

/// The failed-login throttle in Redis.
pub struct RedisLoginThrottle {
    config: Arc<RedisConfig>,
    connection: RedisConnection,
    forget: Duration,
    begin: Script,
    succeeded: Script,
}

impl RedisLoginThrottle {
    pub fn new(config: Arc<RedisConfig>, connection: RedisConnection, forget: Duration) -> Self {
        RedisLoginThrottle {
            config,
            connection,
            forget,
            begin: Script::new(BEGIN),
            succeeded: Script::new(SUCCEEDED),
        }
    }

    fn key(&self, key: &str) -> String {
        self.config.key(&format!("login:{key}"))
    }
}

fn unavailable(error: redis::RedisError) -> AccountError {
    AccountError::Unavailable(format!("Redis: {error}"))
}

#[async_trait]
impl LoginThrottle for RedisLoginThrottle {
    async fn begin(&self, attempt: &AttemptKeys) -> Result<Result<(), Duration>, AccountError> {
        let mut invocation = self.begin.prepare_invoke();
        invocation.arg(self.forget.as_millis() as u64);
        for (key, backoff) in &attempt.keys {
            invocation
                .key(self.key(key))
                .arg(backoff.free)
                .arg(backoff.base.as_millis() as u64)
                .arg(backoff.max.as_millis() as u64);
        }
        let mut connection = self.connection.clone();
        let wait: u64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(match wait {
            0 => Ok(()),
            milliseconds => Err(Duration::from_millis(milliseconds)),
        })
    }

    async fn succeeded(&self, attempt: &AttemptKeys) -> Result<(), AccountError> {
        let mut invocation = self.succeeded.prepare_invoke();
        invocation.arg("login:pair:");
        for (key, _) in &attempt.keys {
            invocation.key(self.key(key));
        }
        let mut connection = self.connection.clone();
        let _: i64 = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

const GCRA: &str = r#"
-- KEYS: 1 the bucket. ARGV: 1 emission interval (µs), 2 burst.
-- Returns {allowed, remaining, retry after (µs), reset (µs)}.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tolerance = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then
  return {0, 0, tat - tolerance - now, tat - now}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, math.floor((now + tolerance - tat) / interval), 0, next_tat - now}
"#;

/// Rate-limit buckets in Redis. When Redis cannot be reached, the check is made in this
/// process instead (a per-replica limit rather than none, and never a failed request), with a
/// warning at most every 10 s.
pub struct RedisRateLimits {
    config: Arc<RedisConfig>,
    connection: RedisConnection,
    limits: RateLimits,
    script: Script,
    fallback: Arc<LocalBackend>,
    last_warning: AtomicU64,
}

impl RedisRateLimits {
    pub fn new(
        config: Arc<RedisConfig>,
        connection: RedisConnection,
        limits: RateLimits,
        fallback: Arc<LocalBackend>,
    ) -> Self {
        RedisRateLimits {
            config,
            connection,
            limits,
            script: Script::new(GCRA),
            fallback,
            last_warning: AtomicU64::new(0),
        }
    }

    async fn shared(&self, class: RouteClass, key: &ClientKey) -> Result<Decision, String> {
        let rate = self
            .limits
            .rate(class)
            .ok_or_else(|| "no limit for this class".to_owned())?;
        let mut connection = self.connection.clone();
        let answer: Vec<i64> = self
            .script
            .key(self.config.key(&format!("rate:{}:{key}", class.as_str())))
            .arg(rate.interval().as_micros().max(1) as u64)
            .arg(rate.count.get())
            .invoke_async(&mut connection)
            .await
            .map_err(|error| error.to_string())?;
        let [allowed, remaining, retry_after, reset] = answer[..] else {
            return Err(format!("the rate script answered {answer:?}"));
        };
        let micros = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit: rate.count.get(),
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset: micros(reset),
            retry_after: micros(retry_after),
        })
    }

    fn warn(&self, error: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "rate limits: Redis unavailable, limiting in this process");
        }
    }
}

impl RateLimitBackend for RedisRateLimits {
    fn check<'a>(&'a self, class: RouteClass, key: &'a ClientKey) -> BoxFuture<'a, Decision> {
        Box::pin(async move {
            match self.shared(class, key).await {
                Ok(decision) => decision,
                Err(error) => {
                    self.warn(&error);
                    self.fallback.decide(class, key)
                }
            }
        })
    }
}
