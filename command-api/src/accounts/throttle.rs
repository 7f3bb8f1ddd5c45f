//! Failed-login throttling: exponential backoff per (account, address), per address and per
//! account, counted **before** the password is checked, so concurrent guesses cannot all be
//! checked.
//!
//! Each key has a number of free attempts; past them, the next attempt must wait `base × 2^k`
//! (capped) after the last. An attempt is counted when it begins, atomically over all its
//! keys, and given back when it succeeds. The (account, address) pair backs off first, so one
//! guesser slows itself down without locking the account's owner out; the whole account backs
//! off only after many failures from many addresses (a distributed guess), and then for at
//! most `max`, never for a fixed 15 minutes anyone could trigger. A key is forgotten `forget`
//! after its last failure.
//!
//! [`LocalThrottle`] keeps the keys in this process (bounded: at most 100,000 keys, the least
//! recently used go first); the Redis adapter (`accounts::redis`) shares them between replicas
//! with one atomic script per attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::accounts::AccountError;

/// The longest email a login may carry (API.md); checked before anything else.
pub const MAX_EMAIL_LENGTH: usize = 254;

/// How one kind of key backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures allowed without waiting.
    pub free: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after the `failures`-th failure (zero while free).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(30);
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// The throttle's settings: a backoff per kind of key and how long a key is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub pair: Backoff,
    pub address: Backoff,
    pub account: Backoff,
    pub forget: Duration,
}

impl Default for ThrottlePolicy {
    /// 3 free guesses per account and address, 20 per address, 100 per account; waits double
    /// from 1 s up to 5 minutes (the account as a whole: 30 s); forgotten after 15 minutes.
    fn default() -> Self {
        ThrottlePolicy {
            pair: Backoff {
                free: 3,
                base: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            address: Backoff {
                free: 20,
                base: Duration::from_secs(1),
                max: Duration::from_secs(300),
            },
            account: Backoff {
                free: 100,
                base: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            forget: Duration::from_secs(15 * 60),
        }
    }
}

/// The keys of one login attempt with their backoffs.
#[derive(Debug, Clone)]
pub struct AttemptKeys {
    pub keys: Vec<(String, Backoff)>,
}

impl AttemptKeys {
    /// For `email` (already lower-cased and at most 254 characters) from `address`.
    pub fn new(policy: &ThrottlePolicy, email: &str, address: Option<std::net::IpAddr>) -> Self {
        let mut keys = vec![(format!("account:{email}"), policy.account)];
        if let Some(address) = address {
            keys.push((format!("pair:{address}:{email}"), policy.pair));
            keys.push((format!("address:{address}"), policy.address));
        }
        AttemptKeys { keys }
    }
}

/// Where attempts are counted. Contract: `begin` either refuses (with the wait of the key that
/// is backing off, counting nothing) or counts the attempt on every key at once; of N
/// concurrent `begin`s on fresh keys with `free` = F, exactly F are let through before the
/// first refusal.
#[async_trait]
pub trait LoginThrottle: Send + Sync + 'static {
    /// `Ok` to go on and check the password; `Err(wait)` to refuse.
    async fn begin(&self, attempt: &AttemptKeys) -> Result<Result<(), Duration>, AccountError>;
    /// The password was right: the attempt is given back on every key (the pair forgets all).
    async fn succeeded(&self, attempt: &AttemptKeys) -> Result<(), AccountError>;
}

#[derive(Debug, Clone, Copy)]
struct KeyState {
    failures: u32,
    next_allowed: Instant,
    last: Instant,
}

/// Keys in this process.
pub struct LocalThrottle {
    forget: Duration,
    keys: Mutex<moka::sync::Cache<String, KeyState>>,
}

impl LocalThrottle {
    pub fn new(policy: &ThrottlePolicy) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_idle(policy.forget)
            .build();
        LocalThrottle {
            forget: policy.forget,
            keys: Mutex::new(cache),
        }
    }

    fn begin_now(&self, attempt: &AttemptKeys, now: Instant) -> Result<(), Duration> {
        // One lock over all keys: the check and the count are one step.
        let keys = self.keys.lock();
        let mut wait = Duration::ZERO;
        for (key, _) in &attempt.keys {
            if let Some(state) = keys.get(key) {
                if now.duration_since(state.last) < self.forget {
                    wait = wait.max(state.next_allowed.saturating_duration_since(now));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for (key, backoff) in &attempt.keys {
            let failures = keys
                .get(key)
                .filter(|state| now.duration_since(state.last) < self.forget)
                .map_or(0, |state| state.failures)
                .saturating_add(1);
            keys.insert(
                key.clone(),
                KeyState {
                    failures,
                    next_allowed: now + backoff.delay(failures),
                    last: now,
                },
            );
        }
        Ok(())
    }
}

#[async_trait]
impl LoginThrottle for LocalThrottle {
    async fn begin(&self, attempt: &AttemptKeys) -> Result<Result<(), Duration>, AccountError> {
        Ok(self.begin_now(attempt, Instant::now()))
    }

    async fn succeeded(&self, attempt: &AttemptKeys) -> Result<(), AccountError> {
        let keys = self.keys.lock();
        for (key, backoff) in &attempt.keys {
            if key.starts_with("pair:") {
                keys.invalidate(key);
                continue;
            }
            if let Some(mut state) = keys.get(key) {
                state.failures = state.failures.saturating_sub(1);
                state.next_allowed = state.last + backoff.delay(state.failures);
                keys.insert(key.clone(), state);
            }
        }
        Ok(())
    }
}

/// Bounds the concurrent Argon2 checks (each holds ~19 MiB and a core): `permits` at once, at
/// most `queue` more waiting up to `wait`; beyond that a login is refused with 503 at once,
/// so memory stays bounded under any burst.
pub struct PasswordGate {
    running: Arc<tokio::sync::Semaphore>,
    waiting: Arc<tokio::sync::Semaphore>,
    wait: Duration,
}

/// Why the gate refused a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateFull;

impl PasswordGate {
    /// Sized to the machine: one check per core, four per core waiting, up to 2 s.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        PasswordGate::new(cores, cores * 4, Duration::from_secs(2))
    }

    pub fn new(permits: usize, queue: usize, wait: Duration) -> Self {
        PasswordGate {
            running: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
            waiting: Arc::new(tokio::sync::Semaphore::new(permits.max(1) + queue)),
            wait,
        }
    }

    /// Runs `check` on the blocking pool once a permit is free.
    pub async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GateFull> {
        let _place = self
            .waiting
            .clone()
            .try_acquire_owned()
            .map_err(|_| GateFull)?;
        let permit = tokio::time::timeout(self.wait, self.running.clone().acquire_owned())
            .await
            .map_err(|_| GateFull)?
            .map_err(|_| GateFull)?;
        let answer = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check()
        })
        .await
        .map_err(|_| GateFull)?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy::default()
    }

    #[test]
    fn backoff_doubles_from_the_first_failure_past_the_free_ones_up_to_its_cap() {
        let backoff = policy().pair;
        let delays: Vec<_> = (1..=6).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 1, 2, 4, 8]);
        assert_eq!(backoff.delay(40), Duration::from_secs(300));
    }

    #[test]
    fn a_guesser_is_slowed_without_locking_the_owner_out() {
        let throttle = LocalThrottle::new(&policy());
        let now = Instant::now();
        let guesser = AttemptKeys::new(&policy(), "admin@x", "203.0.113.9".parse().ok());
        let outcomes: Vec<_> = (0..10)
            .map(|_| throttle.begin_now(&guesser, now).is_ok())
            .collect();
        assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 3, "{outcomes:?}");
        let wait = throttle.begin_now(&guesser, now).expect_err("refused");
        assert_eq!(wait, Duration::from_secs(1));
        // The owner, from another address, is not affected.
        let owner = AttemptKeys::new(&policy(), "admin@x", "198.51.100.1".parse().ok());
        assert!(throttle.begin_now(&owner, now).is_ok());
        // After the wait, one more guess; then twice the wait.
        let later = now + Duration::from_secs(1);
        assert!(throttle.begin_now(&guesser, later).is_ok());
        assert_eq!(
            throttle.begin_now(&guesser, later).expect_err("refused"),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn many_addresses_slow_the_account_only_after_many_failures_and_briefly() {
        let throttle = LocalThrottle::new(&policy());
        let now = Instant::now();
        for index in 0..100u32 {
            let address = std::net::IpAddr::from([10, 0, (index / 250) as u8, (index % 250) as u8]);
            let attempt = AttemptKeys::new(&policy(), "admin@x", Some(address));
            assert!(throttle.begin_now(&attempt, now).is_ok(), "{index}");
        }
        let owner = AttemptKeys::new(&policy(), "admin@x", "198.51.100.1".parse().ok());
        let wait = throttle
            .begin_now(&owner, now)
            .expect_err("the account backs off");
        assert!(wait <= Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_success_gives_the_attempt_back() {
        let throttle = LocalThrottle::new(&policy());
        let attempt = AttemptKeys::new(&policy(), "a@x", "192.0.2.1".parse().ok());
        for _ in 0..10 {
            throttle
                .begin(&attempt)
                .await
                .expect("store")
                .expect("allowed");
            throttle.succeeded(&attempt).await.expect("store");
        }
    }

    #[tokio::test]
    async fn the_gate_refuses_beyond_its_queue_at_once() {
        let gate = Arc::new(PasswordGate::new(1, 1, Duration::from_secs(5)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let running = {
            let gate = gate.clone();
            let hold = hold.clone();
            tokio::spawn(async move {
                gate.run(move || {
                    let _ = hold.lock().recv();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(|| ()).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        assert_eq!(gate.run(|| ()).await, Err(GateFull));
        assert!(started.elapsed() < Duration::from_millis(100));
        release.send(()).expect("release");
        assert_eq!(running.await.expect("task"), Ok(()));
        assert_eq!(queued.await.expect("task"), Ok(()));
    }
}
