//! Process life cycle: liveness, readiness during and after warm-up, and graceful
//! shutdown on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use velro_shared::api::{GenerationStatus, Health, Readiness, StepOutcome};

use common::{parse_json, TestApp, POLL_INTERVAL};

/// How long the server may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn health_reports_ok() {
    let app = TestApp::spawn().await;

    let health: Health = parse_json(app.health().await, 200).await;

    assert_eq!(health.status, "ok");
    assert!(!health.version.is_empty());
}

#[tokio::test]
async fn readiness_lists_finished_warmup_steps() {
    let app = TestApp::spawn().await;

    let readiness: Readiness = parse_json(app.readiness().await, 200).await;

    assert!(readiness.ready);
    assert!(
        !readiness.steps.is_empty(),
        "warm-up should report its steps"
    );
    for step in &readiness.steps {
        assert!(!step.name.is_empty());
        assert_eq!(step.outcome, StepOutcome::Ok, "step {step:?}");
        assert!(
            step.duration_ms.is_some_and(|ms| ms >= 0.0),
            "step {step:?}"
        );
    }
    assert!(
        readiness.total_ms.is_some_and(|ms| ms >= 0.0),
        "total_ms: {:?}",
        readiness.total_ms
    );
}

#[tokio::test]
async fn readiness_is_unavailable_until_warmup_ends() {
    let hold = Duration::from_millis(1_500);
    let app = TestApp::builder()
        .env("WARMUP_HOLD_MS", &hold.as_millis().to_string())
        .spawn_listening()
        .await;

    let first = app.readiness().await;
    assert_eq!(
        first.status(),
        503,
        "readiness should be held at 503 for {hold:?}"
    );
    let health = app.health().await;
    assert_eq!(health.status(), 200, "liveness must not wait for warm-up");

    let deadline = Instant::now() + Duration::from_secs(30);
    let readiness: Readiness = loop {
        let response = app.readiness().await;
        if response.status() == 200 {
            break parse_json(response, 200).await;
        }
        assert_eq!(
            response.status(),
            503,
            "readiness should only ever be 503 or 200"
        );
        assert!(
            Instant::now() < deadline,
            "readiness still 503 after 30 s\n{}",
            app.logs()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    assert!(readiness.ready);
}

#[tokio::test]
async fn sigterm_exits_cleanly() {
    let mut app = TestApp::spawn().await;

    app.send_sigterm();
    let status = app.wait_for_exit(SHUTDOWN_TIMEOUT).await;

    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {SHUTDOWN_TIMEOUT:?} after SIGTERM\n{}",
            app.logs()
        )
    });
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        app.logs()
    );
    let logs = app.logs().to_lowercase();
    assert!(
        logs.contains("shutdown") || logs.contains("shutting down"),
        "no shutdown line in the logs\n{logs}"
    );
}

#[tokio::test]
async fn sigterm_exits_promptly_during_generation() {
    // With one-minute worker stages, a generation is mid-render when the signal arrives.
    // Supervisors send SIGKILL after a grace period (10 s for `docker stop` by default),
    // so shutdown must not wait for the render to finish.
    let mut app = TestApp::builder()
        .env("GENERATION_STEP_MS", "60000")
        .spawn()
        .await;
    let user = app.signup().await;
    let generation = app.new_generation(&user.access_token, "a fox", None).await;
    app.wait_for_generation_status(
        &user.access_token,
        &generation.id,
        GenerationStatus::Running,
    )
    .await;

    app.send_sigterm();
    let status = app.wait_for_exit(SHUTDOWN_TIMEOUT).await;

    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {SHUTDOWN_TIMEOUT:?} after SIGTERM with a generation running\n{}",
            app.logs()
        )
    });
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        app.logs()
    );
    // The interrupted generation goes back to the queue rather than staying `running`.
    assert!(
        app.logs()
            .contains("shutdown interrupted a generation; requeued it"),
        "no requeue logged\n{}",
        app.logs()
    );
}

#[tokio::test]
async fn requests_in_flight_finish_during_shutdown() {
    let mut app = TestApp::spawn().await;
    let user = app.signup().await;

    // Logins are the slowest requests (argon2), so several are still being served
    // when the signal arrives.
    let mut batch = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let request = app
            .request(Method::POST, "/auth/login")
            .json(&json!({ "email": user.email, "password": user.password }));
        batch.spawn(async move {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await;
            Ok::<_, reqwest::Error>((status, body))
        });
    }

    // The first finished response proves the server is working through the batch.
    let first = batch
        .join_next()
        .await
        .expect("the batch is not empty")
        .expect("the request task should not panic");
    app.send_sigterm();
    let mut outcomes = vec![first];
    while let Some(joined) = batch.join_next().await {
        outcomes.push(joined.expect("the request task should not panic"));
    }

    let mut completed = 0;
    for outcome in outcomes {
        match outcome {
            // A response whose head arrived was accepted, so it must succeed and arrive whole.
            Ok((status, body)) => {
                assert!(
                    status.is_success(),
                    "request accepted before shutdown got {status}\n{}",
                    app.logs()
                );
                let body = body.unwrap_or_else(|error| {
                    panic!("response body cut off during shutdown: {error}")
                });
                assert!(!body.is_empty(), "login response body is empty");
                completed += 1;
            }
            // The server may stop accepting before a request is read; that is not a failure.
            Err(error) => eprintln!("request not served during shutdown: {error}"),
        }
    }
    assert!(completed >= 1, "no request completed");

    let status = app.wait_for_exit(SHUTDOWN_TIMEOUT).await;
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {SHUTDOWN_TIMEOUT:?} after SIGTERM\n{}",
            app.logs()
        )
    });
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}\n{}",
        app.logs()
    );
}
