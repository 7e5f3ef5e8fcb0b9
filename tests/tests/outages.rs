//! Regression tests for outages that once left the origin hanging, or serving data
//! from before an acknowledged write. The outages are a database that refuses
//! connections, SIGTERM during such an outage, writes while Redis is frozen, and a
//! read right after a write when the database is cut.
//!
//! Each test breaks only what it started: a TCP proxy of its own in front of the
//! shared Postgres server, a `redis-server` of its own, or its own test database.
//! The database tests are skipped without `VELRO_TEST_POSTGRES_URL`. Every wait
//! polls with a deadline, and no test asserts latency: requests made during an
//! outage have a client timeout only so that a hang fails the test.

mod common;

use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::json;
use velro_shared::api::{Generation, GenerationStatus, User};

use common::{
    assert_error, cache_status_params, cut_database, header, local_postgres_port, parse_json,
    restore_database, TcpProxy, TestApp, TestUser, ThrowawayRedis, POLL_INTERVAL,
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

/// How long a Redis breaker may take to change state after Redis stops or resumes.
const REDIS_BREAKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the origin may take to exit after SIGTERM. It waits at most 5 s for the
/// generation workers and 5 s for the pool to close. A worker's database call can
/// wait 30 s for a connection during the outage, so this bound catches that wait.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a finished generation's detail read may take to become an L1 hit,
/// after the worker's last invalidation.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Database settings of an origin behind a [`TcpProxy`]: a breaker that opens
/// after 2 failures and probes every 300 ms, and 2 pooled connections.
/// `DB_POOL_TIMEOUT` keeps its 30 s default, which no request may wait out.
const PROXIED_DATABASE_ENV: [(&str, &str); 3] = [
    ("DB_BREAKER_FAILURES", "2"),
    ("DB_BREAKER_RESET_MS", "300"),
    ("DB_POOL_SIZE", "2"),
];

/// Redis breaker settings of the two-instance tests: open after 2 failures and
/// probe every 200 ms, so the breaker closes soon after Redis resumes.
const REDIS_BREAKER_ENV: [(&str, &str); 2] = [
    ("REDIS_BREAKER_FAILURES", "2"),
    ("REDIS_BREAKER_RESET_MS", "200"),
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

/// Returns whether the origin's `cache-status` entry lists `param`.
fn has_param(params: &[String], param: &str) -> bool {
    params.iter().any(|item| item == param)
}

/// Starts an origin whose `DATABASE_URL` leads through a new [`TcpProxy`] to the
/// sandbox's database, with [`PROXIED_DATABASE_ENV`].
///
/// Returns `None` without Postgres, after printing that `test` is skipped.
async fn spawn_behind_proxy(test: &str) -> Option<(TestApp, TcpProxy)> {
    let builder = TestApp::builder();
    let (server_url, database) = builder
        .sandbox()
        .postgres_or_skip(test, "puts a proxy in front of a Postgres server")?;

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

/// Starts two instances on one database, `redis` and one key prefix, with
/// [`REDIS_BREAKER_ENV`]. The first is the one that writes during the outage.
async fn spawn_pair(redis: &ThrowawayRedis) -> (TestApp, TestApp) {
    let mut builder = TestApp::builder().redis(redis);
    for (name, value) in REDIS_BREAKER_ENV {
        builder = builder.env(name, value);
    }
    let writer = builder.spawn().await;

    let mut builder = TestApp::builder().share_database_with(&writer);
    for (name, value) in REDIS_BREAKER_ENV {
        builder = builder.env(name, value);
    }
    let other = builder.spawn().await;
    (writer, other)
}

/// Freezes `redis` and reads generation pages that no earlier call read, so each
/// misses L1 and tries Redis, until `app` reports its Redis breaker open.
async fn pause_redis_until_open(redis: &ThrowawayRedis, app: &TestApp, user: &TestUser) {
    redis.pause();
    let deadline = Instant::now() + REDIS_BREAKER_TIMEOUT;
    let mut limit = 0;
    while app.fetch_health().await.redis != "open" {
        limit += 1;
        let path = format!("/generations?limit={}", 1 + limit % 100);
        get_ok(
            app,
            &path,
            Some(&user.access_token),
            "while Redis is paused",
        )
        .await;
        assert!(
            Instant::now() < deadline,
            "the Redis breaker did not open within {REDIS_BREAKER_TIMEOUT:?} of Redis being paused"
        );
    }
}

/// Resumes `redis` and waits until both instances report their Redis breaker closed.
async fn resume_redis_until_closed(redis: &ThrowawayRedis, apps: [&TestApp; 2]) {
    redis.resume();
    for app in apps {
        app.wait_for_health(
            "close its Redis breaker after Redis resumed",
            REDIS_BREAKER_TIMEOUT,
            |health| health.redis == "closed",
        )
        .await;
    }
}

/// A rename acknowledged while Redis is frozen must not be undone once Redis
/// returns: neither the writer's copy in L2 nor the other instance's L1 copy from
/// before the write may be served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_write_during_redis_outage_survives() {
    let redis = ThrowawayRedis::start().await;
    let (writer, other) = spawn_pair(&redis).await;
    let user = writer.signup().await;
    let token = user.access_token.as_str();

    let original = display_name(&writer, token, "warm-up").await;
    redis.wait_for_entry("/users/profile", &user.user.id).await;
    assert_eq!(
        display_name(&other, token, "warm-up").await,
        original,
        "the other instance before the outage"
    );

    pause_redis_until_open(&redis, &writer, &user).await;
    let during = "while Redis is paused";
    let update = rename(&writer, token, "Renamed while Redis was paused")
        .await
        .unwrap_or_else(|error| panic!("{during}: {error}"));
    let updated: User = parse_json(update, 200).await;
    assert_eq!(
        updated.display_name, "Renamed while Redis was paused",
        "{during}"
    );

    resume_redis_until_closed(&redis, [&writer, &other]).await;
    let after = "after Redis resumed";
    assert_eq!(
        display_name(&writer, token, after).await,
        "Renamed while Redis was paused",
        "the writing instance {after} served the profile from before its own acknowledged write"
    );
    assert_eq!(
        display_name(&other, token, after).await,
        "Renamed while Redis was paused",
        "the other instance {after} served the profile from before the write"
    );
}

/// A delete acknowledged while Redis is frozen must not be undone once Redis
/// returns: the completed generation, cached in L2 and in both instances' L1 before
/// the outage, must stay gone on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_delete_during_redis_outage_survives() {
    let redis = ThrowawayRedis::start().await;
    let (writer, other) = spawn_pair(&redis).await;
    let user = writer.signup().await;
    let token = user.access_token.as_str();
    let generation = writer.new_generation(token, "a fox", None).await;
    writer
        .wait_for_generation_status(token, &generation.id, GenerationStatus::Completed)
        .await;
    let path = format!("/generations/{}", generation.id);

    // The worker may invalidate the generation once more just after finishing, so
    // warm up until a read is an L1 hit, which Redis confirmed as current.
    let deadline = Instant::now() + WARM_UP_TIMEOUT;
    loop {
        let response = get_ok(&writer, &path, Some(token), "warm-up").await;
        let params = cache_status_params(&response);
        let cached: Generation = parse_json(response, 200).await;
        if has_param(&params, "hit") && cached.status == GenerationStatus::Completed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} was not an L1 hit of the completed generation within \
             {WARM_UP_TIMEOUT:?}: {params:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    redis.wait_for_entry(&path, &user.user.id).await;
    get_ok(&other, &path, Some(token), "warm-up").await;

    pause_redis_until_open(&redis, &writer, &user).await;
    let during = "while Redis is paused";
    let delete = writer
        .authed(Method::DELETE, &path, token)
        .timeout(CLIENT_TIMEOUT)
        .send()
        .await
        .unwrap_or_else(|error| {
            panic!("{during}: DELETE {path} got no response within {CLIENT_TIMEOUT:?}: {error}")
        });
    assert_eq!(delete.status(), 204, "{during}: DELETE {path}");

    resume_redis_until_closed(&redis, [&writer, &other]).await;
    let after = "after Redis resumed";
    for (instance, app) in [("writing", &writer), ("other", &other)] {
        let response = get(app, &path, Some(token))
            .await
            .unwrap_or_else(|error| panic!("{after}: {error}"));
        let cache_status = header(&response, "cache-status");
        let status = response.status().as_u16();
        assert_eq!(
            status, 404,
            "the {instance} instance {after} served GET {path} with cache-status {cache_status:?}, \
             though the generation was deleted while Redis was paused"
        );
    }
}

/// A profile read right after a rename is served from the cache when the database
/// is cut in between, because the rename stored the new profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_readable_after_write_and_cut() {
    let builder = TestApp::builder();
    let Some((server_url, database)) = builder.sandbox().postgres_or_skip(
        "profile_readable_after_write_and_cut",
        "cuts a Postgres database",
    ) else {
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
