//! The figures computed from a [`Recorder`] at the end of a run, printed as a
//! table or as one JSON object.
//!
//! Percentiles come from the successful requests only: a failed request has no
//! meaningful latency (a refused connection returns at once, a timeout takes the
//! full timeout), so failures show in the error count and rate instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use velro_shared::perf::PerformanceTargets;

use super::recorder::{new_latency_histogram, Endpoint, ErrorKind, Recorder};

/// Highest share of failed requests a passing run may have, in percent: the
/// platform's error-rate target. The percentiles leave failures out, so a run
/// against a failing server could otherwise pass on the few requests that succeeded.
const MAX_ERROR_RATE_PERCENT: f64 = PerformanceTargets::DEFAULT.error_rate_percent;

/// Request counts, rates and latency percentiles of one endpoint or of all of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Requests sent, successful or not.
    pub total_requests: u64,
    /// Requests that timed out, failed to connect, got a non-2xx status or an invalid body.
    pub errors: u64,
    /// `errors` as a percentage of `total_requests`; 0 when nothing was sent.
    pub error_rate_percent: f64,
    /// `total_requests` per second of the measured duration.
    pub throughput_rps: f64,
    /// Median latency of successful requests, in milliseconds; `None` without any.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency of successful requests, in milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency of successful requests, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Slowest successful request, in milliseconds.
    pub max_ms: Option<f64>,
    /// Failed requests by cause, such as `timeout` or `status_503`.
    pub errors_by_kind: BTreeMap<String, u64>,
}

impl Figures {
    /// Computes the figures of `latency_us` and `errors` over a run that lasted `duration`.
    pub fn new(
        latency_us: &Histogram<u64>,
        errors: &BTreeMap<ErrorKind, u64>,
        duration: Duration,
    ) -> Self {
        let error_count: u64 = errors.values().sum();
        let total_requests = latency_us.len() + error_count;
        let error_rate_percent = if total_requests == 0 {
            0.0
        } else {
            error_count as f64 * 100.0 / total_requests as f64
        };
        let seconds = duration.as_secs_f64();
        let throughput_rps = if seconds > 0.0 {
            total_requests as f64 / seconds
        } else {
            0.0
        };

        let percentile_ms = |quantile: f64| {
            (!latency_us.is_empty()).then(|| micros_to_ms(latency_us.value_at_quantile(quantile)))
        };
        Self {
            total_requests,
            errors: error_count,
            error_rate_percent,
            throughput_rps,
            p50_ms: percentile_ms(0.50),
            p95_ms: percentile_ms(0.95),
            p99_ms: percentile_ms(0.99),
            max_ms: (!latency_us.is_empty()).then(|| micros_to_ms(latency_us.max())),
            errors_by_kind: errors
                .iter()
                .map(|(kind, count)| (kind.to_string(), *count))
                .collect(),
        }
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Settings of the run that the report repeats next to its figures.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub base_url: String,
    pub users: u32,
    /// Wall time from the first request to the end of the last one.
    pub duration: Duration,
    /// Whether Ctrl-C ended the run before `--duration` had passed.
    pub interrupted: bool,
    pub target_ms: f64,
    /// `--rate`, in the open model.
    pub rate_rps: Option<f64>,
    /// Requests the open model's schedule had due before sending stopped.
    pub scheduled_requests: Option<u64>,
}

/// The result of a load test, serialised as the `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub base_url: String,
    pub users: u32,
    /// Measured duration, in seconds, which throughput is computed over.
    pub duration_s: f64,
    pub interrupted: bool,
    /// `closed` (users wait for responses and think) or `open` (`--rate`).
    pub mode: &'static str,
    /// Requests per second asked for with `--rate`; null in the closed model.
    pub rate_rps: Option<f64>,
    /// Requests due on the open model's schedule before sending stopped; null
    /// in the closed model. Fewer sent than due means the users fell behind.
    pub scheduled_requests: Option<u64>,
    /// Pass mark for the overall p95 latency, in milliseconds.
    pub target_ms: f64,
    /// Whether some request succeeded, the overall p95 is at most `target_ms`,
    /// and at most 0.1 % of the requests failed.
    pub target_met: bool,
    /// Figures over all endpoints.
    #[serde(flatten)]
    pub overall: Figures,
    /// Figures of each endpoint, in workflow order, serialised as an object keyed by label.
    #[serde(serialize_with = "serialize_endpoints")]
    pub endpoints: Vec<(Endpoint, Figures)>,
}

impl Report {
    /// Computes the report of a finished run.
    pub fn new(recorder: &Recorder, summary: RunSummary) -> Self {
        let mut all_latencies = new_latency_histogram();
        let mut all_errors: BTreeMap<ErrorKind, u64> = BTreeMap::new();
        let mut endpoints = Vec::with_capacity(Endpoint::ALL.len());

        for endpoint in Endpoint::ALL {
            let record = recorder.endpoint(endpoint);
            // Every latency histogram comes from `new_latency_histogram`, so the
            // bounds match and merging cannot run out of range.
            all_latencies
                .add(&record.latency_us)
                .expect("latency histograms share their bounds");
            for (kind, count) in &record.errors {
                *all_errors.entry(*kind).or_insert(0) += count;
            }
            endpoints.push((
                endpoint,
                Figures::new(&record.latency_us, &record.errors, summary.duration),
            ));
        }

        let overall = Figures::new(&all_latencies, &all_errors, summary.duration);
        let target_met = overall.p95_ms.is_some_and(|p95| p95 <= summary.target_ms)
            && overall.error_rate_percent <= MAX_ERROR_RATE_PERCENT;
        Self {
            base_url: summary.base_url,
            users: summary.users,
            duration_s: summary.duration.as_secs_f64(),
            interrupted: summary.interrupted,
            mode: if summary.rate_rps.is_some() {
                "open"
            } else {
                "closed"
            },
            rate_rps: summary.rate_rps,
            scheduled_requests: summary.scheduled_requests,
            target_ms: summary.target_ms,
            target_met,
            overall,
            endpoints,
        }
    }

    /// Renders the report as a table for a terminal, ending in a newline.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        // `fmt::Write` for `String` never fails, so the results of `writeln!` are ignored.
        let interrupted = if self.interrupted {
            ", interrupted by Ctrl-C"
        } else {
            ""
        };
        let pacing = match self.rate_rps {
            Some(rate) => format!(" at {rate} requests/s (open model)"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "Load test of {} with {} virtual users{pacing} over {:.1} s{interrupted}",
            self.base_url, self.users, self.duration_s
        );
        let start = if self.rate_rps.is_some() {
            "the time the request was due"
        } else {
            "sending the request"
        };
        let _ = writeln!(
            out,
            "Latencies in ms, of successful requests only, from {start} to reading the whole body.\n"
        );
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "endpoint", "requests", "errors", "error %", "req/s", "p50", "p95", "p99", "max"
        );
        for (endpoint, figures) in &self.endpoints {
            write_row(&mut out, endpoint.label(), figures);
        }
        write_row(&mut out, "all", &self.overall);

        let failing: Vec<_> = self
            .endpoints
            .iter()
            .filter(|(_, figures)| figures.errors > 0)
            .collect();
        if !failing.is_empty() {
            let _ = writeln!(out, "\nErrors by cause:");
            for (endpoint, figures) in failing {
                let causes: Vec<String> = figures
                    .errors_by_kind
                    .iter()
                    .map(|(kind, count)| format!("{kind} x{count}"))
                    .collect();
                let _ = writeln!(out, "  {:<24} {}", endpoint.label(), causes.join(", "));
            }
        }

        let _ = writeln!(out, "\n{}", self.verdict());
        out
    }

    /// Compares the overall p95 and the error rate with their targets, and
    /// points out failed requests, which the percentiles leave out.
    pub fn verdict(&self) -> String {
        let mut verdict = match self.overall.p95_ms {
            None => format!(
                "Target missed: no request succeeded, so there is no p95 to compare with {:.1} ms.",
                self.target_ms
            ),
            Some(p95) if self.target_met => format!(
                "Target met: p95 {p95:.1} ms is within {:.1} ms.",
                self.target_ms
            ),
            Some(p95) if p95 <= self.target_ms => format!(
                "Target missed: p95 {p95:.1} ms is within {:.1} ms, but {:.2}% of the requests failed, over the {MAX_ERROR_RATE_PERCENT}% error-rate target.",
                self.target_ms, self.overall.error_rate_percent
            ),
            Some(p95) => format!(
                "Target missed: p95 {p95:.1} ms is above {:.1} ms.",
                self.target_ms
            ),
        };
        if let Some(scheduled) = self.scheduled_requests {
            // Below this share of the due requests the run did not hold its rate.
            const KEPT_UP_SHARE: f64 = 0.95;
            // u64 to f64 is exact below 2^53 requests.
            if (self.overall.total_requests as f64) < scheduled as f64 * KEPT_UP_SHARE {
                let _ = write!(
                    verdict,
                    " Only {} of the {scheduled} requests due were sent: each user has one request in flight, so raise --users to hold --rate.",
                    self.overall.total_requests
                );
            }
        }
        if self.overall.errors > 0 {
            let _ = write!(
                verdict,
                " {} of {} requests ({:.2}%) failed and are not in the percentiles.",
                self.overall.errors, self.overall.total_requests, self.overall.error_rate_percent
            );
        }
        verdict
    }
}

fn write_row(out: &mut String, label: &str, figures: &Figures) {
    let millis =
        |value: Option<f64>| value.map_or_else(|| "-".to_string(), |ms| format!("{ms:.1}"));
    let _ = writeln!(
        out,
        "{label:<24} {:>9} {:>7} {:>8.2} {:>9.1} {:>9} {:>9} {:>9} {:>9}",
        figures.total_requests,
        figures.errors,
        figures.error_rate_percent,
        figures.throughput_rps,
        millis(figures.p50_ms),
        millis(figures.p95_ms),
        millis(figures.p99_ms),
        millis(figures.max_ms),
    );
}

fn serialize_endpoints<S: Serializer>(
    endpoints: &[(Endpoint, Figures)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(endpoints.len()))?;
    for (endpoint, figures) in endpoints {
        map.serialize_entry(endpoint.label(), figures)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records 1 ms, 2 ms, ..., 100 ms at the login endpoint.
    fn recorder_with_login_latencies_1_to_100_ms() -> Recorder {
        let mut recorder = Recorder::new();
        for millis in 1..=100 {
            recorder.record_success(Endpoint::Login, Duration::from_millis(millis));
        }
        recorder
    }

    fn summary(duration: Duration, target_ms: f64) -> RunSummary {
        RunSummary {
            base_url: "http://127.0.0.1:8080/".to_string(),
            users: 4,
            duration,
            interrupted: false,
            target_ms,
            rate_rps: None,
            scheduled_requests: None,
        }
    }

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a percentile");
        // Three significant figures put each value within 0.1% of the recorded one.
        assert!(
            (actual - expected).abs() <= expected * 0.001,
            "expected about {expected}, got {actual}"
        );
    }

    #[test]
    fn percentiles_of_known_histogram() {
        let report = Report::new(
            &recorder_with_login_latencies_1_to_100_ms(),
            summary(Duration::from_secs(10), 75.0),
        );
        let login = &report.endpoints[0].1;
        assert_close(login.p50_ms, 50.0);
        assert_close(login.p95_ms, 95.0);
        assert_close(login.p99_ms, 99.0);
        assert_close(login.max_ms, 100.0);
        assert_eq!(report.overall.p95_ms, login.p95_ms);
    }

    #[test]
    fn error_rate_and_throughput() {
        let mut recorder = recorder_with_login_latencies_1_to_100_ms();
        for _ in 0..20 {
            recorder.record_error(Endpoint::Profile, ErrorKind::Status(500));
        }
        for _ in 0..5 {
            recorder.record_error(Endpoint::Profile, ErrorKind::Timeout);
        }
        let report = Report::new(&recorder, summary(Duration::from_secs(5), 75.0));

        assert_eq!(report.overall.total_requests, 125);
        assert_eq!(report.overall.errors, 25);
        assert!((report.overall.error_rate_percent - 20.0).abs() < 1e-9);
        assert!((report.overall.throughput_rps - 25.0).abs() < 1e-9);

        let profile = &report.endpoints[1].1;
        assert_eq!(profile.total_requests, 25);
        assert!((profile.error_rate_percent - 100.0).abs() < 1e-9);
        assert_eq!(profile.p95_ms, None);
        assert_eq!(profile.errors_by_kind.get("status_500"), Some(&20));
        assert_eq!(profile.errors_by_kind.get("timeout"), Some(&5));
        assert_eq!(report.overall.errors_by_kind.get("status_500"), Some(&20));
    }

    #[test]
    fn target_compares_overall_p95() {
        let recorder = recorder_with_login_latencies_1_to_100_ms();
        assert!(Report::new(&recorder, summary(Duration::from_secs(1), 200.0)).target_met);
        assert!(!Report::new(&recorder, summary(Duration::from_secs(1), 75.0)).target_met);

        // The target is met when p95 equals it exactly.
        let p95 = Report::new(&recorder, summary(Duration::from_secs(1), 75.0))
            .overall
            .p95_ms
            .expect("p95");
        assert!(Report::new(&recorder, summary(Duration::from_secs(1), p95)).target_met);
    }

    #[test]
    fn failed_requests_miss_target() {
        // One failure in 101 requests is 0.99 %, over the 0.1 % error-rate target,
        // although the p95 of the successes is within 200 ms.
        let mut recorder = recorder_with_login_latencies_1_to_100_ms();
        recorder.record_error(Endpoint::Profile, ErrorKind::Status(503));
        let report = Report::new(&recorder, summary(Duration::from_secs(1), 200.0));

        assert!(!report.target_met);
        let verdict = report.verdict();
        assert!(
            verdict.contains("p95 95.0 ms is within 200.0 ms, but 0.99% of the requests failed"),
            "{verdict}"
        );
    }

    #[test]
    fn empty_run_misses_target() {
        let report = Report::new(&Recorder::new(), summary(Duration::from_secs(1), 75.0));
        assert!(!report.target_met);
        assert_eq!(report.overall.total_requests, 0);
        assert_eq!(report.overall.error_rate_percent, 0.0);
        assert_eq!(report.overall.p50_ms, None);
        assert!(
            report.verdict().contains("no request succeeded"),
            "{}",
            report.verdict()
        );
    }

    #[test]
    fn zero_duration_gives_zero_throughput() {
        let report = Report::new(
            &recorder_with_login_latencies_1_to_100_ms(),
            summary(Duration::ZERO, 75.0),
        );
        assert_eq!(report.overall.throughput_rps, 0.0);
    }

    #[test]
    fn json_field_names() {
        let report = Report::new(
            &recorder_with_login_latencies_1_to_100_ms(),
            summary(Duration::from_secs(10), 75.0),
        );
        let json = serde_json::to_value(&report).expect("report serialises");

        let top_level = [
            "total_requests",
            "errors",
            "error_rate_percent",
            "throughput_rps",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
            "target_ms",
            "target_met",
            "duration_s",
            "users",
            "endpoints",
            "base_url",
            "interrupted",
            "errors_by_kind",
            "mode",
            "rate_rps",
            "scheduled_requests",
        ];
        for field in top_level {
            assert!(json.get(field).is_some(), "missing top-level field {field}");
        }
        assert_eq!(json["users"], 4);
        assert_eq!(json["target_met"], false);
        assert_eq!(json["mode"], "closed");
        assert!(json["rate_rps"].is_null());

        let endpoints = json["endpoints"]
            .as_object()
            .expect("endpoints is an object");
        let labels: Vec<&str> = endpoints.keys().map(String::as_str).collect();
        for endpoint in Endpoint::ALL {
            assert!(
                labels.contains(&endpoint.label()),
                "missing endpoint {}",
                endpoint.label()
            );
        }
        for field in &top_level[..8] {
            assert!(
                endpoints["POST /auth/login"].get(*field).is_some(),
                "missing endpoint field {field}"
            );
        }
        assert!(endpoints["GET /users/profile"]["p95_ms"].is_null());
    }

    #[test]
    fn table_lists_every_endpoint_and_verdict() {
        let mut recorder = recorder_with_login_latencies_1_to_100_ms();
        recorder.record_error(Endpoint::Generations, ErrorKind::Connect);
        let table = Report::new(&recorder, summary(Duration::from_secs(10), 75.0)).to_table();
        for endpoint in Endpoint::ALL {
            assert!(
                table.contains(endpoint.label()),
                "missing {}",
                endpoint.label()
            );
        }
        assert!(table.contains("connect x1"), "{table}");
        assert!(
            table.contains("Target missed: p95 95.0 ms is above 75.0 ms."),
            "{table}"
        );
        assert!(
            table.contains("1 of 101 requests (0.99%) failed"),
            "{table}"
        );
    }

    #[test]
    fn open_model_names_its_rate_and_a_shortfall() {
        let open = |scheduled| RunSummary {
            rate_rps: Some(12.5),
            scheduled_requests: Some(scheduled),
            ..summary(Duration::from_secs(10), 75.0)
        };
        let recorder = recorder_with_login_latencies_1_to_100_ms();

        let kept_up = Report::new(&recorder, open(104));
        assert_eq!(kept_up.mode, "open");
        let table = kept_up.to_table();
        assert!(table.contains("at 12.5 requests/s (open model)"), "{table}");
        assert!(
            table.contains("from the time the request was due"),
            "{table}"
        );
        assert!(!table.contains("were sent"), "{table}");

        let behind = Report::new(&recorder, open(125)).verdict();
        assert!(
            behind.contains("Only 100 of the 125 requests due were sent"),
            "{behind}"
        );
    }
}
