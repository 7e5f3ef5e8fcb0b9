//! The operator subcommands (`migrate`, `seed`, `loadtest`) and start-up
//! configuration errors.

mod common;

use std::time::Duration;

use serde_json::Value;
use velro_shared::api::TokenResponse;

use common::{assert_error, parse_json, Sandbox, TestApp, DEMO_PASSWORD};

/// How long a misconfigured server may take to exit.
const CONFIG_ERROR_TIMEOUT: Duration = Duration::from_secs(10);

const SEED_ARGS: [&str; 5] = ["seed", "--users", "3", "--generations-per-user", "4"];

#[tokio::test]
async fn migrate_is_idempotent() {
    let sandbox = Sandbox::new();

    sandbox.run_ok(&["migrate"]).await;
    sandbox.run_ok(&["migrate"]).await;

    if !sandbox.is_postgres() {
        assert!(
            sandbox.path().join("velro.db").is_file(),
            "migrate should create the SQLite database"
        );
    }
}

#[tokio::test]
async fn seed_twice_keeps_three_demo_users() {
    let builder = TestApp::builder();
    builder.sandbox().run_ok(&["migrate"]).await;
    let first = builder.sandbox().run_ok(&SEED_ARGS).await;
    assert!(
        first.combined().contains("demo1@velro.test"),
        "seed should name the demo users\n{}",
        first.combined()
    );
    builder.sandbox().run_ok(&SEED_ARGS).await;
    let app = builder.spawn().await;

    for index in 1..=3 {
        let email = format!("demo{index}@velro.test");
        let tokens: TokenResponse = parse_json(app.login(&email, DEMO_PASSWORD).await, 200).await;
        let page = app.generation_page(&tokens.access_token, "limit=100").await;
        assert_eq!(
            page.items.len(),
            4,
            "{email} should have 4 generations after seeding twice"
        );
    }

    let fourth = app.login("demo4@velro.test", DEMO_PASSWORD).await;
    assert_error(fourth, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn loadtest_reports_json_without_errors() {
    let builder = TestApp::builder();
    builder.sandbox().run_ok(&["migrate"]).await;
    builder.sandbox().run_ok(&SEED_ARGS).await;
    let app = builder.spawn().await;

    let output = app
        .sandbox()
        .run_ok(&[
            "loadtest",
            "--base-url",
            &app.base_url,
            "--users",
            "3",
            "--duration",
            "3s",
            "--think-time",
            "0",
            "--json",
        ])
        .await;

    let report: Value = serde_json::from_str(output.stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "loadtest --json stdout is not JSON: {error}\n{}",
            output.combined()
        )
    });
    let total_requests = report["total_requests"].as_u64();
    assert!(
        total_requests.is_some_and(|total| total > 0),
        "total_requests: {report}"
    );
    assert_eq!(report["errors"].as_u64(), Some(0), "errors: {report}");
    assert!(
        report["endpoints"].is_object(),
        "endpoints should be an object: {report}"
    );
}

#[tokio::test]
async fn invalid_port_stops_startup() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(&["serve"]);
    command.env("PORT", "notanumber");

    let output = sandbox.run(command, CONFIG_ERROR_TIMEOUT).await;

    assert!(
        !output.status.success(),
        "serve should fail with PORT=notanumber\n{}",
        output.combined()
    );
    assert!(
        output.combined().contains("PORT"),
        "the error should name PORT\n{}",
        output.combined()
    );
}

#[tokio::test]
async fn production_requires_jwt_secret() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(&["serve"]);
    command
        .env("ENVIRONMENT", "production")
        .env("PORT", "0")
        .env_remove("JWT_SECRET");

    let output = sandbox.run(command, CONFIG_ERROR_TIMEOUT).await;

    assert!(
        !output.status.success(),
        "serve should fail without JWT_SECRET in production\n{}",
        output.combined()
    );
    assert!(
        output.combined().contains("JWT_SECRET"),
        "the error should name JWT_SECRET\n{}",
        output.combined()
    );
}
