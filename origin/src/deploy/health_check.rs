//! `velro-origin health-check`: polls `URL/health/ready` until it reports
//! ready or the timeout passes, printing each attempt, for the deploy job's
//! gate before traffic moves to a new deployment.
//!
//! A 200 counts only with a readiness report whose `ready` is true, and with
//! `--release` only when the report also names that `RELEASE`.
//! Until Railway swaps deployments, the URL is still served by the previous
//! deployment, which is ready too, so without the check the gate could pass
//! before the new build is running.

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use reqwest::{Client, StatusCode, Url};
use velro_shared::api::{Readiness, StepOutcome};

use super::probe::{self, endpoint, millis, print_line, seconds};
use super::MAX_DURATION;
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

    /// How long to keep trying before reporting the deployment unhealthy; at most a day.
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
    if args.timeout > MAX_DURATION || args.interval > MAX_DURATION {
        bail!(
            "--timeout and --interval must be at most {}",
            seconds(MAX_DURATION)
        );
    }
    let client = probe::client("health-check")?;
    let url = endpoint(&args.url, "health/ready");
    let started = Instant::now();
    let deadline = started + args.timeout;
    print_line(&format!(
        "checking {url} for up to {}",
        seconds(args.timeout)
    ));

    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(ATTEMPT_TIMEOUT);
        let sent = Instant::now();
        let outcome = attempt_once(&client, &url, budget, args.release.as_deref()).await;
        print_line(&format!(
            "attempt {attempt}: {outcome} ({})",
            millis(sent.elapsed())
        ));
        if matches!(outcome, Outcome::Ready) {
            print_line(&format!(
                "healthy after {attempt} attempt(s) in {}",
                seconds(started.elapsed())
            ));
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
    print_line(&format!(
        "unhealthy: {url} was not ready within {} ({attempt} attempt(s))",
        seconds(args.timeout)
    ));
    Ok(ExitCode::FAILURE)
}

async fn attempt_once(
    client: &Client,
    url: &Url,
    timeout: Duration,
    release: Option<&str>,
) -> Outcome {
    let (status, body) = match probe::get(client, url, timeout).await {
        Ok(response) => response,
        Err(why) => return Outcome::Failed(why),
    };
    let Ok(readiness) = serde_json::from_slice::<Readiness>(&body) else {
        return Outcome::NotReady(status, "the body is not a readiness report".to_string());
    };
    if status != StatusCode::OK || !readiness.ready {
        let why = match &readiness.reason {
            Some(reason) => reason.clone(),
            None => warm_up_progress(&readiness),
        };
        return Outcome::NotReady(status, why);
    }
    match release {
        Some(expected) if readiness.release.as_deref() != Some(expected) => {
            Outcome::OtherRelease(readiness.release)
        }
        _ => Outcome::Ready,
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

#[cfg(test)]
mod tests {
    use axum::http::header::LOCATION;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;

    use super::*;

    /// Starts a fake deployment on 127.0.0.1 whose readiness endpoints each
    /// misbehave in one way, except one that is ready with release `r1`.
    async fn fake_deployment() -> Url {
        let ready = r#"{"ready":true,"steps":[],"total_ms":1.0,"release":"r1"}"#;
        let app = Router::new()
            .route("/ready/health/ready", get(move || async move { ready }))
            .route("/text/health/ready", get(|| async { "OK" }))
            .route(
                "/false/health/ready",
                get(|| async { r#"{"ready":false,"steps":[],"total_ms":null}"# }),
            )
            .route(
                "/moved/health/ready",
                get(|| async {
                    (StatusCode::FOUND, [(LOCATION, "/ready/health/ready")]).into_response()
                }),
            )
            .route(
                "/huge/health/ready",
                get(|| async { vec![b' '; 2 * 1024 * 1024] }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Url::parse(&format!("http://{address}/")).expect("URL")
    }

    async fn outcome(base: &Url, prefix: &str, release: Option<&str>) -> String {
        let client = probe::client("test").expect("client");
        let url = endpoint(base, &format!("{prefix}/health/ready"));
        attempt_once(&client, &url, Duration::from_secs(5), release)
            .await
            .to_string()
    }

    #[tokio::test]
    async fn only_a_ready_report_counts() {
        let base = fake_deployment().await;
        assert_eq!(outcome(&base, "ready", None).await, "200 OK, ready");
        assert_eq!(outcome(&base, "ready", Some("r1")).await, "200 OK, ready");
        assert_eq!(
            outcome(&base, "ready", Some("r2")).await,
            "200 OK, but release r1 is serving"
        );
        assert_eq!(
            outcome(&base, "text", None).await,
            "200 OK, not ready: the body is not a readiness report"
        );
        assert_eq!(
            outcome(&base, "false", Some("r1")).await,
            "200 OK, not ready: warming up, 0 of 0 steps done"
        );
        assert_eq!(
            outcome(&base, "moved", None).await,
            "302 Found, not ready: the body is not a readiness report"
        );
        assert_eq!(
            outcome(&base, "huge", None).await,
            "200 OK with a body over 1024 KiB"
        );
    }
}
