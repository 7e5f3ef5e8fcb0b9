//! Circuit breakers around the database and Redis.
//!
//! A breaker is closed while its dependency works. `failures` failures within
//! [`BreakerSettings::FAILURE_WINDOW`], successes in between or not, open it, and then callers skip the
//! dependency at once instead of each waiting for its own timeout. After
//! `reset_after`, a background probe moves it to half-open and tries the
//! dependency once: success closes the breaker, failure opens it for another
//! `reset_after`. Requests never act as the trial, so a half-open breaker
//! rejects them like an open one.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::BreakerSettings;

/// State of a breaker, as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The name `/health` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    first_failure: Instant,
    last_failure: Option<Instant>,
    opened_at: Instant,
}

/// The breaker of one dependency, cheap to clone.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    name: &'static str,
    settings: BreakerSettings,
    // A std mutex: held for a few field updates, never across an await.
    inner: Arc<Mutex<Inner>>,
}

impl CircuitBreaker {
    /// A closed breaker for the dependency called `name` in logs.
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        let now = Instant::now();
        Self {
            name,
            settings,
            inner: Arc::new(Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                first_failure: now,
                last_failure: None,
                opened_at: now,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// Whether a request may use the dependency now: only while the breaker is closed.
    pub fn allows(&self) -> bool {
        self.state() == BreakerState::Closed
    }

    /// Whether a failure was recorded within the last `period`.
    pub fn failed_within(&self, period: Duration) -> bool {
        self.lock()
            .last_failure
            .is_some_and(|failed| failed.elapsed() < period)
    }

    /// Records a call that worked. It closes an open or half-open breaker. While
    /// closed, successes do not clear earlier failures: a dependency that fails
    /// every other call still reaches the threshold within the window.
    pub fn record_success(&self) {
        let mut inner = self.lock();
        if inner.state != BreakerState::Closed {
            inner.state = BreakerState::Closed;
            inner.failures = 0;
            tracing::info!(dependency = self.name, "circuit breaker closed");
        }
    }

    /// Records a failed call, which opens the breaker at the threshold or again after a failed probe.
    pub fn record_failure(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.last_failure = Some(now);
        match inner.state {
            BreakerState::Closed => {
                if inner.failures == 0
                    || now.duration_since(inner.first_failure) > BreakerSettings::FAILURE_WINDOW
                {
                    inner.failures = 0;
                    inner.first_failure = now;
                }
                inner.failures += 1;
                if inner.failures >= self.settings.failures {
                    inner.state = BreakerState::Open;
                    inner.opened_at = now;
                    tracing::warn!(
                        dependency = self.name,
                        failures = inner.failures,
                        reset_after_ms = self.settings.reset_after.as_millis() as u64,
                        "circuit breaker opened"
                    );
                }
            }
            BreakerState::HalfOpen => {
                inner.state = BreakerState::Open;
                inner.opened_at = now;
                // Debug, not warn: the probe fails once per reset period for the whole outage.
                tracing::debug!(
                    dependency = self.name,
                    "probe failed; circuit breaker stays open"
                );
            }
            BreakerState::Open => {}
        }
    }

    /// Moves an open breaker whose reset time has passed to half-open, and
    /// returns whether it did, which makes the caller the one probe.
    fn start_probe(&self) -> bool {
        let mut inner = self.lock();
        let due = inner.state == BreakerState::Open
            && inner.opened_at.elapsed() >= self.settings.reset_after;
        if due {
            inner.state = BreakerState::HalfOpen;
        }
        due
    }

    /// Runs the probe loop until the process stops: whenever the breaker has
    /// been open for `reset_after`, it calls `probe` once, bounded by `timeout`.
    pub fn spawn_probe<F, Fut>(&self, timeout: Duration, probe: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        let breaker = self.clone();
        // Checking a few times per reset period keeps recovery close to `reset_after`.
        let tick = (self.settings.reset_after / 4)
            .clamp(Duration::from_millis(10), Duration::from_millis(250));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                if !breaker.start_probe() {
                    continue;
                }
                match tokio::time::timeout(timeout, probe()).await {
                    Ok(Ok(())) => breaker.record_success(),
                    Ok(Err(error)) => {
                        tracing::debug!(
                            dependency = breaker.name,
                            error = format!("{error:#}"),
                            "probe failed"
                        );
                        breaker.record_failure();
                    }
                    Err(_) => {
                        tracing::debug!(
                            dependency = breaker.name,
                            timeout_ms = timeout.as_millis() as u64,
                            "probe timed out"
                        );
                        breaker.record_failure();
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32, reset_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerSettings {
                failures,
                reset_after: Duration::from_millis(reset_ms),
            },
        )
    }

    #[test]
    fn opens_at_threshold() {
        let breaker = breaker(3, 1000);
        breaker.record_failure();
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allows());
    }

    #[test]
    fn successes_do_not_hide_failures() {
        let breaker = breaker(2, 1000);
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn closing_clears_failures() {
        let breaker = breaker(2, 0);
        breaker.record_failure();
        breaker.record_failure();
        assert!(breaker.start_probe());
        breaker.record_success();
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn probe_waits_for_reset() {
        let breaker = breaker(1, 60_000);
        breaker.record_failure();
        assert!(!breaker.start_probe());
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn failed_probe_reopens() {
        let breaker = breaker(1, 0);
        breaker.record_failure();
        assert!(breaker.start_probe());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allows());
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn probe_loop_closes_after_success() {
        let breaker = breaker(1, 20);
        breaker.record_failure();
        let probe = breaker.spawn_probe(Duration::from_secs(1), || async { Ok(()) });
        let deadline = Instant::now() + Duration::from_secs(5);
        while breaker.state() != BreakerState::Closed && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        probe.abort();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
