//! `velro-origin watch-deploy`: watches live deployments through their
//! `/performance` endpoint and rolls them back when they miss the targets.
//!
//! The watcher takes a baseline reading of each URL at once, then one reading
//! per interval until the window ends. Each reading minus the one before is a
//! sample of that interval (see [`reading`]), judged by
//! [`velro_shared::perf::immediate_decision`] as soon as it arrives, so a
//! deployment that crosses a limit is rolled back at the first reading after
//! it does. A reading that fails counts as 0 % available and so also rolls
//! back at once. At the end of the window each URL's samples are judged
//! together by [`velro_shared::perf::window_decision`]; a URL whose intervals
//! were all idle has no samples and fails there, as its health is unknown.
//!
//! Several `--url`s are watched as one deploy, such as the three regions of a
//! release: the first rollback decision stops the watch and runs the command once.

mod reading;
mod report;
mod rollback;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use futures::future::join_all;
use reqwest::{Client, Url};
use tokio::time::Instant;
use velro_shared::perf::{
    immediate_decision, window_decision, Decision, PerfSample, PerformanceTargets,
};

use super::probe::{self, endpoint, print_line, seconds};
use super::{MAX_DURATION, ROLLBACK_EXIT_CODE};
use crate::cli::values::{parse_base_url, parse_positive_duration};
use reading::Reading;
use report::{Log, Rule, SampleKind, SampleRecord, Verdict, WatchReport};

/// Maximum duration of one reading, and never more than the interval. An
/// origin that stops responding is therefore rolled back at most one interval
/// plus this long after it stops. `/performance` takes about a millisecond.
const READING_TIMEOUT: Duration = Duration::from_secs(5);

/// Minimum interval. Readings closer together would get too short a timeout
/// to tell a slow origin from a dead one.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Most readings one watch may take, to bound the memory of its samples.
const MAX_READINGS: u128 = 10_000;

/// Options of `watch-deploy`.
#[derive(Debug, clap::Args)]
pub struct WatchDeployArgs {
    /// Root URL of a deployment; repeat the flag to watch several, such as each region, as one deploy.
    #[arg(long = "url", value_name = "URL", required = true, value_parser = parse_base_url)]
    pub urls: Vec<Url>,

    /// How long to watch before the final decision.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_positive_duration)]
    pub window: Duration,

    /// Time between two readings: at least 1s, and no longer than the window.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_positive_duration)]
    pub interval: Duration,

    /// Shell command to run once on a rollback decision, such as `wrangler rollback`.
    /// It gets VELRO_ROLLBACK_URL and VELRO_ROLLBACK_REASON in its environment.
    #[arg(long, value_name = "COMMAND", value_parser = parse_command)]
    pub on_rollback: Option<String>,

    /// Print the samples and the decision as one JSON object on standard output;
    /// the log lines then go to standard error.
    #[arg(long)]
    pub json: bool,
}

/// The state of one watched deployment.
struct Watched {
    url: Url,
    performance: Url,
    previous: Option<Reading>,
    samples: Vec<PerfSample>,
    warned_monitoring_off: bool,
}

impl Watched {
    fn new(url: Url) -> Self {
        Self {
            performance: endpoint(&url, "performance"),
            url,
            previous: None,
            samples: Vec::new(),
            warned_monitoring_off: false,
        }
    }

    /// Turns one reading, or the failure to take it, into a sample and judges it.
    fn observe(
        &mut self,
        index: u64,
        elapsed: Duration,
        fetched: Result<Reading, String>,
        targets: &PerformanceTargets,
        log: Log,
    ) -> SampleRecord {
        let mut record = SampleRecord {
            url: self.url.to_string(),
            index,
            elapsed_ms: report::millis(elapsed),
            kind: SampleKind::Unavailable,
            requests: None,
            sample: None,
            restarted: false,
            error: None,
            rollback_reason: None,
        };
        let reading = match fetched {
            Ok(reading) => reading,
            Err(error) => {
                // A failed reading is judged like a reading of an origin that serves nothing.
                let unavailable = PerfSample {
                    avg_response_ms: 0.0,
                    error_rate_percent: 0.0,
                    availability_percent: 0.0,
                };
                record.error = Some(error);
                record.sample = Some(unavailable);
                record.rollback_reason = rollback_reason(targets, &unavailable);
                return record;
            }
        };
        if !reading.monitoring_enabled && !self.warned_monitoring_off {
            self.warned_monitoring_off = true;
            log.line(&format!(
                "warning: {} has PERF_MONITORING_ENABLED=false, so its readings count no requests and the window will end without samples",
                self.url
            ));
        }
        let Some(previous) = self.previous.replace(reading) else {
            record.kind = SampleKind::Baseline;
            return record;
        };
        let interval = reading.since(&previous);
        record.restarted = interval.restarted;
        record.requests = Some(interval.totals.total_requests);
        match interval.totals.sample() {
            None => record.kind = SampleKind::Idle,
            Some(sample) => {
                record.kind = SampleKind::Traffic;
                record.sample = Some(sample);
                record.rollback_reason = rollback_reason(targets, &sample);
                self.samples.push(sample);
            }
        }
        record
    }
}

/// Rejects an empty `--on-rollback`, which would log a rollback that did nothing.
fn parse_command(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("must not be empty; leave out --on-rollback to run no command".to_string());
    }
    Ok(value.to_string())
}

fn rollback_reason(targets: &PerformanceTargets, sample: &PerfSample) -> Option<String> {
    match immediate_decision(targets, sample) {
        Decision::Healthy => None,
        Decision::Rollback(reason) => Some(reason.to_string()),
    }
}

/// Runs the command: exit 0 when every deployment is healthy at the end of the
/// window, 2 after a rollback decision, 1 when the options are unusable.
pub async fn run(args: WatchDeployArgs) -> anyhow::Result<ExitCode> {
    let readings = reading_count(&args)?;
    let timeout = args.interval.min(READING_TIMEOUT);
    let client = probe::client("watch-deploy")?;
    let log = Log { json: args.json };
    log.line(&format!(
        "watching {} deployment(s) for {}: {readings} reading(s), one every {}, each allowed {}",
        args.urls.len(),
        seconds(args.window),
        seconds(args.interval),
        seconds(timeout)
    ));

    let mut records = Vec::new();
    let verdict = watch(&args, readings, timeout, &client, log, &mut records).await;
    log.line(&verdict.line());

    let command = match (&args.on_rollback, &verdict.url) {
        (Some(line), Some(url)) if verdict.is_rollback() => {
            Some(run_rollback(line, url, &verdict.reason, log).await)
        }
        _ => None,
    };

    if args.json {
        let report = WatchReport {
            verdict: &verdict,
            window_ms: report::millis(args.window),
            interval_ms: report::millis(args.interval),
            targets: PerformanceTargets::DEFAULT,
            samples: &records,
            rollback_command: command.as_ref(),
        };
        print_line(&serde_json::to_string(&report)?);
    }
    if verdict.is_rollback() {
        Ok(ExitCode::from(ROLLBACK_EXIT_CODE))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Checks the window and interval, and returns how many readings follow the baseline.
fn reading_count(args: &WatchDeployArgs) -> anyhow::Result<u64> {
    if args.window > MAX_DURATION {
        bail!("--window ({}) is longer than a day", seconds(args.window));
    }
    if args.interval < MIN_INTERVAL {
        bail!(
            "--interval ({}) is shorter than {}",
            seconds(args.interval),
            seconds(MIN_INTERVAL)
        );
    }
    if args.interval > args.window {
        bail!(
            "--interval ({}) is longer than --window ({}); the window must hold at least one reading",
            seconds(args.interval),
            seconds(args.window)
        );
    }
    let readings = args.window.as_nanos() / args.interval.as_nanos();
    if readings > MAX_READINGS {
        bail!("--window / --interval is {readings} readings; at most {MAX_READINGS} are allowed");
    }
    // At most MAX_READINGS, so it fits in a u64.
    Ok(readings as u64)
}

/// Takes the readings, logs and records each sample, and decides.
async fn watch(
    args: &WatchDeployArgs,
    readings: u64,
    timeout: Duration,
    client: &Client,
    log: Log,
    records: &mut Vec<SampleRecord>,
) -> Verdict {
    let targets = PerformanceTargets::DEFAULT;
    let mut watched: Vec<Watched> = args.urls.iter().cloned().map(Watched::new).collect();
    let started = Instant::now();
    for index in 0..=readings {
        if index > 0 {
            // index is at most MAX_READINGS, so it fits in a u32.
            tokio::time::sleep_until(started + args.interval * index as u32).await;
        }
        // Each reading keeps its own completion time, so a slow one does not
        // change when the others are logged as taken.
        let fetched = join_all(watched.iter().map(|deployment| async {
            let reading = reading::fetch(client, &deployment.performance, timeout).await;
            (reading, started.elapsed())
        }))
        .await;
        for (deployment, (fetched, elapsed)) in watched.iter_mut().zip(fetched) {
            let record = deployment.observe(index, elapsed, fetched, &targets, log);
            log.line(&record.line());
            let reason = record.rollback_reason.clone();
            records.push(record);
            if let Some(reason) = reason {
                return Verdict::rollback(
                    Rule::Immediate,
                    deployment.url.as_str(),
                    reason,
                    elapsed,
                );
            }
        }
    }
    for deployment in &watched {
        if let Decision::Rollback(reason) = window_decision(&targets, &deployment.samples) {
            return Verdict::rollback(
                Rule::Window,
                deployment.url.as_str(),
                reason.to_string(),
                started.elapsed(),
            );
        }
    }
    Verdict::healthy(
        format!(
            "every deployment met the targets over the {} window",
            seconds(args.window)
        ),
        started.elapsed(),
    )
}

/// Runs the rollback command and logs how it ended.
async fn run_rollback(line: &str, url: &str, reason: &str, log: Log) -> rollback::CommandOutcome {
    log.line(&format!("running the rollback command: {line}"));
    let outcome = rollback::run(line, url, reason).await;
    if outcome.succeeded() {
        log.line("the rollback command exited 0");
    } else {
        let why = outcome
            .error
            .clone()
            .or_else(|| outcome.exit_code.map(|code| format!("exit status {code}")))
            .unwrap_or_default();
        log.line(&format!(
            "error: the rollback command failed ({why}); roll back by hand"
        ));
    }
    outcome
}
