//! Warm-up before readiness: everything the first requests would otherwise pay for.
//!
//! The listener is already accepting while warm-up runs, so `/health` responds at
//! once. `/health/ready` and the API routes return 503 until every step has
//! succeeded. A failed step is retried after a pause rather than ending
//! the process, so a database that comes up late only delays readiness. The
//! Redis steps are the exception: without Redis the server still works from L1
//! and the database, so their failure is reported as `degraded` and does not
//! hold readiness back.

mod steps;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use velro_shared::api::{Readiness as ReadinessBody, StepOutcome, WarmupStep};

use crate::app::AppState;
use crate::db;
use crate::error::error_chain;
/// Pause before a failed warm-up is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Shared readiness state, read by `/health/ready` and the readiness gate.
pub struct Readiness {
    ready: AtomicBool,
    // A std mutex: it is held only to copy or replace the report, never across an await.
    report: Mutex<ReadinessBody>,
}

impl Readiness {
    /// Starts not ready, with no steps reported.
    pub fn new() -> Self {
        Self {
            ready: AtomicBool::new(false),
            report: Mutex::new(ReadinessBody {
                ready: false,
                steps: Vec::new(),
                total_ms: None,
                reason: None,
                release: None,
            }),
        }
    }

    /// Whether warm-up has finished and the server takes traffic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// A copy of the current report.
    pub fn report(&self) -> ReadinessBody {
        self.report
            .lock()
            .map(|report| report.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn publish(&self, report: ReadinessBody) {
        let ready = report.ready;
        match self.report.lock() {
            Ok(mut current) => *current = report,
            Err(poisoned) => *poisoned.into_inner() = report,
        }
        self.ready.store(ready, Ordering::Release);
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs warm-up until it succeeds, then marks the server ready.
pub async fn run(state: AppState, process_started: Instant) {
    loop {
        let started = Instant::now();
        let steps = run_steps(&state).await;
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        let succeeded = steps
            .iter()
            .all(|step| matches!(step.outcome, StepOutcome::Ok | StepOutcome::Degraded));
        if !succeeded {
            state.readiness.publish(ReadinessBody {
                ready: false,
                steps,
                total_ms: Some(total_ms),
                reason: None,
                release: None,
            });
            tracing::warn!(
                retry_in_s = RETRY_AFTER.as_secs(),
                "warm-up failed; retrying"
            );
            tokio::time::sleep(RETRY_AFTER).await;
            continue;
        }
        if !state.config.warmup_hold.is_zero() {
            state.readiness.publish(ReadinessBody {
                ready: false,
                steps: steps.clone(),
                total_ms: Some(total_ms),
                reason: None,
                release: None,
            });
            tokio::time::sleep(state.config.warmup_hold).await;
        }
        state.readiness.publish(ReadinessBody {
            ready: true,
            steps,
            total_ms: Some(total_ms),
            reason: None,
            release: None,
        });
        tracing::info!(
            warmup_ms = total_ms,
            cold_start_ms = process_started.elapsed().as_secs_f64() * 1000.0,
            "ready"
        );
        return;
    }
}

async fn run_steps(state: &AppState) -> Vec<WarmupStep> {
    // Migrations come first: every other step reads tables they create.
    let migrations = step("migrations", db::migrate(&state.db)).await;
    if migrations.outcome != StepOutcome::Ok {
        return vec![migrations];
    }
    let mut steps = vec![migrations];
    let (pool, key, hasher, redis) = tokio::join!(
        step("database_pool", steps::open_pool_and_prepare(state)),
        step("jwt_key", steps::check_token_key(state)),
        step("password_hasher", steps::check_password_hasher(state)),
        optional_step(
            "redis",
            state.cache.l2().is_some(),
            steps::ping_redis(state)
        ),
    );
    steps.extend([pool, key, hasher]);
    steps.extend(redis);
    // Subscribed before the hot set loads, so no invalidation published meanwhile is missed.
    steps.extend(
        optional_step(
            "invalidation_subscription",
            state.cache.l2().is_some(),
            steps::subscribe_to_invalidations(state),
        )
        .await,
    );
    let (catalogue, hot_set) = tokio::join!(
        step("model_catalogue", steps::load_model_catalogue(state)),
        step("hot_set", steps::load_hot_set(state)),
    );
    steps.extend([catalogue, hot_set]);
    steps
}

/// Runs a step that only applies when `applies`. A failure is reported as
/// `degraded` and logged as a warning, because the server works without it.
async fn optional_step(
    name: &str,
    applies: bool,
    work: impl Future<Output = anyhow::Result<()>>,
) -> Option<WarmupStep> {
    if !applies {
        return None;
    }
    let started = Instant::now();
    let outcome = work.await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (outcome, error) = match outcome {
        Ok(()) => {
            tracing::info!(step = name, duration_ms, "warm-up step finished");
            (StepOutcome::Ok, None)
        }
        Err(error) => {
            let error = error_chain(error.as_ref());
            tracing::warn!(step = name, duration_ms, %error, "optional warm-up step failed; serving without it");
            (StepOutcome::Degraded, Some(error))
        }
    };
    Some(WarmupStep {
        name: name.to_string(),
        outcome,
        duration_ms: Some(duration_ms),
        error,
    })
}

/// Runs one named step, timing and logging it.
async fn step(name: &str, work: impl Future<Output = anyhow::Result<()>>) -> WarmupStep {
    let started = Instant::now();
    let outcome = work.await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(()) => {
            tracing::info!(step = name, duration_ms, "warm-up step finished");
            WarmupStep {
                name: name.to_string(),
                outcome: StepOutcome::Ok,
                duration_ms: Some(duration_ms),
                error: None,
            }
        }
        Err(error) => {
            let error = error_chain(error.as_ref());
            tracing::error!(step = name, duration_ms, %error, "warm-up step failed");
            WarmupStep {
                name: name.to_string(),
                outcome: StepOutcome::Failed,
                duration_ms: Some(duration_ms),
                error: Some(error),
            }
        }
    }
}
