//! The watcher's output: a line per sample and the decision as text, or one
//! JSON object with all of them under `--json`.

use std::time::Duration;

use serde::Serialize;
use velro_shared::perf::{PerfSample, PerformanceTargets};

use super::rollback::CommandOutcome;
use crate::deploy::probe::{eprint_line, print_line};

/// Kind of a sample, from what one reading of one deployment returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleKind {
    /// The first reading, which later readings are compared with.
    Baseline,
    /// An interval with requests, judged by the rules.
    Traffic,
    /// An interval without requests, which the rules skip.
    Idle,
    /// No reading: counted as 0 % available.
    Unavailable,
}

/// One sample, as logged and as listed in the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRecord {
    pub url: String,
    /// 0 for the baseline, then 1, 2, ... one per interval.
    pub index: u64,
    /// Time since the watch started, when the reading was taken.
    pub elapsed_ms: u64,
    pub kind: SampleKind,
    /// Requests in the interval; absent for the baseline and unavailable readings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// The figures the rules judged.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub sample: Option<PerfSample>,
    /// The counters went down since the previous reading: the process restarted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restarted: bool,
    /// Reason there is no reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set when this sample alone calls for a rollback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_reason: Option<String>,
}

impl SampleRecord {
    /// Formats the sample as a log line.
    pub fn line(&self) -> String {
        let at = format!("[{:>7.1} s]", self.elapsed_ms as f64 / 1000.0);
        let what = match (self.kind, &self.sample) {
            (SampleKind::Baseline, _) => "baseline reading taken".to_string(),
            (SampleKind::Idle, _) => "no requests since the previous reading".to_string(),
            (SampleKind::Unavailable, _) => format!(
                "unavailable ({}), counted as 0 % available",
                self.error.as_deref().unwrap_or("no reading")
            ),
            (SampleKind::Traffic, Some(sample)) => format!(
                "{} requests, avg {:.1} ms, {:.2} % errors, {:.2} % available",
                self.requests.unwrap_or(0),
                sample.avg_response_ms,
                sample.error_rate_percent,
                sample.availability_percent
            ),
            (SampleKind::Traffic, None) => "no figures".to_string(),
        };
        let restarted = if self.restarted {
            " (the origin restarted since the previous reading)"
        } else {
            ""
        };
        let verdict = match &self.rollback_reason {
            Some(reason) => format!("rollback: {reason}"),
            None if self.kind == SampleKind::Traffic => "within the immediate limits".to_string(),
            None => "not judged".to_string(),
        };
        format!(
            "{at} {} sample {}: {what}{restarted}; {verdict}",
            self.url, self.index
        )
    }
}

/// The rule behind a rollback decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// One sample crossed a limit of `immediate_decision`.
    Immediate,
    /// The averages at the end of the window missed a target.
    Window,
}

/// The watcher's decision.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `healthy` or `rollback`.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// The deployment that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub reason: String,
    /// Time since the watch started, when the decision was made.
    pub decided_after_ms: u64,
}

impl Verdict {
    pub fn healthy(reason: String, elapsed: Duration) -> Self {
        Self {
            decision: "healthy",
            rule: None,
            url: None,
            reason,
            decided_after_ms: millis(elapsed),
        }
    }

    pub fn rollback(rule: Rule, url: &str, reason: String, elapsed: Duration) -> Self {
        Self {
            decision: "rollback",
            rule: Some(rule),
            url: Some(url.to_string()),
            reason,
            decided_after_ms: millis(elapsed),
        }
    }

    pub fn is_rollback(&self) -> bool {
        self.rule.is_some()
    }

    /// Formats the decision as a log line.
    pub fn line(&self) -> String {
        match (&self.url, self.rule) {
            (Some(url), Some(rule)) => format!(
                "decision: rollback of {url} after {:.1} s ({} rule): {}",
                self.decided_after_ms as f64 / 1000.0,
                match rule {
                    Rule::Immediate => "immediate",
                    Rule::Window => "end-of-window",
                },
                self.reason
            ),
            _ => format!("decision: healthy: {}", self.reason),
        }
    }
}

/// The `--json` output.
#[derive(Debug, Serialize)]
pub struct WatchReport<'a> {
    #[serde(flatten)]
    pub verdict: &'a Verdict,
    pub window_ms: u64,
    pub interval_ms: u64,
    pub targets: PerformanceTargets,
    pub samples: &'a [SampleRecord],
    pub rollback_command: Option<&'a CommandOutcome>,
}

/// Whole milliseconds, saturating far beyond any window.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Destination of the log lines: standard output, or standard error under
/// `--json`, so that standard output carries only the JSON object.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    pub json: bool,
}

impl Log {
    pub fn line(&self, text: &str) {
        if self.json {
            eprint_line(text);
        } else {
            print_line(text);
        }
    }
}
