//! The `PERF_*` variables: request recording for `/performance` and `/metrics`, and its targets.

use std::time::Duration;

use velro_shared::perf::PerformanceTargets;

use super::{parse_or, ConfigError, EnvSource};

/// Minimum window length. The window is kept as
/// [`MonitoringSettings::WINDOW_BUCKETS`] buckets, so this keeps each bucket at
/// least one second wide.
const MIN_WINDOW_SECS: u64 = 30;
/// Maximum window length: one day.
const MAX_WINDOW_SECS: u64 = 86_400;
/// Smallest response-time target accepted, in milliseconds: latencies are recorded in microseconds.
const MIN_TARGET_RESPONSE_TIME_MS: f64 = 0.001;
/// Largest response-time target accepted, in milliseconds: the recorded latencies stop at 60 s.
const MAX_TARGET_RESPONSE_TIME_MS: f64 = 60_000.0;

/// Settings of the request recorder behind `/performance` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitoringSettings {
    /// Whether requests are recorded at all (`PERF_MONITORING_ENABLED`).
    pub enabled: bool,
    /// Length of the sliding window of `/performance` (`PERF_WINDOW_SECS`).
    pub window: Duration,
    /// Targets that `/performance` compares the figures with. The response-time and
    /// cache-hit-rate targets come from the environment, the rest from `velro-shared`.
    pub targets: PerformanceTargets,
}

impl MonitoringSettings {
    /// Number of buckets the sliding window is divided into; the window moves one bucket at a time.
    pub const WINDOW_BUCKETS: u32 = 30;
}

/// Reads the `PERF_*` variables.
pub(super) fn monitoring_settings(env: &impl EnvSource) -> Result<MonitoringSettings, ConfigError> {
    let defaults = PerformanceTargets::DEFAULT;
    let enabled = parse_or(
        env,
        "PERF_MONITORING_ENABLED",
        true,
        "true or false",
        |value| match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
    )?;
    let window = parse_or(
        env,
        "PERF_WINDOW_SECS",
        Duration::from_secs(300),
        "a whole number of seconds from 30 to 86400",
        |value| {
            value
                .parse()
                .ok()
                .filter(|seconds| (MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(seconds))
                .map(Duration::from_secs)
        },
    )?;
    let response_time_ms = parse_or(
        env,
        "PERF_TARGET_RESPONSE_TIME_MS",
        defaults.response_time_ms,
        "a number of milliseconds from 0.001 to 60000, such as 75 or 0.5",
        |value| {
            value.parse::<f64>().ok().filter(|ms| {
                (MIN_TARGET_RESPONSE_TIME_MS..=MAX_TARGET_RESPONSE_TIME_MS).contains(ms)
            })
        },
    )?;
    let cache_hit_rate_percent = parse_or(
        env,
        "PERF_CACHE_HIT_RATE_TARGET",
        defaults.cache_hit_rate_percent,
        "a percentage from 0 to 100, such as 95",
        |value| {
            value
                .parse::<f64>()
                .ok()
                .filter(|percent| (0.0..=100.0).contains(percent))
        },
    )?;
    Ok(MonitoringSettings {
        enabled,
        window,
        targets: PerformanceTargets {
            response_time_ms,
            cache_hit_rate_percent,
            ..defaults
        },
    })
}
