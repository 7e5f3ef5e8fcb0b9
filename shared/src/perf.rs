//! Performance targets and the rules that decide whether a deployment is rolled back.
//!
//! During a deployment's observation window, each reading of the `/performance`
//! endpoint is checked at once against loose limits ([`immediate_decision`]), and
//! at the end of the window the averages are checked against the targets
//! themselves ([`window_decision`]). A value that is NaN never passes a check.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Service-level targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerformanceTargets {
    /// Maximum average response time, in milliseconds.
    pub response_time_ms: f64,
    /// Minimum share of responses sent within `response_time_ms`, in percent.
    pub performance_rate_percent: f64,
    /// Minimum share of cacheable reads served from a cache, in percent.
    pub cache_hit_rate_percent: f64,
    /// Maximum share of requests that returned a 5xx status, in percent.
    pub error_rate_percent: f64,
    /// Minimum share of successful health checks, in percent.
    pub availability_percent: f64,
}

impl PerformanceTargets {
    /// 75 ms average response time, 90 % of requests within 75 ms, 95 % cache hits,
    /// 0.1 % errors, 99.9 % availability.
    pub const DEFAULT: PerformanceTargets = PerformanceTargets {
        response_time_ms: 75.0,
        performance_rate_percent: 90.0,
        cache_hit_rate_percent: 95.0,
        error_rate_percent: 0.1,
        availability_percent: 99.9,
    };
}

impl Default for PerformanceTargets {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One reading of `/performance`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerfSample {
    /// Average response time since the previous reading, in milliseconds.
    pub avg_response_ms: f64,
    /// Share of requests that returned a 5xx status, in percent.
    pub error_rate_percent: f64,
    /// Share of successful health checks, in percent.
    pub availability_percent: f64,
}

/// Availability below which a single reading triggers a rollback, in percent.
pub const IMMEDIATE_AVAILABILITY_FLOOR_PERCENT: f64 = 95.0;

/// A single reading fails when its latency exceeds this multiple of the target.
pub const IMMEDIATE_LATENCY_FACTOR: f64 = 2.0;

/// A single reading fails when its error rate exceeds this multiple of the threshold.
pub const IMMEDIATE_ERROR_RATE_FACTOR: f64 = 5.0;

/// Reason to roll a deployment back, with the numbers that decided it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RollbackReason {
    /// One reading's latency exceeded twice the target.
    LatencyOverTwiceTarget {
        /// The reading's average latency, in milliseconds.
        avg_ms: f64,
        /// Twice the target, in milliseconds.
        limit_ms: f64,
    },
    /// One reading's error rate exceeded five times the threshold.
    ErrorRateOverFiveTimesThreshold {
        /// The reading's error rate, in percent.
        error_rate_percent: f64,
        /// Five times the threshold, in percent.
        limit_percent: f64,
    },
    /// One reading's availability fell below [`IMMEDIATE_AVAILABILITY_FLOOR_PERCENT`].
    AvailabilityBelowFloor {
        /// The reading's availability, in percent.
        availability_percent: f64,
        /// The floor, in percent.
        floor_percent: f64,
    },
    /// The window's average latency exceeded the target.
    AverageLatencyOverTarget {
        /// Average latency over the window, in milliseconds.
        avg_ms: f64,
        /// The target, in milliseconds.
        target_ms: f64,
    },
    /// The window's average error rate exceeded the threshold.
    AverageErrorRateOverThreshold {
        /// Average error rate over the window, in percent.
        error_rate_percent: f64,
        /// The threshold, in percent.
        threshold_percent: f64,
    },
    /// The window's average availability fell below the target.
    AverageAvailabilityBelowTarget {
        /// Average availability over the window, in percent.
        availability_percent: f64,
        /// The target, in percent.
        target_percent: f64,
    },
    /// The window ended without a single reading, so health is unknown.
    NoSamples,
}

impl fmt::Display for RollbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RollbackReason::LatencyOverTwiceTarget { avg_ms, limit_ms } => write!(
                f,
                "average response time {avg_ms:.1} ms is over {limit_ms:.1} ms, twice the target"
            ),
            RollbackReason::ErrorRateOverFiveTimesThreshold { error_rate_percent, limit_percent } => write!(
                f,
                "error rate {error_rate_percent:.2} % is over {limit_percent:.2} %, five times the threshold"
            ),
            RollbackReason::AvailabilityBelowFloor { availability_percent, floor_percent } => write!(
                f,
                "availability {availability_percent:.2} % is below the {floor_percent:.2} % floor"
            ),
            RollbackReason::AverageLatencyOverTarget { avg_ms, target_ms } => write!(
                f,
                "average response time over the window {avg_ms:.1} ms is over the {target_ms:.1} ms target"
            ),
            RollbackReason::AverageErrorRateOverThreshold { error_rate_percent, threshold_percent } => write!(
                f,
                "average error rate over the window {error_rate_percent:.2} % is over the {threshold_percent:.2} % threshold"
            ),
            RollbackReason::AverageAvailabilityBelowTarget { availability_percent, target_percent } => write!(
                f,
                "average availability over the window {availability_percent:.2} % is below the {target_percent:.2} % target"
            ),
            RollbackReason::NoSamples => f.write_str("no performance readings arrived during the window, so health is unknown"),
        }
    }
}

/// Outcome of a rollback check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Keep the deployment.
    Healthy,
    /// Roll the deployment back, for this reason.
    Rollback(RollbackReason),
}

impl Decision {
    /// Returns whether the deployment should be rolled back.
    pub fn is_rollback(&self) -> bool {
        matches!(self, Decision::Rollback(_))
    }
}

// Each check is written as "not within the limit" rather than "over the limit",
// because every comparison with NaN is false: a NaN reading or target then fails.

/// `value <= limit`, false when either is NaN.
fn at_most(value: f64, limit: f64) -> bool {
    value <= limit
}

/// `value >= limit`, false when either is NaN.
fn at_least(value: f64, limit: f64) -> bool {
    value >= limit
}

/// Applies the immediate rule to one sample. It fails when average latency exceeds twice
/// the target, the error rate exceeds five times the threshold, or availability is below 95 %.
pub fn immediate_decision(targets: &PerformanceTargets, sample: &PerfSample) -> Decision {
    let limit_ms = targets.response_time_ms * IMMEDIATE_LATENCY_FACTOR;
    if !at_most(sample.avg_response_ms, limit_ms) {
        return Decision::Rollback(RollbackReason::LatencyOverTwiceTarget {
            avg_ms: sample.avg_response_ms,
            limit_ms,
        });
    }

    let limit_percent = targets.error_rate_percent * IMMEDIATE_ERROR_RATE_FACTOR;
    if !at_most(sample.error_rate_percent, limit_percent) {
        return Decision::Rollback(RollbackReason::ErrorRateOverFiveTimesThreshold {
            error_rate_percent: sample.error_rate_percent,
            limit_percent,
        });
    }

    if !at_least(
        sample.availability_percent,
        IMMEDIATE_AVAILABILITY_FLOOR_PERCENT,
    ) {
        return Decision::Rollback(RollbackReason::AvailabilityBelowFloor {
            availability_percent: sample.availability_percent,
            floor_percent: IMMEDIATE_AVAILABILITY_FLOOR_PERCENT,
        });
    }

    Decision::Healthy
}

/// Applies the end-of-window rule to all samples of the window.
///
/// No samples means rollback, because health is unknown. Otherwise the first sample
/// that fails [`immediate_decision`] decides. If none does, the plain averages are
/// compared with the targets: latency over the target, error rate over the
/// threshold, or availability under the target means rollback.
pub fn window_decision(targets: &PerformanceTargets, samples: &[PerfSample]) -> Decision {
    if samples.is_empty() {
        return Decision::Rollback(RollbackReason::NoSamples);
    }

    for sample in samples {
        if let Decision::Rollback(reason) = immediate_decision(targets, sample) {
            return Decision::Rollback(reason);
        }
    }

    let avg_ms = mean(samples, |sample| sample.avg_response_ms);
    if !at_most(avg_ms, targets.response_time_ms) {
        return Decision::Rollback(RollbackReason::AverageLatencyOverTarget {
            avg_ms,
            target_ms: targets.response_time_ms,
        });
    }

    let error_rate_percent = mean(samples, |sample| sample.error_rate_percent);
    if !at_most(error_rate_percent, targets.error_rate_percent) {
        return Decision::Rollback(RollbackReason::AverageErrorRateOverThreshold {
            error_rate_percent,
            threshold_percent: targets.error_rate_percent,
        });
    }

    let availability_percent = mean(samples, |sample| sample.availability_percent);
    if !at_least(availability_percent, targets.availability_percent) {
        return Decision::Rollback(RollbackReason::AverageAvailabilityBelowTarget {
            availability_percent,
            target_percent: targets.availability_percent,
        });
    }

    Decision::Healthy
}

/// Arithmetic mean of one field over a non-empty slice.
fn mean(samples: &[PerfSample], field: impl Fn(&PerfSample) -> f64) -> f64 {
    // Converting a usize to f64 is exact up to 2^53, far beyond any slice of readings.
    let count = samples.len() as f64;
    samples.iter().map(field).sum::<f64>() / count
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: PerformanceTargets = PerformanceTargets::DEFAULT;

    /// Builds a reading well within every target.
    fn good() -> PerfSample {
        PerfSample {
            avg_response_ms: 40.0,
            error_rate_percent: 0.0,
            availability_percent: 100.0,
        }
    }

    fn latency(avg_response_ms: f64) -> PerfSample {
        PerfSample {
            avg_response_ms,
            ..good()
        }
    }

    fn errors(error_rate_percent: f64) -> PerfSample {
        PerfSample {
            error_rate_percent,
            ..good()
        }
    }

    fn availability(availability_percent: f64) -> PerfSample {
        PerfSample {
            availability_percent,
            ..good()
        }
    }

    #[test]
    fn default_targets() {
        assert_eq!(TARGETS.response_time_ms, 75.0);
        assert_eq!(TARGETS.performance_rate_percent, 90.0);
        assert_eq!(TARGETS.cache_hit_rate_percent, 95.0);
        assert_eq!(TARGETS.error_rate_percent, 0.1);
        assert_eq!(TARGETS.availability_percent, 99.9);
        assert_eq!(PerformanceTargets::default(), TARGETS);
    }

    #[test]
    fn immediate_passes_good_sample() {
        assert_eq!(immediate_decision(&TARGETS, &good()), Decision::Healthy);
    }

    #[test]
    fn immediate_latency_limit_is_twice_target() {
        assert_eq!(
            immediate_decision(&TARGETS, &latency(150.0)),
            Decision::Healthy
        );
        assert_eq!(
            immediate_decision(&TARGETS, &latency(150.1)),
            Decision::Rollback(RollbackReason::LatencyOverTwiceTarget {
                avg_ms: 150.1,
                limit_ms: 150.0
            })
        );
    }

    #[test]
    fn immediate_error_limit_is_five_times_threshold() {
        assert_eq!(
            immediate_decision(&TARGETS, &errors(0.5)),
            Decision::Healthy
        );
        assert_eq!(
            immediate_decision(&TARGETS, &errors(0.6)),
            Decision::Rollback(RollbackReason::ErrorRateOverFiveTimesThreshold {
                error_rate_percent: 0.6,
                limit_percent: 0.5
            })
        );
    }

    #[test]
    fn immediate_availability_floor_is_95() {
        assert_eq!(
            immediate_decision(&TARGETS, &availability(95.0)),
            Decision::Healthy
        );
        assert_eq!(
            immediate_decision(&TARGETS, &availability(94.9)),
            Decision::Rollback(RollbackReason::AvailabilityBelowFloor {
                availability_percent: 94.9,
                floor_percent: 95.0
            })
        );
    }

    #[test]
    fn immediate_reports_latency_first() {
        let everything_bad = PerfSample {
            avg_response_ms: 500.0,
            error_rate_percent: 50.0,
            availability_percent: 10.0,
        };
        assert!(matches!(
            immediate_decision(&TARGETS, &everything_bad),
            Decision::Rollback(RollbackReason::LatencyOverTwiceTarget { .. })
        ));
    }

    #[test]
    fn immediate_nan_sample_fails() {
        for sample in [latency(f64::NAN), errors(f64::NAN), availability(f64::NAN)] {
            assert!(
                immediate_decision(&TARGETS, &sample).is_rollback(),
                "{sample:?}"
            );
        }
        assert!(immediate_decision(&TARGETS, &latency(f64::INFINITY)).is_rollback());
    }

    #[test]
    fn immediate_nan_target_fails() {
        let targets = PerformanceTargets {
            response_time_ms: f64::NAN,
            ..TARGETS
        };
        assert!(immediate_decision(&targets, &good()).is_rollback());
        let targets = PerformanceTargets {
            error_rate_percent: f64::NAN,
            ..TARGETS
        };
        assert!(immediate_decision(&targets, &good()).is_rollback());
    }

    #[test]
    fn window_without_samples_rolls_back() {
        assert_eq!(
            window_decision(&TARGETS, &[]),
            Decision::Rollback(RollbackReason::NoSamples)
        );
    }

    #[test]
    fn window_of_good_samples_is_healthy() {
        assert_eq!(
            window_decision(&TARGETS, &[good(), latency(70.0), errors(0.1)]),
            Decision::Healthy
        );
    }

    #[test]
    fn window_reports_first_failing_sample() {
        let samples = [good(), availability(90.0), latency(400.0)];
        assert_eq!(
            window_decision(&TARGETS, &samples),
            Decision::Rollback(RollbackReason::AvailabilityBelowFloor {
                availability_percent: 90.0,
                floor_percent: 95.0
            })
        );
    }

    #[test]
    fn window_average_latency_over_target() {
        // Each reading is under twice the target, but the mean of 80 and 100 is 90.
        let samples = [latency(80.0), latency(100.0)];
        assert_eq!(
            window_decision(&TARGETS, &samples),
            Decision::Rollback(RollbackReason::AverageLatencyOverTarget {
                avg_ms: 90.0,
                target_ms: 75.0
            })
        );
    }

    #[test]
    fn window_average_error_rate_over_threshold() {
        let samples = [errors(0.4), errors(0.0)];
        assert_eq!(
            window_decision(&TARGETS, &samples),
            Decision::Rollback(RollbackReason::AverageErrorRateOverThreshold {
                error_rate_percent: 0.2,
                threshold_percent: 0.1
            })
        );
    }

    #[test]
    fn window_average_availability_below_target() {
        let samples = [availability(99.0), availability(100.0)];
        assert_eq!(
            window_decision(&TARGETS, &samples),
            Decision::Rollback(RollbackReason::AverageAvailabilityBelowTarget {
                availability_percent: 99.5,
                target_percent: 99.9
            })
        );
    }

    #[test]
    fn window_average_at_targets_is_healthy() {
        for sample in [latency(75.0), errors(0.1), availability(99.9)] {
            assert_eq!(
                window_decision(&TARGETS, &[sample]),
                Decision::Healthy,
                "{sample:?}"
            );
        }
    }

    #[test]
    fn window_nan_sample_fails() {
        assert!(window_decision(&TARGETS, &[good(), errors(f64::NAN)]).is_rollback());
    }

    #[test]
    fn reasons_read_as_sentences() {
        let reason = RollbackReason::LatencyOverTwiceTarget {
            avg_ms: 180.0,
            limit_ms: 150.0,
        };
        assert_eq!(
            reason.to_string(),
            "average response time 180.0 ms is over 150.0 ms, twice the target"
        );
        let reason = RollbackReason::AverageAvailabilityBelowTarget {
            availability_percent: 99.5,
            target_percent: 99.9,
        };
        assert_eq!(
            reason.to_string(),
            "average availability over the window 99.50 % is below the 99.90 % target"
        );
        assert_eq!(
            RollbackReason::NoSamples.to_string(),
            "no performance readings arrived during the window, so health is unknown"
        );
    }

    #[test]
    fn sample_json_field_names() {
        let json = r#"{"avg_response_ms": 42.5, "error_rate_percent": 0.05, "availability_percent": 99.95}"#;
        let parsed: Result<PerfSample, _> = serde_json::from_str(json);
        assert_eq!(
            parsed.ok(),
            Some(PerfSample {
                avg_response_ms: 42.5,
                error_rate_percent: 0.05,
                availability_percent: 99.95
            })
        );
    }
}
