//! Building and running the server: state, listener, warm-up, workers and shutdown.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::auth::{load_token_key, PasswordHasher, TokenIssuer};
use crate::breaker::CircuitBreaker;
use crate::cache::{Cache, L2Store, Subscription};
use crate::config::Config;
use crate::db::{self, Db};
use crate::generation::{spawn_workers, SvgSketchProvider};
use crate::monitor::Monitor;
use crate::probes;
use crate::warmup::{self, Readiness};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    /// Opens when the database keeps failing; writes then get 503 at once and reads fall back to stale entries.
    pub db_breaker: CircuitBreaker,
    pub cache: Cache,
    /// The invalidation subscription, once warm-up has started it; `None` without Redis.
    pub subscription: Arc<std::sync::OnceLock<Arc<Subscription>>>,
    pub tokens: TokenIssuer,
    pub passwords: PasswordHasher,
    pub readiness: Arc<Readiness>,
    /// Wakes the generation workers when a generation is queued.
    pub generation_queued: Arc<Notify>,
    /// Records every request for `/performance` and `/metrics`.
    pub monitor: Arc<Monitor>,
}

/// Current time in Unix seconds, for token issue and expiry.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

/// Generation workers per process. Generations mostly wait on the provider, so
/// a few suffice; the real limit on a shared database is the claim query.
const GENERATION_WORKERS: usize = 2;
/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// A bound server, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    started: Instant,
}

impl Application {
    /// Builds the state and binds the listener; nothing is served yet.
    pub async fn build(config: Config, started: Instant) -> anyhow::Result<Self> {
        let token_key = load_token_key(&config)?;
        let db_breaker = CircuitBreaker::new("database", config.db_breaker);
        let db = db::connect(&config.database_url, &config.pool, Some(db_breaker.clone())).await?;
        let l2 = match &config.redis {
            Some(redis) => Some(L2Store::new(
                redis,
                CircuitBreaker::new("redis", config.redis_breaker),
            )?),
            None => None,
        };
        let cores = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        let state = AppState {
            cache: Cache::new(config.l1_cache_max_bytes, l2),
            db_breaker,
            subscription: Arc::default(),
            tokens: TokenIssuer::new(token_key),
            passwords: PasswordHasher::new(cores),
            readiness: Arc::new(Readiness::new()),
            generation_queued: Arc::new(Notify::new()),
            monitor: Arc::new(Monitor::new(config.monitoring, started)?),
            db,
            config: Arc::new(config),
        };
        let address = SocketAddr::new(state.config.host, state.config.port);
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!(
                "binding {address} failed; is another server using PORT={}?",
                address.port()
            )
        })?;
        Ok(Self {
            listener,
            state,
            started,
        })
    }

    /// The bound address, including the port chosen when `PORT=0` requested any free one.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes, then drains requests, stops the workers and closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            started,
        } = self;
        tracing::info!(
            address = %listener.local_addr()?,
            region = state.config.region.as_str(),
            environment = state.config.environment.as_str(),
            database = if state.config.is_sqlite() { "sqlite" } else { "postgres" },
            "listening"
        );

        let probes = probes::spawn(&state);
        let metrics_upkeep = spawn_metrics_upkeep(Arc::clone(&state.monitor));

        // The workers need the migrated schema, so they start once warm-up has finished.
        let background = tokio::spawn({
            let state = state.clone();
            async move {
                warmup::run(state.clone(), started).await;
                let provider = Arc::new(SvgSketchProvider::new(state.config.generation_step));
                spawn_workers(
                    GENERATION_WORKERS,
                    state.db.clone(),
                    state.cache.clone(),
                    provider,
                    Arc::clone(&state.generation_queued),
                )
            }
        });

        let (drain_started, drain_signal) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining in-flight requests");
            let _ = drain_started.send(());
        };
        let router = crate::http::router(state.clone());
        let server = axum::serve(listener, router).with_graceful_shutdown(shutdown);
        let served = async {
            let serving = tokio::spawn(server.into_future());
            let _ = drain_signal.await;
            // Drain with a bound, so one stuck client cannot hold the process open.
            match tokio::time::timeout(DRAIN_TIMEOUT, serving).await {
                Ok(joined) => joined
                    .context("server task failed")?
                    .context("server failed"),
                Err(_) => {
                    tracing::warn!(
                        timeout_s = DRAIN_TIMEOUT.as_secs(),
                        "requests still in flight after the drain timeout; closing"
                    );
                    Ok(())
                }
            }
        };
        let outcome = served.await;

        if background.is_finished() {
            if let Ok(workers) = background.await {
                workers.shutdown().await;
            }
        } else {
            background.abort();
        }
        for probe in probes {
            probe.abort();
        }
        metrics_upkeep.abort();
        // sqlx's close waits for every connection, and one lost in a database outage
        // can keep it waiting forever, so the process would never exit.
        if tokio::time::timeout(POOL_CLOSE_TIMEOUT, state.db.close())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_s = POOL_CLOSE_TIMEOUT.as_secs(),
                "closing the database pool timed out; exiting anyway"
            );
        }
        tracing::info!(uptime_s = started.elapsed().as_secs_f64(), "stopped");
        outcome
    }
}

/// How often recorded latencies move into the Prometheus histogram buckets.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the Prometheus recorder's upkeep until aborted, so latencies do not pile
/// up in memory between scrapes of `/metrics`.
fn spawn_metrics_upkeep(monitor: Arc<Monitor>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
        loop {
            interval.tick().await;
            monitor.run_upkeep();
        }
    })
}

/// Bound on closing the pool at shutdown.
const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves on Ctrl-C or SIGTERM, the signal Railway and Docker send before stopping a container.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "listening for Ctrl-C failed");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "listening for SIGTERM failed");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
