//! The background worker that moves generations through their life cycle.
//!
//! It claims the oldest queued generation, marks it `running`, calls the provider
//! for the artefact and stores it as `completed` (or `failed`). Every status
//! change invalidates the cached detail and lists of that generation's owner.
//! Workers wake when a generation is created and also poll, so generations
//! queued by another origin instance on a shared database are picked up too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use velro_shared::policy;

use super::GenerationProvider;
use crate::cache::Cache;
use crate::db::{self, generations, Db};
use crate::error::error_chain;

/// How often an idle worker looks for work it was not woken for.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A generation `running` for longer than this was abandoned by a stopped process.
const STALE_RUNNING_AFTER: Duration = Duration::from_secs(300);
/// Pause after a database error, so an outage does not become a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_secs(2);
/// How long shutdown waits for the workers before it aborts them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often worker 0 looks for generations left `running` past [`STALE_RUNNING_AFTER`].
const REQUEUE_INTERVAL: Duration = Duration::from_secs(60);

/// Running workers; dropping it does not stop them, [`WorkerHandle::shutdown`] does.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl WorkerHandle {
    /// Asks the workers to stop after their current generation, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let joined = tokio::time::timeout(STOP_TIMEOUT, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            // A worker stuck in a database call, say waiting out DB_POOL_TIMEOUT in an
            // outage, would hold the process open. Its generation stays `running`
            // and is requeued as abandoned later.
            tracing::warn!(
                timeout_s = STOP_TIMEOUT.as_secs(),
                "generation workers did not stop in time; aborting them"
            );
            self.tasks.shutdown().await;
        }
    }
}

/// Starts `count` workers that share the queue.
pub fn spawn_workers(
    count: usize,
    db: Db,
    cache: Cache,
    provider: Arc<dyn GenerationProvider>,
    wake: Arc<Notify>,
) -> WorkerHandle {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let worker = Worker {
            index,
            db: db.clone(),
            cache: cache.clone(),
            provider: Arc::clone(&provider),
            wake: Arc::clone(&wake),
            stopped: stopped.clone(),
        };
        tasks.spawn(worker.run());
    }
    WorkerHandle { stop, tasks }
}

struct Worker {
    index: usize,
    db: Db,
    cache: Cache,
    provider: Arc<dyn GenerationProvider>,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        tracing::debug!(worker = self.index, "generation worker started");
        let mut last_requeue = tokio::time::Instant::now();
        if self.index == 0 {
            self.requeue_abandoned().await;
        }
        while !*self.stopped.borrow() {
            // A generation whose result could not be stored, say because the database
            // dropped out mid-run, stays `running`; worker 0 requeues such rows now and then.
            if self.index == 0 && last_requeue.elapsed() >= REQUEUE_INTERVAL {
                last_requeue = tokio::time::Instant::now();
                self.requeue_abandoned().await;
            }
            let pause = match self.process_next().await {
                Ok(true) => continue,
                Ok(false) => POLL_INTERVAL,
                Err(error) => {
                    tracing::warn!(worker = self.index, error = %error_chain(&error), "generation worker hit a database error; retrying");
                    ERROR_BACKOFF
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = self.stopped.changed() => {}
            }
        }
        tracing::debug!(worker = self.index, "generation worker stopped");
    }

    /// Runs one queued generation to its end; `false` when the queue was empty.
    async fn process_next(&self) -> Result<bool, sqlx::Error> {
        let Some(generation) = generations::claim_next_queued(&self.db, db::now_ms()).await? else {
            return Ok(false);
        };
        self.cache
            .invalidate(&policy::generation_changed(
                &generation.user_id,
                &generation.id,
            ))
            .await;

        let outcome = if self.provider.supports(&generation.model) {
            let mut stopped = self.stopped.clone();
            tokio::select! {
                outcome = self.provider.generate(&generation.model, &generation.prompt) => outcome,
                // A render can take far longer than a shutdown may wait, so the
                // generation goes back to the queue for the next process instead.
                () = async { drop(stopped.wait_for(|stop| *stop).await) } => {
                    generations::requeue(&self.db, &generation.id, db::now_ms()).await?;
                    self.cache.invalidate(&policy::generation_changed(&generation.user_id, &generation.id)).await;
                    tracing::info!(generation_id = %generation.id, "shutdown interrupted a generation; requeued it");
                    return Ok(false);
                }
            }
        } else {
            Err(format!("no provider serves model {}", generation.model))
        };
        // The result exists only in memory, so a lost connection is retried
        // rather than leaving the row `running` until another process requeues it.
        let stored = loop {
            match self.store_outcome(&generation.id, &outcome).await {
                Ok(stored) => break stored,
                Err(error) if db::is_connection_error(&error) && !*self.stopped.borrow() => {
                    tracing::warn!(
                        generation_id = %generation.id,
                        error = %error_chain(&error),
                        "storing a generation's result failed; retrying"
                    );
                    let mut stopped = self.stopped.clone();
                    tokio::select! {
                        () = tokio::time::sleep(ERROR_BACKOFF) => {}
                        _ = stopped.changed() => {}
                    }
                }
                Err(error) => return Err(error),
            }
        };
        self.cache
            .invalidate(&policy::generation_changed(
                &generation.user_id,
                &generation.id,
            ))
            .await;
        match (&outcome, stored) {
            (_, false) => {
                tracing::debug!(generation_id = %generation.id, "generation deleted while running; result dropped")
            }
            (Ok(_), true) => {
                tracing::debug!(generation_id = %generation.id, "generation completed")
            }
            (Err(reason), true) => {
                tracing::warn!(generation_id = %generation.id, %reason, "generation failed")
            }
        }
        Ok(true)
    }

    /// Stores a finished generation's artefact or failure reason; `false` when the row was deleted meanwhile.
    async fn store_outcome(
        &self,
        generation_id: &str,
        outcome: &Result<crate::generation::Artefact, String>,
    ) -> Result<bool, sqlx::Error> {
        match outcome {
            Ok(artefact) => {
                generations::complete(
                    &self.db,
                    generation_id,
                    &artefact.media_type,
                    &artefact.content,
                    db::now_ms(),
                )
                .await
            }
            Err(reason) => generations::fail(&self.db, generation_id, reason, db::now_ms()).await,
        }
    }

    async fn requeue_abandoned(&self) {
        let now = db::now_ms();
        let stale_before = now - i64::try_from(STALE_RUNNING_AFTER.as_millis()).unwrap_or(i64::MAX);
        match generations::requeue_stale(&self.db, stale_before, now).await {
            Ok(requeued) => {
                for (generation_id, user_id) in &requeued {
                    self.cache
                        .invalidate(&policy::generation_changed(user_id, generation_id))
                        .await;
                }
                if !requeued.is_empty() {
                    tracing::info!(
                        count = requeued.len(),
                        "requeued generations abandoned while running"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "requeueing abandoned generations failed")
            }
        }
    }
}
