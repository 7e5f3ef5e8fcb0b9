//! The deploy job's commands against a real origin: `health-check` before and
//! after readiness and against a closed port, and `watch-deploy` under load from
//! `loadtest`, with a healthy deployment, a database that breaks, and an origin
//! that stops responding.

mod common;

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use common::{cut_database, restore_database, Sandbox, TestApp};

/// Exit status of `watch-deploy` after a rollback decision.
const ROLLBACK_EXIT: i32 = 2;

/// Bound on every command of these tests, so a hang fails the test.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// Interval of the watchers here: short, so the tests take seconds.
const INTERVAL: &str = "1s";
const INTERVAL_MS: u64 = 1_000;

/// Three users, as `loadtest --users 3` logs in as demo1..demo3.
const SEED_ARGS: [&str; 5] = ["seed", "--users", "3", "--generations-per-user", "4"];

/// The rollback command: it writes the reason into a marker file, so the test
/// can check that it ran and which reason it received.
const MARKER: &str = "rolled-back";
const ROLLBACK_COMMAND: &str = r#"printf '%s' "$VELRO_ROLLBACK_REASON" > rolled-back"#;

/// A child process whose standard error is read line by line as it runs.
struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
    started: Instant,
}

impl Running {
    fn spawn(command: std::process::Command) -> Running {
        let description = format!("{command:?}");
        let mut command = Command::from(command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("{description} did not start: {error}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let sink = Arc::clone(&stderr);
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        Running {
            child,
            stderr,
            reader,
            started,
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Waits until standard error contains `text`; panics when the process exits
    /// first or after [`COMMAND_TIMEOUT`].
    async fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        while !self.stderr().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader catch up with the last lines before reporting them.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("exited ({status}) before {text:?}:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} on standard error within {COMMAND_TIMEOUT:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the exit and returns the status, standard output and standard error.
    async fn finish(mut self) -> (ExitStatus, String, String) {
        let mut stdout = self.child.stdout.take().expect("stdout is piped");
        let read_stdout = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text).await;
            text
        });
        let status = tokio::time::timeout(COMMAND_TIMEOUT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within {COMMAND_TIMEOUT:?}:\n{}", self.stderr()))
            .expect("the exit status is readable");
        let stdout = read_stdout.await.unwrap_or_default();
        let stderr = Arc::clone(&self.stderr);
        let _ = self.reader.await;
        let stderr = stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        (status, stdout, stderr)
    }
}

/// Starts an open-model load test that runs longer than any watch here.
async fn start_load(app: &TestApp) -> Running {
    let mut load = Running::spawn(app.sandbox().command(&[
        "loadtest",
        "--base-url",
        &app.base_url,
        "--users",
        "3",
        "--duration",
        "40s",
        "--rate",
        "40",
    ]));
    load.wait_for("load test started").await;
    load
}

/// Starts `watch-deploy --json` against `app` with the test's interval.
fn start_watch(app: &TestApp, window: &str) -> Running {
    Running::spawn(app.sandbox().command(&[
        "watch-deploy",
        "--url",
        &app.base_url,
        "--window",
        window,
        "--interval",
        INTERVAL,
        "--on-rollback",
        ROLLBACK_COMMAND,
        "--json",
    ]))
}

/// Runs `velro-origin <args>` in `sandbox` to completion.
async fn run_origin(sandbox: &Sandbox, args: &[&str]) -> common::CommandOutput {
    sandbox.run(sandbox.command(args), COMMAND_TIMEOUT).await
}

/// Returns the URL of a port on 127.0.0.1 that was free a moment ago and has
/// no listener, so connections to it are refused.
fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

fn parse_report(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!("watch-deploy --json printed no JSON object ({error}):\n{stdout}\n{stderr}")
    })
}

fn samples(report: &Value) -> Vec<Value> {
    report["samples"].as_array().cloned().unwrap_or_default()
}

fn marker(sandbox: &Sandbox) -> Option<String> {
    std::fs::read_to_string(sandbox.path().join(MARKER)).ok()
}

async fn seeded_app(builder: common::TestAppBuilder) -> TestApp {
    builder.sandbox().run_ok(&["migrate"]).await;
    builder.sandbox().run_ok(&SEED_ARGS).await;
    builder.spawn().await
}

/// Runs `health-check` against `app` every 200 ms for up to `timeout`.
async fn health_check(
    app: &TestApp,
    timeout: &str,
    release: Option<&str>,
) -> common::CommandOutput {
    let mut args = vec![
        "health-check",
        "--url",
        &app.base_url,
        "--timeout",
        timeout,
        "--interval",
        "200ms",
    ];
    if let Some(release) = release {
        args.extend(["--release", release]);
    }
    run_origin(app.sandbox(), &args).await
}

#[tokio::test]
async fn health_check_waits_for_readiness() {
    let app = TestApp::builder()
        .env("WARMUP_HOLD_MS", "3000")
        .env("RELEASE", "3f9c2e1")
        .spawn_listening()
        .await;

    // Too short for the hold: every attempt gets 503 and the command gives up.
    let early = health_check(&app, "1s", None).await;
    assert_eq!(early.status.code(), Some(1), "{}", early.combined());
    assert!(
        early
            .stdout
            .contains("attempt 1: 503 Service Unavailable, not ready: warming up"),
        "{}",
        early.combined()
    );
    assert!(early.stdout.contains("unhealthy:"), "{}", early.combined());

    // Long enough: the attempts go from 503 to 200.
    let waited = health_check(&app, "60s", Some("3f9c2e1")).await;
    assert_eq!(waited.status.code(), Some(0), "{}", waited.combined());
    let lines: Vec<&str> = waited.stdout.lines().collect();
    let last_attempt = lines
        .iter()
        .rev()
        .find(|line| line.starts_with("attempt "))
        .expect("an attempt line");
    assert!(
        last_attempt.contains(": 200 OK, ready ("),
        "{}",
        waited.stdout
    );
    assert!(
        lines
            .last()
            .is_some_and(|line| line.starts_with("healthy after ")),
        "{}",
        waited.stdout
    );

    // Ready, but running another release: the gate does not pass.
    let other = health_check(&app, "1s", Some("a0b1c2d")).await;
    assert_eq!(other.status.code(), Some(1), "{}", other.combined());
    assert!(
        other
            .stdout
            .contains("200 OK, but release 3f9c2e1 is serving"),
        "{}",
        other.combined()
    );
}

#[tokio::test]
async fn health_check_closed_port_times_out() {
    let sandbox = Sandbox::new();
    let url = closed_port_url();

    let started = Instant::now();
    let output = sandbox
        .run(
            sandbox.command(&[
                "health-check",
                "--url",
                &url,
                "--timeout",
                "2s",
                "--interval",
                "500ms",
            ]),
            Duration::from_secs(20),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", output.combined());
    let attempts = output
        .stdout
        .lines()
        .filter(|line| line.starts_with("attempt ") && line.contains("could not connect"))
        .count();
    assert!(
        (3..=5).contains(&attempts),
        "{attempts} attempts:\n{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("was not ready within 2.0 s"),
        "{}",
        output.stdout
    );
    // The timeout bounds the command; process start-up gets a few seconds on a busy machine.
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn watch_deploy_passes_healthy_deployment() {
    let app = seeded_app(TestApp::builder()).await;
    let load = start_load(&app).await;

    let watch = start_watch(&app, "4s");
    let (status, stdout, stderr) = watch.finish().await;
    drop(load);

    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    let report = parse_report(&stdout, &stderr);
    assert_eq!(report["decision"], "healthy", "{report}");
    assert_eq!(report["window_ms"], 4_000, "{report}");
    let samples = samples(&report);
    let kinds: Vec<&str> = samples
        .iter()
        .filter_map(|sample| sample["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["baseline", "traffic", "traffic", "traffic", "traffic"],
        "{report}"
    );
    for sample in &samples[1..] {
        assert!(
            sample["requests"].as_u64().unwrap_or_default() > 0,
            "{sample}"
        );
        assert_eq!(sample["error_rate_percent"], 0.0, "{sample}");
        assert_eq!(sample["availability_percent"], 100.0, "{sample}");
    }
    assert!(report["rollback_command"].is_null(), "{report}");
    assert_eq!(marker(app.sandbox()), None);
    // The log names each sample and the decision.
    assert!(stderr.contains("sample 4: "), "{stderr}");
    assert!(stderr.contains("decision: healthy"), "{stderr}");
}

#[tokio::test]
async fn watch_deploy_rolls_back_broken_database() {
    let builder = TestApp::builder();
    let Some((server_url, database)) = builder.sandbox().postgres_or_skip(
        "watch_deploy_rolls_back_broken_database",
        "cuts a Postgres database",
    ) else {
        return;
    };
    let app = seeded_app(builder).await;
    let load = start_load(&app).await;

    let mut watch = start_watch(&app, "60s");
    // Two healthy intervals first, then the database goes away under load.
    watch.wait_for(" sample 2: ").await;
    cut_database(&server_url, &database).await;
    let cut_done_ms = u64::try_from(watch.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, stdout, stderr) = watch.finish().await;
    restore_database(&server_url, &database).await;
    drop(load);

    assert_eq!(status.code(), Some(ROLLBACK_EXIT), "{stdout}\n{stderr}");
    let report = parse_report(&stdout, &stderr);
    assert_eq!(report["decision"], "rollback", "{report}");
    assert_eq!(report["rule"], "immediate", "{report}");
    let reason = report["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.starts_with("error rate ") || reason.starts_with("availability "),
        "{reason}"
    );

    // Every sample before the last was within the limits; the last decided.
    let samples = samples(&report);
    let (last, earlier) = samples.split_last().expect("samples");
    assert!(
        earlier
            .iter()
            .all(|sample| sample["rollback_reason"].is_null()),
        "{report}"
    );
    assert_eq!(last["rollback_reason"], reason.as_str(), "{report}");
    assert_eq!(last["kind"], "traffic", "{report}");

    // Decided at the first reading after the errors began: within one interval
    // of the cut, plus a little for the machine's scheduling.
    let decided = report["decided_after_ms"].as_u64().unwrap_or(u64::MAX);
    eprintln!("cut done at {cut_done_ms} ms, rollback decided at {decided} ms: {reason}");
    assert!(
        decided <= cut_done_ms + INTERVAL_MS + 500,
        "decided {decided} ms after start, cut done at {cut_done_ms} ms: {report}"
    );

    // The command ran once, with the reason.
    assert_eq!(report["rollback_command"]["exit_code"], 0, "{report}");
    assert_eq!(marker(app.sandbox()).as_deref(), Some(reason.as_str()));
}

#[tokio::test]
async fn watch_deploy_rolls_back_frozen_origin() {
    let app = seeded_app(TestApp::builder()).await;
    let load = start_load(&app).await;

    let mut watch = start_watch(&app, "60s");
    watch.wait_for(" sample 1: ").await;
    app.freeze();
    let frozen_ms = u64::try_from(watch.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, stdout, stderr) = watch.finish().await;
    app.resume();
    drop(load);

    assert_eq!(status.code(), Some(ROLLBACK_EXIT), "{stdout}\n{stderr}");
    let report = parse_report(&stdout, &stderr);
    assert_eq!(report["rule"], "immediate", "{report}");
    assert_eq!(
        report["reason"], "availability 0.00 % is below the 95.00 % floor",
        "{report}"
    );
    let samples = samples(&report);
    let last = samples.last().expect("samples");
    assert_eq!(last["kind"], "unavailable", "{report}");
    assert_eq!(
        last["error"], "no complete response within 1.0 s",
        "{report}"
    );
    // The next reading starts within one interval of the freeze and times out
    // after one more (the reading timeout is the interval when under 5 s).
    let decided = report["decided_after_ms"].as_u64().unwrap_or(u64::MAX);
    eprintln!("frozen at {frozen_ms} ms, rollback decided at {decided} ms");
    assert!(
        decided <= frozen_ms + 2 * INTERVAL_MS + 500,
        "decided {decided} ms after start, frozen at {frozen_ms} ms: {report}"
    );
    assert!(marker(app.sandbox()).is_some());
}

#[tokio::test]
async fn watch_deploy_exit_codes() {
    let sandbox = Sandbox::new();
    // Usage errors and unusable options exit 1, never the rollback status.
    let rejected: [(&[&str], &str); 4] = [
        (&["--windw", "5s"], "unexpected argument '--windw'"),
        (
            &["--window", "1s", "--interval", "5s"],
            "--interval (5.0 s) is longer than --window (1.0 s)",
        ),
        (
            &["--window", "1s", "--interval", "1ms"],
            "--interval (0.0 s) is shorter than 1.0 s",
        ),
        (&["--on-rollback", " "], "must not be empty"),
    ];
    for (options, message) in rejected {
        let mut args = vec!["watch-deploy", "--url", "http://127.0.0.1:9"];
        args.extend_from_slice(options);
        let output = run_origin(&sandbox, &args).await;
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            output.combined()
        );
        assert!(
            output.stderr.contains(message),
            "{args:?}: {}",
            output.combined()
        );
    }

    // Nothing to read at all: the first reading fails and the decision is rollback.
    let closed = run_origin(
        &sandbox,
        &[
            "watch-deploy",
            "--url",
            &closed_port_url(),
            "--window",
            "2s",
            "--interval",
            "1s",
            "--on-rollback",
            ROLLBACK_COMMAND,
        ],
    )
    .await;
    assert_eq!(
        closed.status.code(),
        Some(ROLLBACK_EXIT),
        "{}",
        closed.combined()
    );
    assert!(
        closed.stdout.contains("could not connect"),
        "{}",
        closed.stdout
    );

    let written = std::fs::read_to_string(Path::new(sandbox.path()).join(MARKER));
    assert_eq!(
        written.ok().as_deref(),
        Some("availability 0.00 % is below the 95.00 % floor")
    );
}

#[tokio::test]
async fn health_check_survives_closed_stdout() {
    let sandbox = Sandbox::new();
    let url = closed_port_url();
    let mut command = Command::from(sandbox.command(&[
        "health-check",
        "--url",
        &url,
        "--timeout",
        "1s",
        "--interval",
        "200ms",
    ]));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("health-check starts");
    // The output pipe is closed, as with `health-check ... | head -1` after head exits.
    drop(child.stdout.take());
    let status = tokio::time::timeout(COMMAND_TIMEOUT, child.wait())
        .await
        .expect("health-check exits")
        .expect("the exit status is readable");
    // 1 for "not ready", not 101 for a panic on the broken pipe.
    assert_eq!(status.code(), Some(1));

    let huge = run_origin(
        &sandbox,
        &[
            "health-check",
            "--url",
            &url,
            "--timeout",
            "18000000000000000000s",
        ],
    )
    .await;
    assert_eq!(huge.status.code(), Some(1), "{}", huge.combined());
    assert!(
        huge.stderr.contains("must be at most 86400.0 s"),
        "{}",
        huge.combined()
    );
}
