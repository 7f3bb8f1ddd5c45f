//! Failed-login limiting: after too many failures within a window, further attempts for that
//! account (or from that client address) are refused with 429 until the window moves on.
//!
//! Hand-written rather than `governor`: a rate limiter meters every request, while this counts
//! only failures and must be checked before an attempt without consuming anything.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Counts failures per key in a sliding window.
pub struct FailedLoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailedLoginLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        FailedLoginLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when `key` has used up its failures.
    pub fn blocked_for(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        let entries = failures.get_mut(key)?;
        while entries
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.window)
        {
            entries.pop_front();
        }
        if entries.len() < self.max_failures {
            return None;
        }
        let oldest = entries.front().copied()?;
        Some(self.window.saturating_sub(now.duration_since(oldest)))
    }

    pub fn record_failure(&self, key: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        // Bound memory under a flood of distinct keys: drop keys whose failures all expired.
        if failures.len() > 100_000 {
            failures.retain(|_, entries| {
                entries
                    .back()
                    .is_some_and(|at| now.duration_since(*at) < self.window)
            });
        }
        let entries = failures.entry(key.to_owned()).or_default();
        entries.push_back(now);
        while entries.len() > self.max_failures {
            entries.pop_front();
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blocked_after_the_allowed_failures_and_others_are_not() {
        let limiter = FailedLoginLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.blocked_for("a").is_none());
            limiter.record_failure("a");
        }
        let wait = limiter.blocked_for("a").expect("blocked");
        assert!(wait > Duration::from_secs(50));
        assert!(limiter.blocked_for("b").is_none());
        limiter.clear("a");
        assert!(limiter.blocked_for("a").is_none());
    }

    #[test]
    fn failures_expire_with_the_window() {
        let limiter = FailedLoginLimiter::new(1, Duration::from_millis(20));
        limiter.record_failure("a");
        assert!(limiter.blocked_for("a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(limiter.blocked_for("a").is_none());
    }
}
