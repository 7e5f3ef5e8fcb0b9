//! The `/performance` body: figures computed from the recorded counters and histograms.

use hdrhistogram::{Counter, Histogram};
use serde::Serialize;
use velro_shared::perf::PerformanceTargets;

use super::window::Counts;

/// The body of `GET /performance`.
#[derive(Debug, Clone, Serialize)]
pub struct PerformanceReport {
    /// `false` when `PERF_MONITORING_ENABLED=false`; every count is then zero.
    pub monitoring_enabled: bool,
    pub uptime_hours: f64,
    pub targets: PerformanceTargets,
    pub since_start: Figures,
    /// The sliding window of `PERF_WINDOW_SECS`.
    pub window: Figures,
    pub memory: MemoryReport,
}

/// Resident memory now and at start-up, in bytes; `None` where the OS does not report it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemoryReport {
    pub rss_bytes: Option<u64>,
    pub startup_rss_bytes: Option<u64>,
    /// `rss_bytes - startup_rss_bytes`, negative when the process shrank.
    pub growth_bytes: Option<i64>,
}

impl MemoryReport {
    /// Combines the two readings.
    pub fn new(rss_bytes: Option<u64>, startup_rss_bytes: Option<u64>) -> Self {
        let growth_bytes = rss_bytes.zip(startup_rss_bytes).map(|(now, startup)| {
            i64::try_from(now).unwrap_or(i64::MAX) - i64::try_from(startup).unwrap_or(i64::MAX)
        });
        Self {
            rss_bytes,
            startup_rss_bytes,
            growth_bytes,
        }
    }
}

/// Figures of one period, since start or over the window.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Length of the window; `None` for the figures since start.
    pub window_seconds: Option<u64>,
    pub total_requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    /// Responses with status 502, 503 or 504.
    pub unavailable_responses: u64,
    /// Sum of all response times, so that a reader comparing two reports can
    /// compute the exact mean latency between them.
    pub total_response_ms: f64,
    /// Exact mean latency; 0 when there were no requests.
    pub avg_response_ms: f64,
    /// Share of responses sent within the response-time target; 100 when there were none.
    pub performance_rate_percent: f64,
    /// Share of cacheable reads served from L1 or L2; `None` when there were none.
    pub cache_hit_rate_percent: Option<f64>,
    /// Share of responses with a 5xx status.
    pub error_rate_percent: f64,
    /// Share of responses with a status other than 502, 503 or 504; 100 when there were none.
    pub availability_percent: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub targets_met: TargetsMet,
    /// Routes with at least one request, most requested first.
    pub routes: Vec<RouteFigures>,
}

/// The targets the figures meet.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TargetsMet {
    pub performance: bool,
    /// `true` when there were no cacheable reads, as no read missed the cache.
    pub cache_hit_rate: bool,
    pub error_rate: bool,
}

impl TargetsMet {
    /// No target met: the value of a report when monitoring is off.
    pub const NONE: Self = Self {
        performance: false,
        cache_hit_rate: false,
        error_rate: false,
    };
}

/// Figures of one route label.
#[derive(Debug, Clone, Serialize)]
pub struct RouteFigures {
    /// `METHOD template`, such as `GET /users/profile`, or `unmatched`.
    pub route: String,
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub cache_hit_rate_percent: Option<f64>,
}

/// The counters and latencies of one route label over one period.
pub struct RoutePeriod<'a, T: Counter> {
    pub label: &'a str,
    pub counts: Counts,
    pub latency: &'a Histogram<T>,
}

impl Figures {
    /// Computes the figures of one period from its total and its routes.
    pub fn new<T: Counter>(
        window_seconds: Option<u64>,
        total: &Counts,
        latency: &Histogram<T>,
        routes: &[RoutePeriod<'_, T>],
        targets: &PerformanceTargets,
    ) -> Self {
        let performance_rate_percent = percent_or(total.within_target, total.requests, 100.0);
        let cache_hit_rate_percent = percent(total.cache_hits, total.cache_lookups);
        let error_rate_percent = percent_or(total.server_errors, total.requests, 0.0);
        let availability_percent = 100.0 - percent_or(total.unavailable, total.requests, 0.0);
        let has_requests = total.requests > 0;

        let mut route_figures: Vec<RouteFigures> = routes
            .iter()
            .filter(|route| route.counts.requests > 0)
            .map(RouteFigures::new)
            .collect();
        route_figures.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.route.cmp(&b.route)));

        Self {
            window_seconds,
            total_requests: total.requests,
            errors: total.server_errors,
            unavailable_responses: total.unavailable,
            // Microseconds to f64 is exact below 2^53 µs, about 285 years of response time.
            total_response_ms: total.total_micros as f64 / 1000.0,
            avg_response_ms: average_ms(total),
            performance_rate_percent: round(performance_rate_percent, 2),
            cache_hit_rate_percent: cache_hit_rate_percent.map(|rate| round(rate, 2)),
            error_rate_percent: round(error_rate_percent, 2),
            availability_percent: round(availability_percent, 2),
            p50_ms: has_requests.then(|| quantile_ms(latency, 0.50)),
            p95_ms: has_requests.then(|| quantile_ms(latency, 0.95)),
            p99_ms: has_requests.then(|| quantile_ms(latency, 0.99)),
            targets_met: TargetsMet {
                performance: performance_rate_percent >= targets.performance_rate_percent,
                cache_hit_rate: cache_hit_rate_percent
                    .is_none_or(|rate| rate >= targets.cache_hit_rate_percent),
                error_rate: error_rate_percent <= targets.error_rate_percent,
            },
            routes: route_figures,
        }
    }
}

impl RouteFigures {
    fn new<T: Counter>(route: &RoutePeriod<'_, T>) -> Self {
        Self {
            route: route.label.to_string(),
            requests: route.counts.requests,
            errors: route.counts.server_errors,
            avg_ms: average_ms(&route.counts),
            p50_ms: quantile_ms(route.latency, 0.50),
            p95_ms: quantile_ms(route.latency, 0.95),
            p99_ms: quantile_ms(route.latency, 0.99),
            cache_hit_rate_percent: percent(route.counts.cache_hits, route.counts.cache_lookups)
                .map(|rate| round(rate, 2)),
        }
    }
}

/// Returns `part` as a percentage of `whole`, unrounded, so that target checks
/// see the exact share. `None` when `whole` is zero.
fn percent(part: u64, whole: u64) -> Option<f64> {
    // u64 to f64 is exact below 2^53 requests, far beyond what one process serves.
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

fn percent_or(part: u64, whole: u64, empty: f64) -> f64 {
    percent(part, whole).unwrap_or(empty)
}

fn average_ms(counts: &Counts) -> f64 {
    if counts.requests == 0 {
        return 0.0;
    }
    round(
        counts.total_micros as f64 / counts.requests as f64 / 1000.0,
        3,
    )
}

/// Returns the latency at `quantile`, in milliseconds. hdrhistogram returns the highest
/// value of the bucket the quantile falls in, so this errs on the slow side.
fn quantile_ms<T: Counter>(latency: &Histogram<T>, quantile: f64) -> f64 {
    round(latency.value_at_quantile(quantile) as f64 / 1000.0, 3)
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::window::latency_histogram;

    const TARGETS: PerformanceTargets = PerformanceTargets::DEFAULT;

    #[test]
    fn empty_period_has_neutral_figures() {
        let latency = latency_histogram::<u64>().unwrap();
        let figures = Figures::new(Some(300), &Counts::default(), &latency, &[], &TARGETS);
        assert_eq!(figures.total_requests, 0);
        assert_eq!(figures.avg_response_ms, 0.0);
        assert_eq!(figures.performance_rate_percent, 100.0);
        assert_eq!(figures.cache_hit_rate_percent, None);
        assert_eq!(figures.error_rate_percent, 0.0);
        assert_eq!(figures.availability_percent, 100.0);
        assert_eq!(figures.p50_ms, None);
        assert!(figures.targets_met.performance);
        assert!(figures.targets_met.cache_hit_rate);
        assert!(figures.targets_met.error_rate);
        assert!(figures.routes.is_empty());
    }

    #[test]
    fn rates_follow_the_counts() {
        let mut latency = latency_histogram::<u64>().unwrap();
        for micros in [500, 1_000, 2_000, 100_000] {
            latency.record(micros).unwrap();
        }
        let total = Counts {
            requests: 4,
            server_errors: 1,
            unavailable: 1,
            within_target: 3,
            total_micros: 103_500,
            cache_lookups: 3,
            cache_hits: 2,
        };
        let routes = [RoutePeriod {
            label: "GET /models",
            counts: total,
            latency: &latency,
        }];
        let figures = Figures::new(None, &total, &latency, &routes, &TARGETS);

        assert_eq!(figures.avg_response_ms, 25.875);
        assert_eq!(figures.performance_rate_percent, 75.0);
        assert_eq!(figures.cache_hit_rate_percent, Some(66.67));
        assert_eq!(figures.error_rate_percent, 25.0);
        assert_eq!(figures.availability_percent, 75.0);
        assert!(!figures.targets_met.performance);
        assert!(!figures.targets_met.cache_hit_rate);
        assert!(!figures.targets_met.error_rate);
        assert_eq!(figures.routes.len(), 1);
        assert_eq!(figures.routes[0].errors, 1);
        let p99 = figures.p99_ms.unwrap();
        assert!((94.0..=106.0).contains(&p99), "{p99}");
    }

    #[test]
    fn targets_compare_unrounded_rates() {
        let latency = latency_histogram::<u64>().unwrap();
        // 1 error in 995 requests is 0.1005 %, shown as 0.1 but over the 0.1 % target.
        let total = Counts {
            requests: 995,
            server_errors: 1,
            within_target: 995,
            ..Counts::default()
        };
        let figures = Figures::new(None, &total, &latency, &[], &TARGETS);

        assert_eq!(figures.error_rate_percent, 0.1);
        assert!(!figures.targets_met.error_rate);
    }

    #[test]
    fn memory_growth_may_be_negative() {
        let memory = MemoryReport::new(Some(1_000), Some(1_500));
        assert_eq!(memory.growth_bytes, Some(-500));
        assert_eq!(MemoryReport::new(None, Some(1_500)).growth_bytes, None);
    }
}
