//! `/metrics`: the `metrics` crate's Prometheus recorder, owned by the app.
//!
//! The recorder is not installed as the process-wide `metrics` recorder. Each
//! [`PrometheusMetrics`] owns one, registers its handles through
//! [`metrics::with_local_recorder`], and renders its own text, so two apps in one
//! process (as in unit tests) keep separate figures.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use metrics::{Counter, Histogram, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use velro_shared::api::WarmupStep;

use super::routes::{RouteId, RouteTable};
use crate::breaker::BreakerState;
use crate::cache::Lookup;

const REQUESTS: &str = "velro_http_requests_total";
const REQUEST_DURATION: &str = "velro_http_request_duration_seconds";
const CACHE_LOOKUPS: &str = "velro_cache_lookups_total";
const POOL_CONNECTIONS: &str = "velro_db_pool_connections";
const POOL_IDLE: &str = "velro_db_pool_idle_connections";
const POOL_MAX: &str = "velro_db_pool_max_connections";
const BREAKER_STATE: &str = "velro_circuit_breaker_state";
const WARMUP_STEP_DURATION: &str = "velro_warmup_step_duration_seconds";
const RESIDENT_MEMORY: &str = "velro_process_resident_memory_bytes";

/// Upper bounds of the latency histogram's buckets, in seconds: fine below 10 ms,
/// where cached reads fall, with the 75 ms target as a bound of its own.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `level` label of [`CACHE_LOOKUPS`], by lookup outcome.
const CACHE_LEVELS: [(Lookup, &str); 4] = [
    (Lookup::L1Hit, "l1"),
    (Lookup::L2Hit, "l2"),
    (Lookup::Miss, "miss"),
    (Lookup::StaleOnError, "stale"),
];

/// Values read at scrape time rather than recorded as they change.
pub struct Gauges<'a> {
    /// Open connections of the database pool.
    pub pool_connections: u32,
    pub pool_idle: usize,
    pub pool_max: u32,
    /// Each dependency's breaker, by the name `/health` uses.
    pub breakers: &'a [(&'static str, BreakerState)],
    /// The latest warm-up attempt's steps.
    pub warmup_steps: &'a [WarmupStep],
    pub resident_bytes: Option<u64>,
}

/// The Prometheus recorder and the handles the request path uses.
pub struct PrometheusMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Latency histograms by [`RouteId`], registered at start.
    latency: Vec<Histogram>,
    /// Request counters by route and status, registered on a route's first
    /// response with that status; later requests take only the read lock.
    requests: RwLock<HashMap<(usize, u16), Counter>>,
    cache_lookups: [Counter; 4],
}

impl PrometheusMetrics {
    /// Builds the recorder and registers the per-route handles.
    pub fn new(routes: &RouteTable) -> anyhow::Result<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(REQUEST_DURATION.to_string()),
                &LATENCY_BUCKETS,
            )?
            .build_recorder();
        let handle = recorder.handle();
        let (latency, cache_lookups) = metrics::with_local_recorder(&recorder, || {
            describe();
            let latency = routes
                .ids()
                .map(|id| metrics::histogram!(REQUEST_DURATION, "route" => routes.label(id).to_string()))
                .collect();
            let cache_lookups =
                CACHE_LEVELS.map(|(_, level)| metrics::counter!(CACHE_LOOKUPS, "level" => level));
            (latency, cache_lookups)
        });
        // Publishes the descriptions, which the recorder buffers until its first upkeep.
        handle.run_upkeep();
        Ok(Self {
            recorder,
            handle,
            latency,
            requests: RwLock::default(),
            cache_lookups,
        })
    }

    /// Records one request.
    pub fn record(
        &self,
        routes: &RouteTable,
        route: RouteId,
        status: u16,
        latency: Duration,
        lookup: Option<Lookup>,
    ) {
        self.latency[route.0].record(latency.as_secs_f64());
        self.request_counter(routes, route, status).increment(1);
        if let Some(lookup) = lookup {
            let level = CACHE_LEVELS.iter().position(|(known, _)| *known == lookup);
            if let Some(level) = level {
                self.cache_lookups[level].increment(1);
            }
        }
    }

    fn request_counter(&self, routes: &RouteTable, route: RouteId, status: u16) -> Counter {
        let key = (route.0, status);
        let known = self
            .requests
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .cloned();
        if let Some(counter) = known {
            return counter;
        }
        let counter = metrics::with_local_recorder(
            &self.recorder,
            || metrics::counter!(REQUESTS, "route" => routes.label(route).to_string(), "status" => status.to_string()),
        );
        self.requests
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key)
            .or_insert(counter)
            .clone()
    }

    /// Sets the gauges to `gauges` and renders every metric in the Prometheus text format.
    pub fn render(&self, gauges: &Gauges<'_>) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::gauge!(POOL_CONNECTIONS).set(f64::from(gauges.pool_connections));
            metrics::gauge!(POOL_IDLE).set(gauges.pool_idle as f64);
            metrics::gauge!(POOL_MAX).set(f64::from(gauges.pool_max));
            for (dependency, state) in gauges.breakers {
                let value = match state {
                    BreakerState::Closed => 0.0,
                    BreakerState::HalfOpen => 1.0,
                    BreakerState::Open => 2.0,
                };
                metrics::gauge!(BREAKER_STATE, "dependency" => *dependency).set(value);
            }
            for step in gauges.warmup_steps {
                if let Some(duration_ms) = step.duration_ms {
                    metrics::gauge!(WARMUP_STEP_DURATION, "step" => step.name.clone())
                        .set(duration_ms / 1000.0);
                }
            }
            if let Some(bytes) = gauges.resident_bytes {
                metrics::gauge!(RESIDENT_MEMORY).set(bytes as f64);
            }
        });
        self.handle.render()
    }

    /// Moves recorded latencies into the histogram buckets. Without it, latencies
    /// recorded between two scrapes of `/metrics` would pile up in memory.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        Unit::Count,
        "Requests served, by route and status."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from receiving a request to sending its response headers, by route."
    );
    metrics::describe_counter!(CACHE_LOOKUPS, Unit::Count, "Cacheable reads, by where the response came from: l1, l2, miss (loaded from the database) or stale (served stale because the database failed).");
    metrics::describe_gauge!(
        POOL_CONNECTIONS,
        Unit::Count,
        "Open connections of the database pool, idle or in use."
    );
    metrics::describe_gauge!(
        POOL_IDLE,
        Unit::Count,
        "Idle connections of the database pool."
    );
    metrics::describe_gauge!(
        POOL_MAX,
        Unit::Count,
        "Most connections the database pool opens (DB_POOL_SIZE + DB_MAX_OVERFLOW)."
    );
    metrics::describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state by dependency: 0 closed, 1 half-open, 2 open."
    );
    metrics::describe_gauge!(
        WARMUP_STEP_DURATION,
        Unit::Seconds,
        "Duration of each step of the latest warm-up attempt."
    );
    metrics::describe_gauge!(
        RESIDENT_MEMORY,
        Unit::Bytes,
        "Resident set size of the process (VmRSS)."
    );
}
