//! One reading of `URL/performance`, and the sample two readings make.
//!
//! `/performance` reports counters since the process started. The sample for
//! one interval is the difference between two readings, so each interval is
//! judged on its own requests rather than on a long average that hides a
//! sudden change.

use std::time::Duration;

use reqwest::{Client, StatusCode, Url};
use serde::Deserialize;
use velro_shared::perf::PerfSample;

use crate::deploy::probe;

/// The part of the `/performance` body the watcher reads.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Reading {
    pub monitoring_enabled: bool,
    pub uptime_hours: f64,
    pub since_start: Totals,
}

/// Counters since the process started.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Totals {
    pub total_requests: u64,
    pub errors: u64,
    pub unavailable_responses: u64,
    pub total_response_ms: f64,
}

impl Totals {
    /// Subtracts `earlier` from `self`. Returns `None` when a counter went
    /// down, which means the process restarted in between.
    fn since(&self, earlier: &Totals) -> Option<Totals> {
        Some(Totals {
            total_requests: self.total_requests.checked_sub(earlier.total_requests)?,
            errors: self.errors.checked_sub(earlier.errors)?,
            unavailable_responses: self
                .unavailable_responses
                .checked_sub(earlier.unavailable_responses)?,
            total_response_ms: (self.total_response_ms >= earlier.total_response_ms)
                .then_some(self.total_response_ms - earlier.total_response_ms)?,
        })
    }

    /// Computes the sample of these counts. Returns `None` when there were no
    /// requests, because an idle interval shows nothing about latency or errors.
    pub fn sample(&self) -> Option<PerfSample> {
        if self.total_requests == 0 {
            return None;
        }
        // u64 to f64 is exact below 2^53 requests.
        let requests = self.total_requests as f64;
        Some(PerfSample {
            avg_response_ms: self.total_response_ms / requests,
            error_rate_percent: self.errors as f64 * 100.0 / requests,
            availability_percent: 100.0 - self.unavailable_responses as f64 * 100.0 / requests,
        })
    }
}

/// The counts of one interval, and whether the process restarted during it.
#[derive(Debug, Clone, Copy)]
pub struct Interval {
    pub totals: Totals,
    pub restarted: bool,
}

impl Reading {
    /// Returns the interval from `previous` to this reading. After a restart the
    /// counters start again from zero, so the whole reading is the interval.
    pub fn since(&self, previous: &Reading) -> Interval {
        let restarted_by_clock = self.uptime_hours < previous.uptime_hours;
        match self.since_start.since(&previous.since_start) {
            Some(totals) if !restarted_by_clock => Interval {
                totals,
                restarted: false,
            },
            _ => Interval {
                totals: self.since_start,
                restarted: true,
            },
        }
    }
}

/// Fetches one reading. The error describes the failure in a few words.
pub async fn fetch(client: &Client, url: &Url, timeout: Duration) -> Result<Reading, String> {
    let (status, body) = probe::get(client, url, timeout).await?;
    if status != StatusCode::OK {
        return Err(format!("{status} instead of 200"));
    }
    serde_json::from_slice(&body)
        .map_err(|error| format!("the body is not a /performance report: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(
        uptime_hours: f64,
        requests: u64,
        errors: u64,
        unavailable: u64,
        ms: f64,
    ) -> Reading {
        Reading {
            monitoring_enabled: true,
            uptime_hours,
            since_start: Totals {
                total_requests: requests,
                errors,
                unavailable_responses: unavailable,
                total_response_ms: ms,
            },
        }
    }

    #[test]
    fn interval_is_the_difference_of_two_readings() {
        let first = reading(1.0, 1_000, 0, 0, 10_000.0);
        let second = reading(1.01, 1_200, 10, 4, 14_000.0);
        let interval = second.since(&first);
        assert!(!interval.restarted);
        assert_eq!(interval.totals.total_requests, 200);
        let sample = interval.totals.sample().expect("requests");
        assert_eq!(sample.avg_response_ms, 20.0);
        assert_eq!(sample.error_rate_percent, 5.0);
        assert_eq!(sample.availability_percent, 98.0);
    }

    #[test]
    fn restart_takes_the_new_counters_whole() {
        let before = reading(2.0, 5_000, 1, 0, 50_000.0);
        let fewer_requests = reading(2.1, 300, 0, 0, 900.0);
        let interval = fewer_requests.since(&before);
        assert!(interval.restarted);
        assert_eq!(interval.totals.total_requests, 300);

        // More requests than before, but the total latency went down: a restart.
        let less_latency = reading(2.2, 5_100, 1, 0, 40_000.0);
        let interval = less_latency.since(&before);
        assert!(interval.restarted);
        assert_eq!(interval.totals.total_requests, 5_100);

        // More requests than before, but the clock went back: still a restart.
        let younger = reading(0.01, 6_000, 0, 0, 6_000.0);
        let interval = younger.since(&before);
        assert!(interval.restarted);
        assert_eq!(interval.totals.total_requests, 6_000);
    }

    #[test]
    fn idle_interval_has_no_sample() {
        let first = reading(1.0, 10, 0, 0, 50.0);
        let second = reading(1.1, 10, 0, 0, 50.0);
        assert!(second.since(&first).totals.sample().is_none());
    }

    #[test]
    fn body_of_performance_parses() {
        let body = r#"{"monitoring_enabled": true, "uptime_hours": 0.5, "targets": {},
            "since_start": {"total_requests": 4, "errors": 1, "unavailable_responses": 1,
            "total_response_ms": 8.5, "avg_response_ms": 2.125}, "window": {}}"#;
        let reading: Reading = serde_json::from_str(body).expect("parses");
        assert_eq!(reading.since_start.total_requests, 4);
        assert_eq!(reading.since_start.total_response_ms, 8.5);
    }
}
