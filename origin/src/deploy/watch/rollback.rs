//! Running the `--on-rollback` command.

use std::os::fd::AsFd as _;
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::process::Command;

use crate::deploy::probe::seconds;

/// Maximum run time of the rollback command. A `wrangler rollback` takes
/// seconds, so a command still running after this is stuck.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// Result of the rollback command.
#[derive(Debug, Clone, Serialize)]
pub struct CommandOutcome {
    pub command: String,
    /// The exit status; `None` when it could not start or a signal ended it.
    pub exit_code: Option<i32>,
    /// Reason it could not start, or the signal that ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CommandOutcome {
    /// Returns whether the command ran and exited 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Runs `command` with `sh -c`, waits for it, and reports how it ended. It
/// reads the deployment and the reason from `VELRO_ROLLBACK_URL` and
/// `VELRO_ROLLBACK_REASON`, so it can quote them, for example in a
/// deployment message. Its standard output goes to the watcher's standard
/// error, which keeps the watcher's `--json` output a single object.
pub async fn run(command: &str, url: &str, reason: &str) -> CommandOutcome {
    run_within(command, url, reason, COMMAND_TIMEOUT).await
}

async fn run_within(command: &str, url: &str, reason: &str, timeout: Duration) -> CommandOutcome {
    let failed = |error: String| CommandOutcome {
        command: command.to_string(),
        exit_code: None,
        error: Some(error),
    };
    let stdout = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Stdio::from(fd),
        Err(_) => Stdio::null(),
    };
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("VELRO_ROLLBACK_URL", url)
        .env("VELRO_ROLLBACK_REASON", reason)
        .stdin(Stdio::null())
        .stdout(stdout)
        // Dropping the child after the timeout kills `sh`.
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => return failed(format!("could not start sh: {error}")),
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => CommandOutcome {
            command: command.to_string(),
            exit_code: status.code(),
            error: status
                .code()
                .is_none()
                .then(|| format!("ended by a signal ({status})")),
        },
        Ok(Err(error)) => failed(format!("waiting for sh failed: {error}")),
        // NOTE: only `sh` is killed; a program it started in the background keeps running.
        Err(_) => failed(format!(
            "timed out after {} and was killed",
            seconds(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn command_sees_url_and_reason() {
        let outcome = run(
            r#"test "$VELRO_ROLLBACK_URL" = "http://a/" && test "$VELRO_ROLLBACK_REASON" = "slow""#,
            "http://a/",
            "slow",
        )
        .await;
        assert!(outcome.succeeded(), "{outcome:?}");
    }

    #[tokio::test]
    async fn hung_command_is_killed() {
        let outcome = run_within("sleep 30", "http://a/", "slow", Duration::from_millis(200)).await;
        assert_eq!(outcome.exit_code, None);
        assert_eq!(
            outcome.error.as_deref(),
            Some("timed out after 0.2 s and was killed")
        );
    }

    #[tokio::test]
    async fn failing_command_reports_its_status() {
        let outcome = run("exit 7", "http://a/", "slow").await;
        assert_eq!(outcome.exit_code, Some(7));
        assert!(!outcome.succeeded());
    }
}
