//! A circuit breaker: after a dependency failed for half (by default) of the calls in a sliding
//! window, calls fail fast for a while instead of waiting on it; then one probe call goes
//! through, and its outcome closes or reopens the circuit.
//!
//! Hand-written rather than taken from a crate: the crates on crates.io that offer one are
//! young single-author releases, and the behaviour needed here (a failure *ratio* over a time
//! window, a minimum of calls before judging, a single half-open probe, a metric per breaker)
//! is about a hundred lines that the tests below pin down.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How a breaker judges.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Calls older than this no longer count.
    pub window: Duration,
    /// No judgement on fewer calls than this in the window.
    pub minimum_calls: usize,
    /// Trip when failures / calls reaches this.
    pub failure_ratio: f64,
    /// How long to fail fast before letting a probe through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: Duration::from_secs(10),
            minimum_calls: 10,
            failure_ratio: 0.5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    calls: VecDeque<(Instant, bool)>,
    state: State,
    opened_at: Option<Instant>,
    probing: bool,
}

/// The outcome of a guarded call.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// The circuit is open: the call was not made.
    #[error("circuit open for {0}")]
    Open(&'static str),
    /// The call took longer than its timeout.
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error(transparent)]
    Failed(E),
}

/// A named circuit breaker; share it (in an `Arc`) between the callers of one dependency.
#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(name: &'static str, config: BreakerConfig) -> Self {
        metrics::gauge!("catalog_circuit_open", "dependency" => name).set(0.0);
        Breaker {
            name,
            config,
            inner: Mutex::new(Inner {
                calls: VecDeque::new(),
                state: State::Closed,
                opened_at: None,
                probing: false,
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn state(&self) -> State {
        self.inner.lock().state
    }

    /// Whether a call may go through now (and, half-open, claims the one probe).
    fn admit(&self) -> bool {
        let mut inner = self.inner.lock();
        match inner.state {
            State::Closed => true,
            State::Open => {
                let waited = inner
                    .opened_at
                    .is_some_and(|at| at.elapsed() >= self.config.open_for);
                if waited {
                    inner.state = State::HalfOpen;
                    inner.probing = true;
                    true
                } else {
                    false
                }
            }
            State::HalfOpen if !inner.probing => {
                inner.probing = true;
                true
            }
            State::HalfOpen => false,
        }
    }

    fn record(&self, success: bool) {
        let mut inner = self.inner.lock();
        let now = Instant::now();
        if inner.state == State::HalfOpen {
            inner.probing = false;
            if success {
                inner.state = State::Closed;
                inner.calls.clear();
                metrics::gauge!("catalog_circuit_open", "dependency" => self.name).set(0.0);
                tracing::info!(dependency = self.name, "circuit closed again");
            } else {
                inner.state = State::Open;
                inner.opened_at = Some(now);
            }
            return;
        }
        inner.calls.push_back((now, success));
        while inner
            .calls
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > self.config.window)
        {
            inner.calls.pop_front();
        }
        let total = inner.calls.len();
        let failures = inner.calls.iter().filter(|(_, ok)| !ok).count();
        if inner.state == State::Closed
            && total >= self.config.minimum_calls
            && failures as f64 / total as f64 >= self.config.failure_ratio
        {
            inner.state = State::Open;
            inner.opened_at = Some(now);
            metrics::gauge!("catalog_circuit_open", "dependency" => self.name).set(1.0);
            tracing::warn!(dependency = self.name, failures, total, "circuit opened");
        }
    }

    /// Runs `call` with `timeout` unless the circuit is open. A timeout counts as a failure.
    pub async fn call<T, E, F>(&self, timeout: Duration, call: F) -> Result<T, BreakerError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        if !self.admit() {
            metrics::counter!("catalog_circuit_rejected_total", "dependency" => self.name)
                .increment(1);
            return Err(BreakerError::Open(self.name));
        }
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => {
                self.record(true);
                Ok(value)
            }
            Ok(Err(error)) => {
                self.record(false);
                Err(BreakerError::Failed(error))
            }
            Err(_) => {
                self.record(false);
                Err(BreakerError::Timeout(self.name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> BreakerConfig {
        BreakerConfig {
            window: Duration::from_secs(10),
            minimum_calls: 4,
            failure_ratio: 0.5,
            open_for: Duration::from_millis(100),
        }
    }

    async fn outcome(breaker: &Breaker, ok: bool) -> Result<(), BreakerError<&'static str>> {
        breaker
            .call(Duration::from_secs(1), async move {
                if ok {
                    Ok(())
                } else {
                    Err("down")
                }
            })
            .await
    }

    #[tokio::test]
    async fn it_trips_at_half_failures_over_the_window_and_fails_fast() {
        let breaker = Breaker::new("test", quick());
        for ok in [true, false, true] {
            let _ = outcome(&breaker, ok).await;
        }
        assert_eq!(
            breaker.state(),
            State::Closed,
            "fewer calls than the minimum"
        );
        let _ = outcome(&breaker, false).await;
        assert_eq!(breaker.state(), State::Open, "2 of 4 failed");
        assert!(matches!(
            outcome(&breaker, true).await,
            Err(BreakerError::Open(_))
        ));
    }

    #[tokio::test]
    async fn after_the_pause_one_probe_decides() {
        let breaker = Breaker::new("test", quick());
        for _ in 0..4 {
            let _ = outcome(&breaker, false).await;
        }
        assert_eq!(breaker.state(), State::Open);
        tokio::time::sleep(Duration::from_millis(120)).await;
        // The probe fails: open again, and calls fail fast.
        assert!(matches!(
            outcome(&breaker, false).await,
            Err(BreakerError::Failed(_))
        ));
        assert_eq!(breaker.state(), State::Open);
        assert!(matches!(
            outcome(&breaker, true).await,
            Err(BreakerError::Open(_))
        ));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(outcome(&breaker, true).await.is_ok());
        assert_eq!(breaker.state(), State::Closed);
    }

    #[tokio::test]
    async fn a_slow_call_is_a_timeout_and_counts_as_a_failure() {
        let breaker = Breaker::new("test", quick());
        let result: Result<(), BreakerError<&str>> = breaker
            .call(Duration::from_millis(10), async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(BreakerError::Timeout(_))));
    }
}
