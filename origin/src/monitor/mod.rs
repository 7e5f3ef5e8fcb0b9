//! Request monitoring: the figures behind `/performance` and `/metrics`, and the
//! slow-request warning.
//!
//! The middleware hands every finished request to [`Monitor::record`]. Requests
//! to the monitoring routes themselves (`/health`, `/metrics`, `/performance`,
//! `/dashboard`) are not recorded. Each route label has its own [`RouteSeries`]
//! behind its own mutex, held only to add one sample, so requests to different
//! routes never wait for each other's figures. Every bucket is allocated at start, so
//! recording a request into the figures allocates nothing.
//!
//! Memory budget: per route label, 30 window buckets of a one-significant-digit
//! histogram with u32 counts (368 counts, about 1.5 KB each) and one since-start
//! histogram with u64 counts (about 3 KB), about 52 KB per label with the
//! bookkeeping. The table has 23 labels (22 method-and-route pairs and
//! `unmatched`), so about 1.2 MB in all, allocated at start whatever the traffic.
//! The unit test `recorder_fits_memory_budget` keeps it under 1.25 MB.

mod memory;
mod prometheus;
mod report;
mod routes;
mod slow;
mod window;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::{Counter, Histogram};
use velro_shared::perf::PerformanceTargets;

use crate::cache::Lookup;
use crate::config::MonitoringSettings;
pub use memory::resident_bytes;
pub use prometheus::Gauges;
use prometheus::PrometheusMetrics;
use report::RoutePeriod;
pub use report::{Figures, MemoryReport, PerformanceReport, TargetsMet};
use routes::{RouteId, RouteTable};
use slow::SlowWarnings;
use window::{latency_histogram, Counts, RouteSeries, Sample, WindowClock};

/// Requests slower than this multiple of the response-time target log a warning.
const SLOW_FACTOR: f64 = 1.5;

/// Returns whether `path` is a monitoring route, which is served during warm-up and not recorded.
pub fn is_monitoring_path(path: &str) -> bool {
    // Exact paths only: anything else under `/health/` is an unknown route,
    // recorded like any other, so traffic cannot hide from the figures there.
    matches!(
        path,
        "/health" | "/health/ready" | "/metrics" | "/performance" | "/dashboard"
    )
}

/// The figures and warning state of one route label.
#[derive(Debug)]
struct RouteState {
    series: RouteSeries,
    slow: SlowWarnings,
}

/// The request recorder of one app; shared through `AppState`.
pub struct Monitor {
    settings: MonitoringSettings,
    /// Process start: uptime and the window clock count from here.
    started: Instant,
    clock: WindowClock,
    routes: RouteTable,
    /// One entry per label of `routes`; empty when recording is off.
    series: Vec<Mutex<RouteState>>,
    slow_threshold: Duration,
    prometheus: PrometheusMetrics,
    startup_rss_bytes: Option<u64>,
    /// Empty histograms with the recorder's bounds, cloned to sum the routes into.
    blank_since_start: Histogram<u64>,
    blank_window: Histogram<u32>,
}

impl Monitor {
    /// Builds the recorder, with every bucket allocated up front, and reads the start-up RSS.
    pub fn new(settings: MonitoringSettings, started: Instant) -> anyhow::Result<Self> {
        let clock = WindowClock::new(settings.window, MonitoringSettings::WINDOW_BUCKETS);
        let routes = RouteTable::new();
        let mut series = Vec::new();
        if settings.enabled {
            for _ in routes.ids() {
                series.push(Mutex::new(RouteState {
                    series: RouteSeries::new(&clock)?,
                    slow: SlowWarnings::default(),
                }));
            }
        }
        let slow_threshold =
            Duration::from_secs_f64(settings.targets.response_time_ms * SLOW_FACTOR / 1000.0);
        Ok(Self {
            prometheus: PrometheusMetrics::new(&routes)?,
            settings,
            started,
            clock,
            routes,
            series,
            slow_threshold,
            startup_rss_bytes: resident_bytes(),
            blank_since_start: latency_histogram()?,
            blank_window: latency_histogram()?,
        })
    }

    /// Returns whether requests are recorded (`PERF_MONITORING_ENABLED`).
    pub fn is_enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Returns the targets the figures are compared with.
    pub fn targets(&self) -> &PerformanceTargets {
        &self.settings.targets
    }

    /// Records one finished request, and logs a warning when it was slow. Does
    /// nothing for the monitoring routes or when recording is off.
    pub fn record(
        &self,
        method: &str,
        path: &str,
        status: u16,
        latency: Duration,
        lookup: Option<Lookup>,
        request_id: &str,
    ) {
        if !self.settings.enabled || is_monitoring_path(path) {
            return;
        }
        let route = self.routes.find(method, path);
        let sample = Sample {
            latency,
            status,
            cache_hit: lookup.map(|lookup| matches!(lookup, Lookup::L1Hit | Lookup::L2Hit)),
            within_target: latency.as_secs_f64() * 1000.0 <= self.settings.targets.response_time_ms,
        };
        let now = self.started.elapsed();
        let slow = latency > self.slow_threshold;

        let suppressed = {
            let mut state = self.lock(route);
            state.series.record(&self.clock, now, &sample);
            if slow {
                state.slow.note(now)
            } else {
                None
            }
        };
        if let Some(suppressed) = suppressed {
            tracing::warn!(
                route = self.routes.label(route),
                duration_ms = latency.as_secs_f64() * 1000.0,
                threshold_ms = self.slow_threshold.as_secs_f64() * 1000.0,
                request_id,
                suppressed,
                "request slower than 1.5 times the response-time target"
            );
        }
        self.prometheus
            .record(&self.routes, route, status, latency, lookup);
    }

    fn lock(&self, route: RouteId) -> MutexGuard<'_, RouteState> {
        self.series[route.0]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Computes the `/performance` body.
    pub fn performance(&self) -> PerformanceReport {
        let now = self.started.elapsed();
        let targets = &self.settings.targets;
        let mut since_start = self.since_start_figures();
        let mut window = self.window_figures(now);
        if !self.settings.enabled {
            // Nothing was measured, so no target is known to be met; a deploy
            // watcher that reads only `targets_met` must not take this for a pass.
            since_start.targets_met = TargetsMet::NONE;
            window.targets_met = TargetsMet::NONE;
        }
        PerformanceReport {
            monitoring_enabled: self.settings.enabled,
            // Not rounded: a server asked right after start would otherwise report zero.
            uptime_hours: now.as_secs_f64() / 3600.0,
            targets: *targets,
            since_start,
            window,
            memory: MemoryReport::new(resident_bytes(), self.startup_rss_bytes),
        }
    }

    fn since_start_figures(&self) -> Figures {
        // Copied out under each route's lock, so a report never holds two locks.
        let mut per_route = Vec::with_capacity(self.series.len());
        for id in self.routes.ids().take(self.series.len()) {
            let state = self.lock(id);
            let (counts, latency) = state.series.since_start();
            per_route.push((id, counts, latency.clone()));
        }
        self.figures(None, &per_route, &self.blank_since_start)
    }

    fn window_figures(&self, now: Duration) -> Figures {
        let mut per_route = Vec::with_capacity(self.series.len());
        for id in self.routes.ids().take(self.series.len()) {
            let mut counts = Counts::default();
            let mut latency = self.blank_window.clone();
            self.lock(id)
                .series
                .add_window(&self.clock, now, &mut counts, &mut latency);
            per_route.push((id, counts, latency));
        }
        let window_seconds = Some(self.settings.window.as_secs());
        self.figures(window_seconds, &per_route, &self.blank_window)
    }

    /// Sums the routes' counts and latencies of one period into its figures.
    fn figures<T: Counter>(
        &self,
        window_seconds: Option<u64>,
        per_route: &[(RouteId, Counts, Histogram<T>)],
        blank: &Histogram<T>,
    ) -> Figures {
        let mut total = Counts::default();
        let mut latency = blank.clone();
        for (_, counts, route_latency) in per_route {
            total.add(counts);
            // Every histogram comes from `latency_histogram`, so the ranges match and adding cannot fail.
            let _ = latency.add(route_latency);
        }
        let routes: Vec<RoutePeriod<'_, T>> = per_route
            .iter()
            .map(|(id, counts, latency)| RoutePeriod {
                label: self.routes.label(*id),
                counts: *counts,
                latency,
            })
            .collect();
        Figures::new(
            window_seconds,
            &total,
            &latency,
            &routes,
            &self.settings.targets,
        )
    }

    /// Renders `/metrics`, with the gauges read at scrape time.
    pub fn render_metrics(&self, gauges: &Gauges<'_>) -> String {
        self.prometheus.render(gauges)
    }

    /// Moves recorded latencies into the Prometheus histogram buckets; see [`PrometheusMetrics::run_upkeep`].
    pub fn run_upkeep(&self) {
        self.prometheus.run_upkeep();
    }

    /// Approximate bytes the window and since-start figures keep.
    #[cfg(test)]
    fn approximate_bytes(&self) -> usize {
        self.routes
            .ids()
            .take(self.series.len())
            .map(|id| self.lock(id).series.approximate_bytes())
            .sum()
    }
}

#[cfg(test)]
mod tests;
