//! Regression tests for outages that once left the origin hanging, or serving data
//! from before an acknowledged write. The outages are a database that refuses
//! connections, SIGTERM during such an outage, and a read right after a write when
//! the database is cut.
//!
//! Each test breaks only what it started: a TCP proxy of its own in front of the
//! shared Postgres server, or its own test database. The tests are skipped without
//! `VELRO_TEST_POSTGRES_URL`. Every wait polls with a deadline, and no test asserts
//! latency: requests made during an outage have a client timeout only so that a
//! hang fails the test.

mod common;

use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::json;
use velro_shared::api::User;

use common::{
    assert_error, cut_database, header, local_postgres_port, parse_json, restore_database,
    TcpProxy, TestApp, POLL_INTERVAL,
};

/// Bound on each request while a dependency is failing. The origin should respond
/// in milliseconds, so this only turns a hang, such as a 30 s wait for a database
/// connection, into a failure.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the database breaker may take to open once the database refuses
/// connections and no request arrives. A heartbeat every second should open it
/// after `DB_BREAKER_FAILURES` (2 here) failed checks, in about 2-3 s.
const DATABASE_OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `/health/ready` may take to return 200 once the database accepts
/// connections again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the origin may take to exit after SIGTERM.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Database settings of an origin behind a [`TcpProxy`]: a breaker that opens
/// after 2 failures and probes every 300 ms, and 2 pooled connections.
/// `DB_POOL_TIMEOUT` keeps its 30 s default, which no request may wait out.
const PROXIED_DATABASE_ENV: [(&str, &str); 3] = [
    ("DB_BREAKER_FAILURES", "2"),
    ("DB_BREAKER_RESET_MS", "300"),
    ("DB_POOL_SIZE", "2"),
];

/// Sends `GET path` with `CLIENT_TIMEOUT`, with a bearer token unless `token` is `None`.
async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Result<Response, String> {
    let mut request = app.request(Method::GET, path).timeout(CLIENT_TIMEOUT);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .map_err(|error| format!("GET {path} got no response within {CLIENT_TIMEOUT:?}: {error}"))
}

/// Sends `GET path` and panics unless the origin returns 200 within `CLIENT_TIMEOUT`.
async fn get_ok(app: &TestApp, path: &str, token: Option<&str>, during: &str) -> Response {
    let response = get(app, path, token)
        .await
        .unwrap_or_else(|error| panic!("{during}: {error}"));
    assert_eq!(response.status(), 200, "{during}: GET {path}");
    response
}

/// Sends `PATCH /users/profile` with a new display name, a bearer token and `CLIENT_TIMEOUT`.
async fn rename(app: &TestApp, token: &str, name: &str) -> Result<Response, String> {
    app.authed(Method::PATCH, "/users/profile", token)
        .json(&json!({ "display_name": name }))
        .timeout(CLIENT_TIMEOUT)
        .send()
        .await
        .map_err(|error| {
            format!("PATCH /users/profile got no response within {CLIENT_TIMEOUT:?}: {error}")
        })
}

/// Reads the profile with `CLIENT_TIMEOUT` and returns the display name. Panics unless the status is 200.
async fn display_name(app: &TestApp, token: &str, during: &str) -> String {
    let response = get_ok(app, "/users/profile", Some(token), during).await;
    let user: User = parse_json(response, 200).await;
    user.display_name
}

/// Starts an origin whose `DATABASE_URL` leads through a new [`TcpProxy`] to the
/// sandbox's database, with [`PROXIED_DATABASE_ENV`].
///
/// Returns `None` without Postgres, after printing that `test` is skipped.
async fn spawn_behind_proxy(test: &str) -> Option<(TestApp, TcpProxy)> {
    let builder = TestApp::builder();
    let (Some(server_url), Some(database)) = (
        builder.sandbox().postgres_server_url().map(str::to_owned),
        builder
            .sandbox()
            .postgres_database_name()
            .map(str::to_owned),
    ) else {
        eprintln!(
            "skipping {test}: it puts a proxy in front of a Postgres server; set \
             VELRO_TEST_POSTGRES_URL to run it"
        );
        return None;
    };

    let proxy = TcpProxy::start(local_postgres_port(&server_url)).await;
    let mut builder = builder.env("DATABASE_URL", &proxy.database_url(&server_url, &database));
    for (name, value) in PROXIED_DATABASE_ENV {
        builder = builder.env(name, value);
    }
    let app = builder.spawn().await;
    Some((app, proxy))
}

/// Stops `proxy` and waits until `app` reports its database breaker open, which it
/// must do without any request arriving.
async fn stop_proxy_until_breaker_opens(app: &TestApp, proxy: &mut TcpProxy) {
    proxy.stop().await;
    let stopped_at = Instant::now();
    app.wait_for_health(
        "open its database breaker while idle after the database started refusing connections",
        DATABASE_OPEN_TIMEOUT,
        |health| health.database == "open",
    )
    .await;
    eprintln!(
        "the database breaker opened {:?} after the proxy stopped",
        stopped_at.elapsed()
    );
}

/// Polls `GET /health/ready` until it returns 200, and fails the test after `RECOVERY_TIMEOUT`.
async fn wait_until_ready(app: &TestApp, after: &str) {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        let status = get(app, "/health/ready", None)
            .await
            .map(|response| response.status().as_u16());
        if status == Ok(200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/health/ready was not 200 within {RECOVERY_TIMEOUT:?} {after}; last result: {status:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_database_rejects_writes_then_recovers() {
    let Some((app, mut proxy)) =
        spawn_behind_proxy("refused_database_rejects_writes_then_recovers").await
    else {
        return;
    };
    let user = app.signup().await;
    let token = user.access_token.as_str();
    get_ok(&app, "/models", None, "warm-up").await;
    get_ok(&app, "/users/profile", Some(token), "warm-up").await;

    stop_proxy_until_breaker_opens(&app, &mut proxy).await;

    let during = "while the database refuses connections";
    let write = rename(&app, token, "Renamed during the outage")
        .await
        .unwrap_or_else(|error| panic!("{during}: {error}"));
    assert!(
        header(&write, "retry-after").is_some(),
        "a write {during} should carry retry-after"
    );
    assert_error(write, 503, "service_unavailable").await;
    get_ok(&app, "/models", None, during).await;
    assert_eq!(
        display_name(&app, token, during).await,
        user.user.display_name,
        "the warmed profile {during}"
    );

    proxy.start_again().await;
    wait_until_ready(&app, "of the proxy starting again").await;
    let after = "after the database returned";
    let update = app
        .update_profile(
            token,
            &json!({ "display_name": "Renamed after the outage" }),
        )
        .await;
    let updated: User = parse_json(update, 200).await;
    assert_eq!(updated.display_name, "Renamed after the outage", "{after}");
    assert_eq!(
        display_name(&app, token, after).await,
        "Renamed after the outage",
        "the profile read {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_after_database_outage() {
    let Some((mut app, mut proxy)) =
        spawn_behind_proxy("sigterm_exits_after_database_outage").await
    else {
        return;
    };
    stop_proxy_until_breaker_opens(&app, &mut proxy).await;

    app.send_sigterm();
    let sent_at = Instant::now();
    let status = app.wait_for_exit(SHUTDOWN_TIMEOUT).await;
    assert!(
        status.is_some(),
        "velro-origin was still running {SHUTDOWN_TIMEOUT:?} after SIGTERM while the database \
         refused connections"
    );
    eprintln!(
        "velro-origin exited with {:?} {:?} after SIGTERM",
        status,
        sent_at.elapsed()
    );
}

/// A profile read right after a rename is served from the cache when the database
/// is cut in between, because the rename stored the new profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_readable_after_write_and_cut() {
    let builder = TestApp::builder();
    let (Some(server_url), Some(database)) = (
        builder.sandbox().postgres_server_url().map(str::to_owned),
        builder
            .sandbox()
            .postgres_database_name()
            .map(str::to_owned),
    ) else {
        eprintln!(
            "skipping profile_readable_after_write_and_cut: it cuts a Postgres database; set \
             VELRO_TEST_POSTGRES_URL to run it"
        );
        return;
    };
    let app = builder.spawn().await;
    let user = app.signup().await;
    let token = user.access_token.as_str();
    display_name(&app, token, "warm-up").await;

    let update = app
        .update_profile(token, &json!({ "display_name": "Renamed before the cut" }))
        .await;
    let updated: User = parse_json(update, 200).await;
    assert_eq!(updated.display_name, "Renamed before the cut");
    cut_database(&server_url, &database).await;

    let during = "right after the rename, with the database cut";
    let response = get(&app, "/users/profile", Some(token))
        .await
        .unwrap_or_else(|error| panic!("{during}: {error}"));
    let cache_status = header(&response, "cache-status");
    let read: User = parse_json(response, 200).await;
    assert_eq!(
        read.display_name, "Renamed before the cut",
        "{during}; cache-status {cache_status:?}"
    );
    eprintln!("the profile read {during} had cache-status {cache_status:?}");

    restore_database(&server_url, &database).await;
    wait_until_ready(&app, "of the database being restored").await;
}
