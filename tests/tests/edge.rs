//! The edge worker in workerd, in front of real origins: cached reads, private
//! caches, invalidation on writes, stale serving, failover between regions,
//! CORS, conditional requests and the shared decision vectors.
//!
//! Time-dependent cases move the worker's clock with `x-velro-test-now-ms`
//! instead of sleeping, and the client's location comes from the worker's `cf`
//! object (San Francisco) unless a test overrides it.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{header_list, parse_json, EdgeWorker, TestApp, JWT_SECRET};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use velro_shared::api::{Project, TokenResponse, User};
use velro_shared::token::{sign, Claims, TokenKey};

const NOW_HEADER: &str = "x-velro-test-now-ms";

/// Two origins on one database: us-west1, nearest to the test client, and us-east1.
///
/// us-east1 owns the database, so a test can stop and restart us-west1 freely.
struct Regions {
    east: TestApp,
    west: Option<TestApp>,
    /// us-west1's address, which stays the same across a restart.
    west_url: String,
}

impl Regions {
    async fn start() -> Regions {
        let east = TestApp::builder().env("REGION", "us-east1").spawn().await;
        let west = TestApp::builder()
            .share_database_with(&east)
            .env("REGION", "us-west1")
            .spawn()
            .await;
        Regions {
            east,
            west_url: west.base_url.clone(),
            west: Some(west),
        }
    }

    fn west(&self) -> &TestApp {
        self.west.as_ref().expect("us-west1 is running")
    }

    /// Starts an edge worker in front of both origins.
    async fn edge(&self) -> EdgeWorker {
        EdgeWorker::builder()
            .origin("us-west1", &self.west_url)
            .origin("us-east1", &self.east.base_url)
            .spawn()
            .await
    }

    /// Stops us-west1 and returns its port, so it can come back at the same address.
    fn stop_west(&mut self) -> u16 {
        let west = self.west.take().expect("us-west1 is running");
        west.port
        // Dropping `west` kills the process.
    }

    async fn restart_west(&mut self, port: u16) {
        let west = TestApp::builder()
            .share_database_with(&self.east)
            .env("REGION", "us-west1")
            .port(port)
            .spawn()
            .await;
        self.west = Some(west);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// Returns the edge's member of `Cache-Status`; the origin's member, when present, comes first.
fn edge_cache_status(response: &Response) -> String {
    let value = header_list(response, "cache-status");
    let member = value
        .split(',')
        .map(str::trim)
        .find(|member| member.starts_with("velro-edge"));
    member
        .unwrap_or_else(|| panic!("no velro-edge member in Cache-Status {value:?}"))
        .to_owned()
}

async fn send(request: RequestBuilder) -> Response {
    request
        .send()
        .await
        .expect("the request should reach the edge and get a response")
}

/// Registers a new user through the edge and returns the access token and user.
async fn signup(edge: &EdgeWorker) -> (String, User) {
    let email = format!("edge-{}@example.com", uuid::Uuid::new_v4().simple());
    let response = send(edge.request(Method::POST, "/auth/register").json(&json!({
        "email": email,
        "password": "correct horse battery staple",
    })))
    .await;
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=method; fwd-status=201"
    );
    let tokens: TokenResponse = parse_json(response, 201).await;
    (tokens.access_token, tokens.user)
}

async fn profile_at(edge: &EdgeWorker, token: &str, now_ms: u64) -> Response {
    send(
        edge.authed_get("/users/profile", token)
            .header(NOW_HEADER, now_ms.to_string()),
    )
    .await
}

async fn display_name(response: Response) -> String {
    let user: User = parse_json(response, 200).await;
    user.display_name
}

/// Returns the `Age` header in seconds, 0 when absent.
fn age_secs(response: &Response) -> i64 {
    header_list(response, "age").parse().unwrap_or(0)
}

/// Counts the cacheable reads an origin has served, from its `/health`.
async fn origin_reads(origin: &TestApp) -> u64 {
    let health: Value = origin.health().await.json().await.unwrap();
    health["l1_hits"].as_u64().unwrap() + health["l1_misses"].as_u64().unwrap()
}

async fn set_display_name(origin: &TestApp, token: &str, name: &str) {
    let response = origin
        .update_profile(token, &json!({ "display_name": name }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn repeated_read_is_a_hit() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;

    let first = send(edge.request(Method::GET, "/models")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        edge_cache_status(&first),
        "velro-edge; fwd=miss; fwd-status=200; stored"
    );
    assert_eq!(header_list(&first, "x-origin-region"), "us-west1");
    assert_eq!(header_list(&first, "x-edge-region"), "us-west1");
    assert!(header_list(&first, "server-timing").contains("edge;dur="));
    assert!(header_list(&first, "server-timing").contains("origin;dur="));
    assert!(!header_list(&first, "x-request-id").is_empty());
    let first_age = age_secs(&first);
    let first_body = first.text().await.unwrap();

    let second = send(edge.request(Method::GET, "/models")).await;
    assert_eq!(second.status(), StatusCode::OK);
    let status = edge_cache_status(&second);
    assert!(status.starts_with("velro-edge; hit; ttl="), "{status}");
    assert_eq!(
        header_list(&second, "x-origin-region"),
        "",
        "a hit uses no origin"
    );
    assert_eq!(header_list(&second, "content-type"), "application/json");
    assert!(header_list(&second, "cache-control").starts_with("public, max-age=60"));
    assert!(
        age_secs(&second) >= first_age,
        "the edge must count the Age the origin sent, so the age never goes back"
    );
    assert_eq!(second.text().await.unwrap(), first_body);
}

#[tokio::test]
async fn head_miss_stores_the_full_body() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;

    let head = send(edge.request(Method::HEAD, "/models")).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert!(edge_cache_status(&head).contains("stored"));
    assert!(head.text().await.unwrap().is_empty());

    let get = send(edge.request(Method::GET, "/models")).await;
    assert!(edge_cache_status(&get).starts_with("velro-edge; hit"));
    let models: Value = parse_json(get, 200).await;
    assert_eq!(models["items"][0]["id"], common::MODEL);
}

#[tokio::test]
async fn private_entries_never_cross_users() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let (alice_token, alice) = signup(&edge).await;
    let (bob_token, bob) = signup(&edge).await;
    let now = now_ms();

    let alice_miss = profile_at(&edge, &alice_token, now).await;
    assert_eq!(
        edge_cache_status(&alice_miss),
        "velro-edge; fwd=miss; fwd-status=200; stored"
    );
    let alice_hit = profile_at(&edge, &alice_token, now).await;
    assert!(edge_cache_status(&alice_hit).starts_with("velro-edge; hit"));
    let user: User = parse_json(alice_hit, 200).await;
    assert_eq!(user.email, alice.email);

    let bob_first = profile_at(&edge, &bob_token, now).await;
    assert!(
        edge_cache_status(&bob_first).starts_with("velro-edge; fwd=miss"),
        "Bob's first read must not hit Alice's entry"
    );
    let user: User = parse_json(bob_first, 200).await;
    assert_eq!(user.email, bob.email);
    let bob_hit = profile_at(&edge, &bob_token, now).await;
    assert!(edge_cache_status(&bob_hit).starts_with("velro-edge; hit"));
    let user: User = parse_json(bob_hit, 200).await;
    assert_eq!(user.email, bob.email);
}

#[tokio::test]
async fn bad_tokens_are_rejected_at_the_edge() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let (token, user) = signup(&edge).await;
    let before = origin_reads(regions.west()).await;

    let missing = send(edge.request(Method::GET, "/users/profile")).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        edge_cache_status(&missing),
        "velro-edge; fwd=bypass; detail=unauthorized"
    );
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    // Flipping the last signature character keeps the token well-formed but forged.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let response = send(edge.authed_get("/users/profile", &forged)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(!body["error"]["request_id"].as_str().unwrap().is_empty());

    let now = now_ms() / 1000;
    let key = TokenKey::new(JWT_SECRET.as_bytes()).unwrap();
    let expired = sign(
        &key,
        &Claims {
            sub: user.id.clone(),
            iat: now - 3_600,
            exp: now - 60,
            jti: uuid::Uuid::new_v4().to_string(),
        },
    );
    let response = send(edge.authed_get("/users/profile", &expired)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_expired");

    let wrong_key = TokenKey::new(b"another-secret-of-at-least-32-bytes!!").unwrap();
    let foreign = sign(
        &wrong_key,
        &Claims {
            sub: user.id,
            iat: now,
            exp: now + 600,
            jti: uuid::Uuid::new_v4().to_string(),
        },
    );
    let response = send(edge.authed_get("/users/profile", &foreign)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        origin_reads(regions.west()).await,
        before,
        "rejected requests must not reach the origin"
    );
}

#[tokio::test]
async fn write_invalidates_the_writers_list() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let (alice, _) = signup(&edge).await;
    let (bob, _) = signup(&edge).await;

    for token in [&alice, &bob] {
        let miss = send(edge.authed_get("/projects", token)).await;
        assert!(edge_cache_status(&miss).contains("fwd=miss"));
        let hit = send(edge.authed_get("/projects", token)).await;
        assert!(edge_cache_status(&hit).starts_with("velro-edge; hit"));
    }

    let created = send(
        edge.request(Method::POST, "/projects")
            .bearer_auth(&alice)
            .json(&json!({ "name": "Edge project" })),
    )
    .await;
    assert_eq!(
        edge_cache_status(&created),
        "velro-edge; fwd=method; fwd-status=201"
    );
    assert_eq!(header_list(&created, "x-origin-region"), "us-west1");
    let project: Project = parse_json(created, 201).await;

    let after_write = send(edge.authed_get("/projects", &alice)).await;
    assert!(
        edge_cache_status(&after_write).contains("fwd=miss"),
        "the write must delete Alice's cached list"
    );
    let list: Value = parse_json(after_write, 200).await;
    assert_eq!(list["items"][0]["id"], project.id);

    let bobs = send(edge.authed_get("/projects", &bob)).await;
    assert!(
        edge_cache_status(&bobs).starts_with("velro-edge; hit"),
        "Bob's list is not affected by Alice's write"
    );
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_once() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let (token, _) = signup(&edge).await;
    set_display_name(regions.west(), &token, "before").await;
    let stored_at = now_ms();
    let first = profile_at(&edge, &token, stored_at).await;
    assert!(edge_cache_status(&first).contains("stored"));
    // The origin may have served it from its own cache, already this many seconds old.
    let origin_age = age_secs(&first);
    assert_eq!(display_name(first).await, "before");

    // Changed at the origin only, so the edge's copy is now out of date.
    set_display_name(regions.west(), &token, "after").await;

    // The profile is fresh for 60 s and may be served stale for 30 s more.
    let stale = profile_at(&edge, &token, stored_at + 61_000).await;
    let status = edge_cache_status(&stale);
    assert_eq!(
        status,
        format!(
            "velro-edge; hit; ttl={}; detail=stale-while-revalidate",
            -1 - origin_age
        )
    );
    assert_eq!(age_secs(&stale), 61 + origin_age);
    assert_eq!(display_name(stale).await, "before");

    // The background refresh stored the new profile as of the stale request's
    // time, less the Age the origin sent with it.
    let mut refreshed = None;
    for _ in 0..50 {
        let response = profile_at(&edge, &token, stored_at + 62_000).await;
        let status = edge_cache_status(&response);
        let name = display_name(response).await;
        if name == "after" {
            refreshed = Some(status);
            break;
        }
        tokio::time::sleep(common::POLL_INTERVAL).await;
    }
    let status = refreshed.expect("the refreshed profile should be served within a second");
    let ttl: i64 = status
        .strip_prefix("velro-edge; hit; ttl=")
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or_else(|| panic!("expected a fresh hit, got {status}"));
    assert!((55..=59).contains(&ttl), "{status}");
}

#[tokio::test]
async fn stale_if_error_after_the_origin_dies() {
    let origin = TestApp::spawn().await;
    let edge = EdgeWorker::builder()
        .origin("us-west1", &origin.base_url)
        .spawn()
        .await;
    let (token, user) = signup(&edge).await;
    let stored_at = now_ms();
    let models = send(
        edge.request(Method::GET, "/models")
            .header(NOW_HEADER, stored_at.to_string()),
    )
    .await;
    let models_age = age_secs(&models);
    let models_body = models.text().await.unwrap();
    let profile = profile_at(&edge, &token, stored_at).await;
    assert!(edge_cache_status(&profile).contains("stored"));

    drop(origin);

    // /models: fresh 300 s, stale-while-revalidate 600 s, stale-if-error one day.
    let past_revalidation = stored_at + 901_000;
    let response = send(
        edge.request(Method::GET, "/models")
            .header(NOW_HEADER, past_revalidation.to_string()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        edge_cache_status(&response),
        format!(
            "velro-edge; fwd=stale; ttl={}; detail=stale-if-error",
            -601 - models_age
        )
    );
    assert_eq!(
        header_list(&response, "warning"),
        "111 velro-edge \"Revalidation Failed\""
    );
    assert_eq!(response.text().await.unwrap(), models_body);

    // The profile: fresh 60 s, stale-while-revalidate 30 s, stale-if-error 300 s.
    let response = profile_at(&edge, &token, stored_at + 120_000).await;
    assert!(edge_cache_status(&response).contains("detail=stale-if-error"));
    let served: User = parse_json(response, 200).await;
    assert_eq!(served.id, user.id);

    // Past the stale-if-error window nothing may be served.
    let response = profile_at(&edge, &token, stored_at + 361_000).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=stale; detail=origin-unreachable"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable");
}

#[tokio::test]
async fn failover_to_the_next_region_and_back() {
    let mut regions = Regions::start().await;
    let edge = regions.edge().await;
    let (token, _) = signup(&edge).await;

    let response = send(edge.request(Method::GET, "/health")).await;
    assert_eq!(header_list(&response, "x-origin-region"), "us-west1");
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=bypass; fwd-status=200"
    );

    let port = regions.stop_west();
    let failed_at = now_ms();
    let response = send(edge.request(Method::GET, "/health")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_list(&response, "x-origin-region"), "us-east1");

    // Later requests skip the ejected us-west1 without trying it again.
    let health: Value = send(edge.request(Method::GET, "/edge/health"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["regions"][0]["region"], "us-west1");
    assert_eq!(health["regions"][0]["ejected"], true);
    let response = send(edge.authed_get("/projects", &token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_list(&response, "x-origin-region"), "us-east1");

    regions.restart_west(port).await;
    // The first ejection lasts 10 s; afterwards the region is tried again.
    let response = send(
        edge.request(Method::GET, "/health")
            .header(NOW_HEADER, (failed_at + 11_000).to_string()),
    )
    .await;
    assert_eq!(header_list(&response, "x-origin-region"), "us-west1");
    let health: Value = send(edge.request(Method::GET, "/edge/health"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health["regions"][0]["ejected"], false);
}

#[tokio::test]
async fn writes_retry_only_where_the_origin_deduplicates() {
    let mut regions = Regions::start().await;
    let (token, _) = {
        let edge = regions.edge().await;
        signup(&edge).await
    };
    // A fresh worker has not seen us-west1 fail yet, so each write tries it first.
    let edge = regions.edge().await;
    regions.stop_west();

    let response = send(
        edge.request(Method::POST, "/projects")
            .bearer_auth(&token)
            .json(&json!({ "name": "not retried" })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=method; detail=origin-unreachable"
    );

    // The origin honours Idempotency-Key only on POST /generations, so a retried
    // POST /projects could create the project twice.
    let edge = regions.edge().await;
    let response = send(
        edge.request(Method::POST, "/projects")
            .bearer_auth(&token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&json!({ "name": "still not retried" })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    let edge = regions.edge().await;
    let response = send(
        edge.request(Method::POST, "/generations")
            .bearer_auth(&token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&json!({ "model": common::MODEL, "prompt": "retried" })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(header_list(&response, "x-origin-region"), "us-east1");
}

#[tokio::test]
async fn writes_go_to_the_primary_even_when_ejected() {
    let mut regions = Regions::start().await;
    let edge = regions.edge().await;
    let (token, _) = signup(&edge).await;

    let port = regions.stop_west();
    let response = send(edge.request(Method::GET, "/health")).await;
    assert_eq!(header_list(&response, "x-origin-region"), "us-east1");
    regions.restart_west(port).await;

    // us-west1 is still ejected for reads, but a write without a safe retry
    // must reach the primary database's region or fail.
    let response = send(
        edge.request(Method::POST, "/projects")
            .bearer_auth(&token)
            .json(&json!({ "name": "on the primary" })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header_list(&response, "x-origin-region"), "us-west1");
}

#[tokio::test]
async fn unknown_methods_get_405() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    send(edge.request(Method::GET, "/models")).await;

    let propfind = Method::from_bytes(b"PROPFIND").unwrap();
    let response = send(edge.request(propfind, "/models")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=bypass; detail=method_not_allowed"
    );
}

#[tokio::test]
async fn id_spellings_share_one_entry() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let (token, _) = signup(&edge).await;
    let created = send(
        edge.request(Method::POST, "/projects")
            .bearer_auth(&token)
            .json(&json!({ "name": "spelled twice" })),
    )
    .await;
    let project: Project = parse_json(created, 201).await;

    let lower = send(edge.authed_get(&format!("/projects/{}", project.id), &token)).await;
    assert!(edge_cache_status(&lower).contains("stored"));
    let upper = format!("/projects/{}", project.id.to_uppercase());
    let response = send(edge.authed_get(&upper, &token)).await;
    assert!(
        edge_cache_status(&response).starts_with("velro-edge; hit"),
        "an upper-case id names the same project and must share its entry"
    );

    let response = send(edge.authed_get("/projects/not-a-uuid", &token)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=bypass; detail=not_found"
    );
}

#[tokio::test]
async fn oversized_chunked_body_gets_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let (token, _) = signup(&edge).await;

    // No Content-Length, so only counting the chunks can stop the body.
    let address = edge.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /projects HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..20 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;

    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "expected 413, got {}",
        response.lines().next().unwrap_or_default()
    );
    assert!(response.contains("payload_too_large"));
}

#[tokio::test]
async fn preflight_is_answered_at_the_edge() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;

    let response = send(
        edge.request(Method::OPTIONS, "/projects")
            .header("origin", common::ALLOWED_ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_list(&response, "access-control-allow-origin"),
        common::ALLOWED_ORIGIN
    );
    assert_eq!(
        header_list(&response, "access-control-allow-credentials"),
        "true"
    );
    assert!(header_list(&response, "access-control-allow-methods").contains("POST"));
    assert!(header_list(&response, "access-control-allow-headers").contains("authorization"));
    assert_eq!(header_list(&response, "access-control-max-age"), "600");
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=bypass; detail=preflight"
    );
    assert_eq!(header_list(&response, "x-origin-region"), "");

    let foreign = send(
        edge.request(Method::OPTIONS, "/projects")
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST"),
    )
    .await;
    assert_eq!(foreign.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_list(&foreign, "access-control-allow-origin"), "");

    let read = send(
        edge.request(Method::GET, "/models")
            .header("origin", common::ALLOWED_ORIGIN),
    )
    .await;
    assert_eq!(
        header_list(&read, "access-control-allow-origin"),
        common::ALLOWED_ORIGIN
    );
    assert!(header_list(&read, "access-control-expose-headers").contains("cache-status"));
    let vary = header_list(&read, "vary").to_ascii_lowercase();
    assert_eq!(
        vary.split(',')
            .filter(|name| name.trim() == "origin")
            .count(),
        1,
        "Vary names Origin once: {vary}"
    );
}

#[tokio::test]
async fn matching_etag_gets_304_from_the_edge() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let first = send(edge.request(Method::GET, "/models")).await;
    let etag = header_list(&first, "etag");
    assert!(etag.starts_with("W/\""), "{etag}");

    let revalidated = send(
        edge.request(Method::GET, "/models")
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert!(edge_cache_status(&revalidated).starts_with("velro-edge; hit"));
    assert_eq!(header_list(&revalidated, "etag"), etag);
    assert!(revalidated.text().await.unwrap().is_empty());

    let changed = send(
        edge.request(Method::GET, "/models")
            .header("if-none-match", "W/\"other\""),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;

    let requests = (0..12).map(|_| send(edge.request(Method::GET, "/models")));
    let responses = futures::future::join_all(requests).await;
    let statuses: Vec<String> = responses.iter().map(edge_cache_status).collect();
    for response in &responses {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let fetched_themselves = statuses
        .iter()
        .filter(|status| status.contains("fwd=miss") && !status.contains("collapsed"))
        .count();
    assert_eq!(fetched_themselves, 1, "Cache-Status values: {statuses:?}");
}

#[tokio::test]
async fn unknown_routes_are_answered_at_the_edge() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;

    let response = send(edge.request(Method::GET, "/no/such/route")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        edge_cache_status(&response),
        "velro-edge; fwd=bypass; detail=not_found"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let response = send(edge.request(Method::DELETE, "/models")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header_list(&response, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn test_overrides_are_ignored_in_production() {
    let regions = Regions::start().await;
    let edge = EdgeWorker::builder()
        .origin("us-west1", &regions.west().base_url)
        .origin("us-east1", &regions.east.base_url)
        .var("ENVIRONMENT", "production")
        .spawn()
        .await;

    let response = send(
        edge.request(Method::GET, "/health")
            .header("x-velro-test-continent", "SA")
            .header("x-velro-test-country", "BR"),
    )
    .await;
    assert_eq!(header_list(&response, "x-edge-region"), "us-west1");
    assert_eq!(header_list(&response, "x-origin-region"), "us-west1");

    let response = send(
        edge.request(Method::POST, "/edge/test/decide")
            .json(&json!({})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // A clock far in the future would make the stored catalogue stale.
    send(edge.request(Method::GET, "/models")).await;
    let response = send(
        edge.request(Method::GET, "/models")
            .header(NOW_HEADER, (now_ms() + 3_600_000).to_string()),
    )
    .await;
    let status = edge_cache_status(&response);
    let ttl: i64 = status
        .strip_prefix("velro-edge; hit; ttl=")
        .and_then(|ttl| ttl.parse().ok())
        .unwrap_or_else(|| panic!("expected a fresh hit, got {status}"));
    assert!(ttl > 0, "{status}");
}

#[tokio::test]
async fn location_override_picks_the_region() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;

    let response = send(
        edge.request(Method::GET, "/health")
            .header("x-velro-test-continent", "SA")
            .header("x-velro-test-country", "BR"),
    )
    .await;
    assert_eq!(header_list(&response, "x-edge-region"), "us-east1");
    assert_eq!(header_list(&response, "x-origin-region"), "us-east1");
}

#[tokio::test]
async fn worker_decides_like_the_native_build() {
    let regions = Regions::start().await;
    let edge = regions.edge().await;
    let vectors = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/tests/vectors/decisions.json"),
    )
    .expect("the decision vectors should be readable");
    let cases: Vec<Value> = serde_json::from_str(&vectors).unwrap();
    assert!(cases.len() >= 10);

    for case in &cases {
        let response = send(
            edge.request(Method::POST, "/edge/test/decide")
                .json(&case["request"]),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "case {}", case["name"]);
        let decided: Value = response.json().await.unwrap();
        assert_eq!(decided, case["expected"], "case {}", case["name"]);
    }
}
