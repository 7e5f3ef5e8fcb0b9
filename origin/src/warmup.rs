//! Warm-up before readiness: everything the first requests would otherwise pay for.
//!
//! The listener is already accepting while warm-up runs, so `/health` responds at
//! once. `/health/ready` and the API routes return 503 until every step has
//! succeeded. A failed step is retried after a pause rather than ending
//! the process, so a database that comes up late only delays readiness.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use velro_shared::api::{Readiness as ReadinessBody, StepOutcome, WarmupStep};
use velro_shared::token;

use crate::app::AppState;
use crate::db::{self, generations, projects, users};
use crate::error::error_chain;
use crate::http::models;
use crate::http::reads::ReadRequest;

/// Concurrent batches of hot queries run at warm-up.
const PREPARE_BATCHES: u32 = 4;
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
        let succeeded = steps.iter().all(|step| step.outcome == StepOutcome::Ok);
        if !succeeded {
            state.readiness.publish(ReadinessBody {
                ready: false,
                steps,
                total_ms: Some(total_ms),
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
            });
            tokio::time::sleep(state.config.warmup_hold).await;
        }
        state.readiness.publish(ReadinessBody {
            ready: true,
            steps,
            total_ms: Some(total_ms),
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
    let (pool, key, hasher, catalogue) = tokio::join!(
        step("database_pool", open_pool_and_prepare(state)),
        step("jwt_key", check_token_key(state)),
        step("password_hasher", async {
            state
                .passwords
                .dummy_hash()
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        }),
        step("model_catalogue", async {
            models::serve_catalogue(state, &ReadRequest::get("/models"))
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        }),
    );
    vec![migrations, pool, key, hasher, catalogue]
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

/// Opens the pool to `DB_POOL_SIZE` connections, then runs each hot query in a few
/// concurrent batches, so statements land in sqlx's per-connection statement
/// caches before the first request needs them.
async fn open_pool_and_prepare(state: &AppState) -> anyhow::Result<()> {
    let connections = state.config.pool.size;
    // Acquired together, so the pool opens all of them at once and warm-up pays
    // for about one connect round trip rather than one per connection.
    let held = futures::future::join_all((0..connections).map(|_| state.db.acquire())).await;
    for connection in held {
        connection?;
    }

    // NOTE: a batch runs on whichever connection is free, so the statements are
    // prepared on a few connections and the rest prepare theirs on first use.
    // One batch per connection would make the pool open extra connections instead.
    let batches = (0..connections.min(PREPARE_BATCHES)).map(|_| prepare_hot_queries(state));
    for outcome in futures::future::join_all(batches).await {
        outcome?;
    }
    Ok(())
}

async fn prepare_hot_queries(state: &AppState) -> anyhow::Result<()> {
    // An id no row has: the queries run and prepare, and return nothing.
    let probe = "00000000-0000-0000-0000-000000000000";
    sqlx::query("SELECT 1").execute(&state.db).await?;
    users::find_by_id(&state.db, probe).await?;
    users::find_by_email(&state.db, probe).await?;
    generations::find(&state.db, probe, probe).await?;
    generations::list(
        &state.db,
        probe,
        &generations::ListQuery {
            limit: 1,
            ..Default::default()
        },
    )
    .await?;
    projects::list(&state.db, probe).await?;
    Ok(())
}

/// Signs and verifies a probe token, so a broken key fails here and not on the first login.
async fn check_token_key(state: &AppState) -> anyhow::Result<()> {
    let now = crate::app::unix_now();
    let probe = state.tokens.access_token("warm-up", now);
    let claims = token::verify(state.tokens.key(), &probe, now)
        .map_err(|error| anyhow::anyhow!("the JWT key cannot verify its own token: {error}"))?;
    anyhow::ensure!(
        claims.sub == "warm-up",
        "the JWT key returned different claims"
    );
    Ok(())
}
