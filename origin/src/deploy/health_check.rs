//! `velro-origin health-check`: polls `URL/health/ready` until it returns 200
//! or the timeout passes, printing each attempt, for the deploy job's gate
//! before traffic moves to a new deployment.
//!
//! With `--release`, a 200 counts only when the body reports that `RELEASE`.
//! Until Railway swaps deployments, the URL is still served by the previous
//! deployment, which is ready too, so without the check the gate could pass
//! before the new build is running.

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode, Url};
use velro_shared::api::{Readiness, StepOutcome};

use super::probe::{self, describe_failure, endpoint, millis, seconds};
use crate::cli::values::{parse_base_url, parse_positive_duration};

/// Maximum duration of one attempt. A hung server costs at most this much per
/// attempt, and the overall timeout bounds the whole command.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `health-check`.
#[derive(Debug, clap::Args)]
pub struct HealthCheckArgs {
    /// Root URL of the deployment, such as https://us-west1-green.origin.velro.example.
    #[arg(long, value_name = "URL", value_parser = parse_base_url)]
    pub url: Url,

    /// How long to keep trying before reporting the deployment unhealthy.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Pause between the end of one attempt and the start of the next.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_positive_duration)]
    pub interval: Duration,

    /// Count a 200 only when it reports this RELEASE, such as the commit SHA being deployed.
    #[arg(long, value_name = "RELEASE")]
    pub release: Option<String>,
}

/// Result of one attempt.
enum Outcome {
    Ready,
    /// 200, but from a deployment running another release.
    OtherRelease(Option<String>),
    /// Any other status, with the readiness reason when the body has one.
    NotReady(StatusCode, String),
    /// No response at all.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ready => f.write_str("200 OK, ready"),
            Outcome::OtherRelease(Some(found)) => {
                write!(f, "200 OK, but release {found} is serving")
            }
            Outcome::OtherRelease(None) => {
                f.write_str("200 OK, but from a deployment without a RELEASE")
            }
            Outcome::NotReady(status, why) => write!(f, "{status}, not ready: {why}"),
            Outcome::Failed(why) => f.write_str(why),
        }
    }
}

/// Runs the command: exit 0 once ready, 1 when the timeout passes first.
pub async fn run(args: HealthCheckArgs) -> anyhow::Result<ExitCode> {
    let client = probe::client("health-check")?;
    let url = endpoint(&args.url, "health/ready");
    let started = Instant::now();
    let deadline = started + args.timeout;
    println!("checking {url} for up to {}", seconds(args.timeout));

    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(ATTEMPT_TIMEOUT);
        let sent = Instant::now();
        let outcome = attempt_once(&client, &url, budget, args.release.as_deref()).await;
        println!("attempt {attempt}: {outcome} ({})", millis(sent.elapsed()));
        if matches!(outcome, Outcome::Ready) {
            println!(
                "healthy after {attempt} attempt(s) in {}",
                seconds(started.elapsed())
            );
            return Ok(ExitCode::SUCCESS);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        tokio::time::sleep(args.interval.min(remaining)).await;
        if Instant::now() >= deadline {
            break;
        }
    }
    println!(
        "unhealthy: {url} was not ready within {} ({attempt} attempt(s))",
        seconds(args.timeout)
    );
    Ok(ExitCode::FAILURE)
}

async fn attempt_once(
    client: &Client,
    url: &Url,
    timeout: Duration,
    release: Option<&str>,
) -> Outcome {
    let response = match client.get(url.clone()).timeout(timeout).send().await {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(describe_failure(&error, timeout)),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return Outcome::Failed(describe_failure(&error, timeout)),
    };
    let readiness: Option<Readiness> = serde_json::from_slice(&body).ok();
    if status != StatusCode::OK {
        let why = match readiness {
            Some(Readiness {
                reason: Some(reason),
                ..
            }) => reason,
            Some(readiness) => warm_up_progress(&readiness),
            None => "the body is not a readiness report".to_string(),
        };
        return Outcome::NotReady(status, why);
    }
    match release {
        None => Outcome::Ready,
        Some(expected) => {
            let found = readiness.and_then(|readiness| readiness.release);
            if found.as_deref() == Some(expected) {
                Outcome::Ready
            } else {
                Outcome::OtherRelease(found)
            }
        }
    }
}

/// Describes a warm-up in progress, such as `warming up, 2 of 5 steps done`.
fn warm_up_progress(readiness: &Readiness) -> String {
    let done = readiness
        .steps
        .iter()
        .filter(|step| step.outcome != StepOutcome::Pending)
        .count();
    format!("warming up, {done} of {} steps done", readiness.steps.len())
}
