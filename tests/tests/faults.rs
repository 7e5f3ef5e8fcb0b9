//! Degradation and recovery when a dependency fails while requests are in flight:
//! Redis killed and restarted on the same port, Redis frozen with SIGSTOP, and the
//! Postgres database cut off and restored.
//!
//! Each test breaks only what it started: a `redis-server` of its own, or its own
//! test database on the shared Postgres server (those tests are skipped without
//! `VELRO_TEST_POSTGRES_URL`). Breaker reset times are set low so recovery happens
//! within a second or two. Every wait polls with a deadline, and no test asserts
//! latency: each request has a client timeout only so that a hang fails the test.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::json;
use velro_shared::api::{
    ErrorEnvelope, Generation, GenerationPage, GenerationStatus, Project, ProjectList, User,
};

use common::{
    assert_error, cache_status_params, cut_database, header, parse_json, restore_database, TestApp,
    TestUser, ThrowawayRedis, MODEL, POLL_INTERVAL,
};

/// Bound on each request while a dependency is failing. The origin should respond
/// in milliseconds, so this only turns a hang into a failure.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a breaker may take to change state after its dependency fails or returns.
const BREAKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the traffic loops may take to complete the rounds a fault step waits for.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(20);

/// Upper bound on one traffic loop, in case the fault sequence fails before stopping it.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(60);

/// How long an instance may take to pick up invalidations again after Redis returns.
const RESUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the worker may take to finish the generations queued during a fault.
const GENERATION_FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Freshness lifetime of a cached generation list. After it, a read needs the database.
const GENERATION_LIST_FRESHNESS: Duration = Duration::from_secs(10);

/// Breaker settings of every origin in these tests: a short reset time, so the
/// background probe closes a breaker soon after its dependency returns.
const BREAKER_ENV: [(&str, &str); 2] = [
    ("REDIS_BREAKER_RESET_MS", "200"),
    ("DB_BREAKER_RESET_MS", "300"),
];

/// `Warning` header of a response served stale because the database failed: code 111,
/// "Revalidation Failed".
const STALE_WARNING: &str = "111 velro-origin \"Revalidation Failed\"";

/// Starts an origin with the fault-test breaker settings and `redis` as its L2 cache.
async fn spawn_with_redis(redis: &ThrowawayRedis) -> TestApp {
    let mut builder = TestApp::builder().redis(redis);
    for (name, value) in BREAKER_ENV {
        builder = builder.env(name, value);
    }
    builder.spawn().await
}

/// Starts a second instance on the database, Redis and key prefix of `first`.
async fn spawn_second_instance(first: &TestApp) -> TestApp {
    let mut builder = TestApp::builder().share_database_with(first);
    for (name, value) in BREAKER_ENV {
        builder = builder.env(name, value);
    }
    builder.spawn().await
}

/// Returns whether the origin's `cache-status` entry lists `param`.
fn has_param(params: &[String], param: &str) -> bool {
    params.iter().any(|item| item == param)
}

/// Sends `GET path` with `CLIENT_TIMEOUT`, with a bearer token unless `token` is `None`.
async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Result<Response, String> {
    let mut request = app.request(Method::GET, path).timeout(CLIENT_TIMEOUT);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .map_err(|error| format!("GET {path} got no response: {error}"))
}

/// Sends `method path` with a JSON body, a bearer token and `CLIENT_TIMEOUT`.
async fn send_json(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> Result<Response, String> {
    app.authed(method.clone(), path, token)
        .json(body)
        .timeout(CLIENT_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("{method} {path} got no response: {error}"))
}

/// Sends `GET path` and panics unless the origin returns 200 within `CLIENT_TIMEOUT`.
async fn get_ok(app: &TestApp, path: &str, token: Option<&str>, during: &str) -> Response {
    let response = get(app, path, token)
        .await
        .unwrap_or_else(|error| panic!("{during}: {error}"));
    assert_eq!(response.status(), 200, "{during}: GET {path}");
    response
}

/// Collects all of a user's generations, following `next_cursor`.
async fn all_generations(app: &TestApp, token: &str) -> Vec<Generation> {
    let mut generations = Vec::new();
    let mut query = "limit=100".to_owned();
    loop {
        let page: GenerationPage = app.generation_page(token, &query).await;
        generations.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query = format!("limit=100&cursor={cursor}"),
            None => return generations,
        }
    }
}

/// Collects the ids of all of a user's projects.
async fn all_project_ids(app: &TestApp, token: &str) -> HashSet<String> {
    let list: ProjectList = parse_json(app.list_projects(token).await, 200).await;
    list.items.into_iter().map(|item| item.id).collect()
}

/// State shared by the traffic loops and the fault sequence that runs beside them.
struct Traffic {
    /// Set by the fault sequence when it is done; each loop finishes its round and returns.
    stop: AtomicBool,
    /// Rounds completed by all loops together, so a fault step can wait for traffic to pass.
    rounds: AtomicUsize,
    /// Pause between two rounds of one loop, which bounds the request rate.
    pause: Duration,
}

/// What a traffic loop does in each round.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// Reads the user's profile and generation list and the model catalogue; each
    /// read must return 200.
    Reader,
    /// Creates a generation and a project. Each write must be acknowledged with 2xx,
    /// or, when `may_be_unavailable` is set, rejected with a 503 envelope and `Retry-After`.
    Writer { may_be_unavailable: bool },
}

/// What one traffic loop saw.
#[derive(Debug, Default)]
struct TrafficReport {
    requests: usize,
    /// Reads whose response broke the loop's expectation, with status and body.
    read_failures: Vec<String>,
    /// Writes whose response broke the loop's expectation, with status and body.
    write_failures: Vec<String>,
    /// Ids of the generations the origin acknowledged with 202.
    acknowledged_generations: Vec<String>,
    /// Ids of the projects the origin acknowledged with 201.
    acknowledged_projects: Vec<String>,
    /// Writes rejected with a well-formed 503.
    rejected_writes: usize,
    /// Reads served stale because the database failed.
    stale_reads: usize,
}

impl Traffic {
    fn new(pause: Duration) -> Traffic {
        Traffic {
            stop: AtomicBool::new(false),
            rounds: AtomicUsize::new(0),
            pause,
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits until the loops have completed `count` more rounds, so the next fault
    /// step happens with requests in flight.
    async fn wait_for_rounds(&self, count: usize) {
        let target = self.rounds.load(Ordering::SeqCst) + count;
        let deadline = Instant::now() + PROGRESS_TIMEOUT;
        while self.rounds.load(Ordering::SeqCst) < target {
            assert!(
                Instant::now() < deadline,
                "the traffic loops did not complete {count} rounds within {PROGRESS_TIMEOUT:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Runs rounds of `role` for `user` until [`Traffic::stop`] or [`TRAFFIC_LIMIT`].
    async fn run(
        &self,
        app: &TestApp,
        user: &TestUser,
        role: Role,
        label: String,
    ) -> TrafficReport {
        let mut report = TrafficReport::default();
        let started = Instant::now();
        let mut round = 0;
        while !self.stop.load(Ordering::SeqCst) && started.elapsed() < TRAFFIC_LIMIT {
            match role {
                Role::Reader => read_round(app, user, &mut report).await,
                Role::Writer { may_be_unavailable } => {
                    write_round(
                        app,
                        user,
                        &format!("{label} round {round}"),
                        may_be_unavailable,
                        &mut report,
                    )
                    .await
                }
            }
            round += 1;
            self.rounds.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.pause).await;
        }
        report
    }
}

async fn read_round(app: &TestApp, user: &TestUser, report: &mut TrafficReport) {
    let token = user.access_token.as_str();
    for (path, token) in [
        ("/users/profile", Some(token)),
        ("/generations", Some(token)),
        ("/models", None),
    ] {
        report.requests += 1;
        let response = match get(app, path, token).await {
            Ok(response) => response,
            Err(error) => {
                report.read_failures.push(error);
                continue;
            }
        };
        let status = response.status().as_u16();
        let cache_status = header(&response, "cache-status").unwrap_or_default();
        let body = response.text().await.unwrap_or_default();
        if status != 200 {
            report
                .read_failures
                .push(format!("GET {path} -> {status} ({cache_status}): {body}"));
        } else if cache_status.contains("stale-if-error") {
            report.stale_reads += 1;
        }
    }
}

async fn write_round(
    app: &TestApp,
    user: &TestUser,
    name: &str,
    may_be_unavailable: bool,
    report: &mut TrafficReport,
) {
    let token = user.access_token.as_str();
    let writes = [
        (
            "/generations",
            json!({ "prompt": name, "model": MODEL }),
            202,
        ),
        ("/projects", json!({ "name": name }), 201),
    ];
    for (path, body, success) in writes {
        report.requests += 1;
        let response = match send_json(app, Method::POST, path, token, &body).await {
            Ok(response) => response,
            Err(error) => {
                report.write_failures.push(error);
                continue;
            }
        };
        let status = response.status().as_u16();
        let retry_after = header(&response, "retry-after");
        let text = response.text().await.unwrap_or_default();

        if status == success {
            let id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|value| value["id"].as_str().map(str::to_owned));
            match (id, path) {
                (Some(id), "/generations") => report.acknowledged_generations.push(id),
                (Some(id), _) => report.acknowledged_projects.push(id),
                (None, _) => report
                    .write_failures
                    .push(format!("POST {path} -> {status} without an id: {text}")),
            }
        } else if status == 503 && may_be_unavailable {
            let code = serde_json::from_str::<ErrorEnvelope>(&text)
                .map(|envelope| envelope.error.code)
                .unwrap_or_default();
            if code == "service_unavailable" && retry_after.is_some() {
                report.rejected_writes += 1;
            } else {
                report.write_failures.push(format!(
                    "POST {path} -> 503 without the service_unavailable envelope and \
                     Retry-After (retry-after: {retry_after:?}): {text}"
                ));
            }
        } else {
            report
                .write_failures
                .push(format!("POST {path} -> {status}: {text}"));
        }
    }
}

/// Merges the reports of several loops into one, for the final assertions.
fn merge(reports: Vec<TrafficReport>) -> TrafficReport {
    let mut total = TrafficReport::default();
    for report in reports {
        total.requests += report.requests;
        total.read_failures.extend(report.read_failures);
        total.write_failures.extend(report.write_failures);
        total
            .acknowledged_generations
            .extend(report.acknowledged_generations);
        total
            .acknowledged_projects
            .extend(report.acknowledged_projects);
        total.rejected_writes += report.rejected_writes;
        total.stale_reads += report.stale_reads;
    }
    total
}

/// Asserts that every generation and project acknowledged in `report` can be read
/// back through the API as one of `users`' own.
async fn assert_writes_present(app: &TestApp, users: &[TestUser], report: &TrafficReport) {
    let mut generations = HashSet::new();
    let mut projects = HashSet::new();
    for user in users {
        let owned = all_generations(app, &user.access_token).await;
        generations.extend(owned.into_iter().map(|generation| generation.id));
        projects.extend(all_project_ids(app, &user.access_token).await);
    }
    let missing_generations: Vec<&String> = report
        .acknowledged_generations
        .iter()
        .filter(|id| !generations.contains(*id))
        .collect();
    let missing_projects: Vec<&String> = report
        .acknowledged_projects
        .iter()
        .filter(|id| !projects.contains(*id))
        .collect();
    assert!(
        missing_generations.is_empty(),
        "{} of {} acknowledged generations are missing: {missing_generations:?}",
        missing_generations.len(),
        report.acknowledged_generations.len()
    );
    assert!(
        missing_projects.is_empty(),
        "{} of {} acknowledged projects are missing: {missing_projects:?}",
        missing_projects.len(),
        report.acknowledged_projects.len()
    );
}

/// Waits until every generation acknowledged in `report` has finished, then asserts
/// that each one completed, because the worker must resume after an outage.
async fn assert_generations_complete(app: &TestApp, users: &[TestUser], report: &TrafficReport) {
    let acknowledged: HashSet<&str> = report
        .acknowledged_generations
        .iter()
        .map(String::as_str)
        .collect();
    let deadline = Instant::now() + GENERATION_FINISH_TIMEOUT;
    let finished = loop {
        let mut generations = Vec::new();
        for user in users {
            generations.extend(all_generations(app, &user.access_token).await);
        }
        generations.retain(|generation| acknowledged.contains(generation.id.as_str()));
        let pending: Vec<&Generation> = generations
            .iter()
            .filter(|generation| !generation.status.is_final())
            .collect();
        if pending.is_empty() {
            break generations;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged generations were still unfinished {GENERATION_FINISH_TIMEOUT:?} \
             after the fault ended: {:?}",
            pending.len(),
            acknowledged.len(),
            pending
                .iter()
                .map(|generation| (&generation.id, generation.status))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let failed: Vec<(&String, &Option<String>)> = finished
        .iter()
        .filter(|generation| generation.status != GenerationStatus::Completed)
        .map(|generation| (&generation.id, &generation.error))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} acknowledged generations failed: {failed:?}",
        failed.len(),
        finished.len()
    );
}

/// Reads one fresh generation page per call, with a `limit` no earlier call used,
/// so the read misses L1 and has to look up L2.
/// Reads through each instance until its Redis breaker reports open, then restarts
/// Redis and waits until every instance's breaker has closed again.
async fn ride_out_redis_outage(
    redis: &mut ThrowawayRedis,
    apps: [&TestApp; 2],
    user: &TestUser,
    counter: &mut u32,
) {
    for app in apps {
        let deadline = Instant::now() + BREAKER_TIMEOUT;
        while app.fetch_health().await.redis != "open" {
            read_uncached_page(app, user, counter, "while Redis is down").await;
            assert!(
                Instant::now() < deadline,
                "the Redis breaker did not open within {BREAKER_TIMEOUT:?} of Redis being killed"
            );
        }
    }
    redis.start_again().await;
    for app in apps {
        app.wait_for_health(
            "close its Redis breaker after Redis restarted",
            BREAKER_TIMEOUT,
            |health| health.redis == "closed",
        )
        .await;
    }
}

async fn read_uncached_page(app: &TestApp, user: &TestUser, counter: &mut u32, during: &str) {
    *counter += 1;
    let path = format!("/generations?limit={}", 1 + *counter % 100);
    get_ok(app, &path, Some(&user.access_token), during).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_leaves_reads_and_writes_working() {
    let mut redis = ThrowawayRedis::start().await;
    let app = spawn_with_redis(&redis).await;
    let users = [app.signup().await, app.signup().await];
    for user in &users {
        get_ok(&app, "/users/profile", Some(&user.access_token), "warm-up").await;
        get_ok(&app, "/generations", Some(&user.access_token), "warm-up").await;
    }

    let traffic = Traffic::new(Duration::from_millis(20));
    let loops = futures::future::join_all(users.iter().enumerate().flat_map(|(index, user)| {
        let traffic = &traffic;
        let app = &app;
        [
            traffic.run(app, user, Role::Reader, format!("reader {index}")),
            traffic.run(
                app,
                user,
                Role::Writer {
                    may_be_unavailable: false,
                },
                format!("writer {index}"),
            ),
        ]
    }));
    let faults = async {
        traffic.wait_for_rounds(20).await;
        redis.stop();
        app.wait_for_health(
            "open its Redis breaker after Redis was killed",
            BREAKER_TIMEOUT,
            |health| health.redis == "open",
        )
        .await;
        // Requests keep going while Redis is down.
        traffic.wait_for_rounds(20).await;

        redis.start_again().await;
        app.wait_for_health(
            "close its Redis breaker after Redis restarted",
            BREAKER_TIMEOUT,
            |health| health.redis == "closed",
        )
        .await;
        traffic.wait_for_rounds(20).await;
        traffic.stop();
    };
    let (reports, ()) = tokio::join!(loops, faults);
    let reports: Vec<TrafficReport> = reports;
    let report = merge(reports);
    eprintln!(
        "{} requests; {} generations and {} projects acknowledged",
        report.requests,
        report.acknowledged_generations.len(),
        report.acknowledged_projects.len()
    );

    assert!(
        report.read_failures.is_empty(),
        "{} of {} requests were failed reads: {:#?}",
        report.read_failures.len(),
        report.requests,
        report.read_failures
    );
    assert!(
        report.write_failures.is_empty(),
        "{} of {} requests were failed writes: {:#?}",
        report.write_failures.len(),
        report.requests,
        report.write_failures
    );
    assert!(
        !report.acknowledged_generations.is_empty(),
        "the writers should have created generations"
    );
    assert_writes_present(&app, &users, &report).await;
    assert_generations_complete(&app, &users, &report).await;
}

/// After Redis restarts, the first instance stores new entries in L2 and reads
/// entries that another instance stored there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_redis_is_used_as_l2_again() {
    let mut redis = ThrowawayRedis::start().await;
    let app = spawn_with_redis(&redis).await;
    let user = app.signup().await;
    let mut counter = 0;

    redis.stop();
    // Reads that miss L1 try Redis, fail, and open the breaker.
    let deadline = Instant::now() + BREAKER_TIMEOUT;
    loop {
        read_uncached_page(&app, &user, &mut counter, "while Redis is down").await;
        if app.fetch_health().await.redis == "open" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Redis breaker did not open within {BREAKER_TIMEOUT:?} of Redis being killed"
        );
    }
    redis.start_again().await;
    app.wait_for_health(
        "close its Redis breaker after Redis restarted",
        BREAKER_TIMEOUT,
        |health| health.redis == "closed",
    )
    .await;
    let second = spawn_second_instance(&app).await;

    // Stored in L2 by the first instance, read from there by the second.
    let stored_by_first = app.signup().await;
    let keys = redis.entry_count().await;
    get_ok(
        &app,
        "/users/profile",
        Some(&stored_by_first.access_token),
        "after the restart",
    )
    .await;
    redis.wait_for_more_entries_than(keys).await;
    let response = get_ok(
        &second,
        "/users/profile",
        Some(&stored_by_first.access_token),
        "after the restart",
    )
    .await;
    let params = cache_status_params(&response);
    assert!(
        has_param(&params, "detail=l2"),
        "the profile the first instance read after the restart should be in L2: {params:?}"
    );

    // Stored in L2 by the second instance, read from there by the first.
    let stored_by_second = app.signup().await;
    let keys = redis.entry_count().await;
    get_ok(
        &second,
        "/users/profile",
        Some(&stored_by_second.access_token),
        "after the restart",
    )
    .await;
    redis.wait_for_more_entries_than(keys).await;
    let before = app.fetch_health().await;
    let response = get_ok(
        &app,
        "/users/profile",
        Some(&stored_by_second.access_token),
        "after the restart",
    )
    .await;
    let after = app.fetch_health().await;
    let params = cache_status_params(&response);
    assert!(
        has_param(&params, "detail=l2"),
        "the first instance should read L2 again after the restart: {params:?}"
    );
    assert_eq!(after.l2_hits, before.l2_hits + 1, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_does_not_block_requests() {
    let redis = ThrowawayRedis::start().await;
    let app = spawn_with_redis(&redis).await;
    let user = app.signup().await;
    let token = user.access_token.as_str();
    get_ok(&app, "/users/profile", Some(token), "warm-up").await;
    get_ok(&app, "/generations", Some(token), "warm-up").await;
    let mut counter = 0;

    redis.pause();
    for round in 0..8 {
        let during = format!("round {round} with Redis paused");
        get_ok(&app, "/users/profile", Some(token), &during).await;
        get_ok(&app, "/models", None, &during).await;
        read_uncached_page(&app, &user, &mut counter, &during).await;

        let name = format!("Paused round {round}");
        let update = send_json(
            &app,
            Method::PATCH,
            "/users/profile",
            token,
            &json!({ "display_name": name }),
        )
        .await
        .unwrap_or_else(|error| panic!("{during}: {error}"));
        let updated: User = parse_json(update, 200).await;
        assert_eq!(updated.display_name, name, "{during}");
        let reread: User = parse_json(
            get_ok(&app, "/users/profile", Some(token), &during).await,
            200,
        )
        .await;
        assert_eq!(
            reread.display_name, name,
            "{during}: the profile read after the update"
        );

        let create = send_json(
            &app,
            Method::POST,
            "/projects",
            token,
            &json!({ "name": name }),
        )
        .await
        .unwrap_or_else(|error| panic!("{during}: {error}"));
        parse_json::<Project>(create, 201).await;
    }
    app.wait_for_health(
        "open its Redis breaker while Redis is paused",
        BREAKER_TIMEOUT,
        |health| health.redis == "open",
    )
    .await;

    redis.resume();
    app.wait_for_health(
        "close its Redis breaker after Redis resumed",
        BREAKER_TIMEOUT,
        |health| health.redis == "closed",
    )
    .await;
    let before = app.fetch_health().await;
    read_uncached_page(&app, &user, &mut counter, "after Redis resumed").await;
    let after = app.fetch_health().await;
    assert_eq!(
        after.l2_hits + after.l2_misses,
        before.l2_hits + before.l2_misses + 1,
        "a read that misses L1 should look up L2 again: before {before:?}, after {after:?}"
    );
}

/// Invalidations published after Redis restarts reach the other instance again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_resumes_after_redis_restart() {
    let mut redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    let user = first.signup().await;
    let token = user.access_token.as_str();
    let mut counter = 0;

    redis.stop();
    ride_out_redis_outage(&mut redis, [&first, &second], &user, &mut counter).await;

    // The subscription may come back a little after the breaker closes, so the first
    // rounds may see the old profile. After RESUBSCRIBE_TIMEOUT, that is a failure.
    let started = Instant::now();
    let mut round = 0;
    loop {
        round += 1;
        if renamed_profile_reaches(
            &second,
            &first,
            token,
            &format!("Resubscribe round {round}"),
        )
        .await
        {
            break;
        }
        assert!(
            started.elapsed() < RESUBSCRIBE_TIMEOUT,
            "the first instance still served the profile from before a write on the second \
             {RESUBSCRIBE_TIMEOUT:?} after Redis restarted ({round} rounds)"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    eprintln!(
        "invalidations reached the first instance again after {:?}",
        started.elapsed()
    );

    for round in 0..4 {
        let (writer, reader) = if round % 2 == 0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        assert!(
            renamed_profile_reaches(writer, reader, token, &format!("Steady round {round}")).await,
            "round {round}: the other instance served the profile from before the write"
        );
    }
}

/// Caches the profile in `reader`'s L1, renames the user on `writer`, and returns
/// whether `reader`'s next read returns the new name.
async fn renamed_profile_reaches(
    writer: &TestApp,
    reader: &TestApp,
    token: &str,
    name: &str,
) -> bool {
    get_ok(reader, "/users/profile", Some(token), name).await;
    get_ok(reader, "/users/profile", Some(token), name).await;
    let update = send_json(
        writer,
        Method::PATCH,
        "/users/profile",
        token,
        &json!({ "display_name": name }),
    )
    .await
    .unwrap_or_else(|error| panic!("{name}: {error}"));
    parse_json::<User>(update, 200).await;
    let seen: User = parse_json(
        get_ok(reader, "/users/profile", Some(token), name).await,
        200,
    )
    .await;
    seen.display_name == name
}

/// A write on one instance while Redis is down cannot be published, so the other
/// instance must not keep serving what it cached before once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_during_redis_outage_is_seen_after_recovery() {
    let mut redis = ThrowawayRedis::start().await;
    let first = spawn_with_redis(&redis).await;
    let second = spawn_second_instance(&first).await;
    let user = first.signup().await;
    let token = user.access_token.as_str();
    let mut counter = 0;
    get_ok(&first, "/users/profile", Some(token), "warm-up").await;

    redis.stop();
    let update = send_json(
        &second,
        Method::PATCH,
        "/users/profile",
        token,
        &json!({ "display_name": "Renamed while Redis was down" }),
    )
    .await
    .unwrap_or_else(|error| panic!("while Redis is down: {error}"));
    parse_json::<User>(update, 200).await;
    ride_out_redis_outage(&mut redis, [&first, &second], &user, &mut counter).await;

    let started = Instant::now();
    loop {
        let seen: User = parse_json(
            get_ok(&first, "/users/profile", Some(token), "after recovery").await,
            200,
        )
        .await;
        if seen.display_name == "Renamed while Redis was down" {
            break;
        }
        assert!(
            started.elapsed() < RESUBSCRIBE_TIMEOUT,
            "the first instance still served {:?} {RESUBSCRIBE_TIMEOUT:?} after Redis returned, \
             though the second renamed the user while Redis was down",
            seen.display_name
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_cut_serves_stale_reads_and_recovers() {
    let builder = TestApp::builder();
    let Some((server_url, database)) = builder.sandbox().postgres_or_skip(
        "database_cut_serves_stale_reads_and_recovers",
        "cuts a Postgres database",
    ) else {
        return;
    };
    let redis = ThrowawayRedis::start().await;
    let mut builder = builder.redis(&redis);
    for (name, value) in BREAKER_ENV {
        builder = builder.env(name, value);
    }
    let app = builder.spawn().await;

    // Readers only read, so their cached entries stay valid through the cut; writers only write.
    let readers = [app.signup().await, app.signup().await];
    let writers = [app.signup().await, app.signup().await];
    for reader in &readers {
        let generation = app
            .new_generation(&reader.access_token, "a fox", None)
            .await;
        app.wait_for_generation_status(
            &reader.access_token,
            &generation.id,
            GenerationStatus::Completed,
        )
        .await;
    }
    let watched = &readers[0];
    let mut warmed_list = None;
    let warm_deadline = Instant::now() + BREAKER_TIMEOUT;
    for reader in &readers {
        get_ok(
            &app,
            "/users/profile",
            Some(&reader.access_token),
            "warm-up",
        )
        .await;
        // The worker may invalidate the list once more just after finishing, so warm
        // up until a read is an L1 hit on a list with the finished generation.
        loop {
            let response =
                get_ok(&app, "/generations", Some(&reader.access_token), "warm-up").await;
            let params = cache_status_params(&response);
            let page: GenerationPage = parse_json(response, 200).await;
            let finished = page
                .items
                .iter()
                .all(|item: &Generation| item.status == GenerationStatus::Completed);
            if has_param(&params, "hit") && finished {
                if reader.user.id == watched.user.id {
                    warmed_list = Some(page);
                }
                break;
            }
            assert!(
                Instant::now() < warm_deadline,
                "the generation list never became an L1 hit: {params:?}"
            );
        }
    }
    let warmed_list = warmed_list.expect("the watched reader's list was warmed above");
    let warmed_at = Instant::now();
    get_ok(&app, "/models", None, "warm-up").await;
    let second = spawn_second_instance(&app).await;

    let traffic = Traffic::new(Duration::from_millis(100));
    let reader_loops = readers
        .iter()
        .enumerate()
        .map(|(index, user)| traffic.run(&app, user, Role::Reader, format!("reader {index}")));
    let writer_loops = writers.iter().enumerate().map(|(index, user)| {
        traffic.run(
            &app,
            user,
            Role::Writer {
                may_be_unavailable: true,
            },
            format!("writer {index}"),
        )
    });
    let loops = futures::future::join(
        futures::future::join_all(reader_loops),
        futures::future::join_all(writer_loops),
    );

    let faults = async {
        traffic.wait_for_rounds(10).await;
        cut_database(&server_url, &database).await;
        eprintln!("cut database {database}");
        app.wait_for_health(
            "open its database breaker after the cut",
            BREAKER_TIMEOUT,
            |health| health.database == "open",
        )
        .await;

        let write = app
            .create_project(
                &writers[0].access_token,
                &json!({ "name": "during the cut" }),
            )
            .await;
        assert!(
            header(&write, "retry-after").is_some(),
            "a write during the cut should carry retry-after"
        );
        assert_error(write, 503, "service_unavailable").await;

        // The project list was never read, so there is nothing to serve stale.
        let uncached = app.list_projects(&watched.access_token).await;
        assert!(
            header(&uncached, "retry-after").is_some(),
            "an uncached read during the cut should carry retry-after"
        );
        assert_error(uncached, 503, "service_unavailable").await;

        let readiness = app.readiness().await;
        assert_eq!(readiness.status(), 503, "/health/ready during the cut");

        // The second instance never read this profile, so it serves the copy from
        // its hot set or from L2, where the first instance stored it.
        let from_l2 = get_ok(
            &second,
            "/users/profile",
            Some(&watched.access_token),
            "during the cut",
        )
        .await;
        let params = cache_status_params(&from_l2);
        assert!(
            has_param(&params, "hit"),
            "second instance during the cut: {params:?}"
        );

        // Once the list's freshness has passed, reads need the database and fall back to stale.
        let stale_deadline = warmed_at + GENERATION_LIST_FRESHNESS + BREAKER_TIMEOUT;
        let stale = loop {
            let response = get_ok(
                &app,
                "/generations",
                Some(&watched.access_token),
                "during the cut",
            )
            .await;
            if has_param(&cache_status_params(&response), "fwd=stale") {
                break response;
            }
            assert!(
                Instant::now() < stale_deadline,
                "the generation list was never served stale during the cut"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let params = cache_status_params(&stale);
        assert!(
            has_param(&params, "fwd-status=503"),
            "stale read: {params:?}"
        );
        assert!(
            has_param(&params, "detail=stale-if-error"),
            "stale read: {params:?}"
        );
        assert_eq!(header(&stale, "warning").as_deref(), Some(STALE_WARNING));
        let stale_page: GenerationPage = parse_json(stale, 200).await;
        assert_eq!(
            stale_page.items, warmed_list.items,
            "the stale list should be the cached one"
        );

        restore_database(&server_url, &database).await;
        let restored_at = Instant::now();
        eprintln!("restored database {database}");
        let ready_deadline = restored_at + BREAKER_TIMEOUT;
        while app.readiness().await.status() != 200 {
            assert!(
                Instant::now() < ready_deadline,
                "/health/ready was not 200 within {BREAKER_TIMEOUT:?} of the database returning"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let recovery = restored_at.elapsed();
        app.wait_for_health("close its database breaker", BREAKER_TIMEOUT, |health| {
            health.database == "closed"
        })
        .await;
        app.new_project(&writers[0].access_token, "after the cut")
            .await;

        traffic.wait_for_rounds(10).await;
        traffic.stop();
        recovery
    };
    let ((reader_reports, writer_reports), recovery) = tokio::join!(loops, faults);
    let readers_report = merge(reader_reports);
    let writers_report = merge(writer_reports);
    eprintln!(
        "ready {recovery:?} after the restore; readers: {} requests, {} stale; writers: {} requests, \
         {} generations and {} projects acknowledged, {} rejected",
        readers_report.requests,
        readers_report.stale_reads,
        writers_report.requests,
        writers_report.acknowledged_generations.len(),
        writers_report.acknowledged_projects.len(),
        writers_report.rejected_writes
    );

    assert!(
        readers_report.read_failures.is_empty(),
        "{} of {} cached reads failed: {:#?}",
        readers_report.read_failures.len(),
        readers_report.requests,
        readers_report.read_failures
    );
    assert!(
        writers_report.write_failures.is_empty(),
        "{} of {} writes were neither acknowledged nor rejected with 503: {:#?}",
        writers_report.write_failures.len(),
        writers_report.requests,
        writers_report.write_failures
    );
    assert!(
        writers_report.rejected_writes > 0,
        "the writers should have seen 503s during the cut"
    );
    assert_writes_present(&app, &writers, &writers_report).await;
    assert_generations_complete(&app, &writers, &writers_report).await;
    let after = app
        .new_generation(&writers[1].access_token, "after the cut", None)
        .await;
    app.wait_for_generation_status(
        &writers[1].access_token,
        &after.id,
        GenerationStatus::Completed,
    )
    .await;
}
