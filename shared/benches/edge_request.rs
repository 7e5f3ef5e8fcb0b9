//! CPU time of the velro-shared calls the edge worker makes on each request,
//! one by one and together, because Cloudflare bills a worker's CPU time.
//!
//! Run with `cargo bench -p velro-shared --bench edge_request`. The numbers are
//! for this native build. The edge runs the same code compiled to wasm32 in V8,
//! so they estimate the edge's CPU time for these steps and do not measure it.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use velro_shared::freshness::{freshness, remaining_ttl_secs, Freshness};
use velro_shared::policy::{cache_key, match_path, match_route, CacheKey, CachePolicy};
use velro_shared::routing::{failover_order, nearest_region, serving_region, Region};
use velro_shared::token::{self, Claims, TokenKey};

/// Secret of the benchmark's signing key: 32 bytes, the shortest `TokenKey` accepts.
const SECRET: &[u8] = b"edge-benchmark-secret-of-32-byte";

/// Fixed clock, in unix seconds, so the token stays valid however long the run takes.
const NOW_SECS: u64 = 1_800_000_000;

/// User id in the form the origin issues (a UUID), so the key and token have their real length.
const USER_ID: &str = "0190f5a2-7c1e-7d3a-9b4c-2f6e8a1d3c5b";

const PRIVATE_PATH: &str = "/generations";
const PRIVATE_QUERY: &str = "limit=20&status=queued";

/// Age of the cached entry at lookup, in milliseconds: inside the 10 s freshness
/// lifetime of the generation list, so the read is a fresh hit.
const ENTRY_AGE_MS: u64 = 4_000;

/// Builds the key and a valid token signed with it, as the origin issues them.
fn signed_token() -> (TokenKey, String) {
    let key = TokenKey::new(SECRET).expect("the benchmark secret is 32 bytes long");
    let claims = Claims {
        sub: USER_ID.to_owned(),
        iat: NOW_SECS - 60,
        exp: NOW_SECS + 900,
        jti: "0190f5a2-7c1e-7d3a-9b4c-000000000001".to_owned(),
    };
    let token = token::sign(&key, &claims);
    (key, token)
}

/// Decisions the edge has made about a private cached read once it can look the key up.
struct HitDecision {
    key: CacheKey,
    freshness: Freshness,
    ttl_secs: i64,
    order: [Region; 3],
}

/// Runs the native part of a private cached read in the order of the edge's
/// `handler::route` and `reads::serve`: nearest region, route match, token,
/// cache key, then the freshness of the stored entry. The failover order is
/// computed too, although the edge needs it only when it goes to an origin.
///
/// The stored policy equals the route's policy here. The edge reads it back from
/// the entry's `x-velro-policy` header, which is edge code and not measured.
fn private_cached_read(key: &TokenKey, authorization: &str, now_ms: u64) -> Option<HitDecision> {
    let nearest = nearest_region(Some("NA"), Some("US"), Some(-122.4));

    let (route, _) = match_path(PRIVATE_PATH)?;
    let matched = match_route("GET", PRIVATE_PATH)?;
    if !route.requires_access_token() {
        return None;
    }

    let bearer = authorization.strip_prefix("Bearer ")?;
    let claims = token::verify(key, bearer, now_ms / 1000).ok()?;

    let cache_key = cache_key("GET", PRIVATE_PATH, Some(PRIVATE_QUERY), Some(&claims.sub)).ok()?;

    let stored_policy: CachePolicy = matched.policy;
    let age_ms = ENTRY_AGE_MS;
    let order = failover_order(serving_region("GET", nearest));
    Some(HitDecision {
        key: cache_key,
        freshness: freshness(&stored_policy, age_ms),
        ttl_secs: remaining_ttl_secs(&stored_policy, age_ms),
        order,
    })
}

fn bench_parts(c: &mut Criterion) {
    let (key, token) = signed_token();
    let generations_policy = match_route("GET", PRIVATE_PATH)
        .expect("GET /generations is a route")
        .policy;

    let mut group = c.benchmark_group("edge_request");

    group.bench_function("match_route", |b| {
        b.iter(|| match_route(black_box("GET"), black_box(PRIVATE_PATH)))
    });

    group.bench_function("cache_key/public_models", |b| {
        b.iter(|| cache_key(black_box("GET"), black_box("/models"), None, None))
    });

    group.bench_function("cache_key/private_generations", |b| {
        b.iter(|| {
            cache_key(
                black_box("GET"),
                black_box(PRIVATE_PATH),
                black_box(Some(PRIVATE_QUERY)),
                black_box(Some(USER_ID)),
            )
        })
    });

    group.bench_function("token_verify", |b| {
        b.iter(|| token::verify(&key, black_box(&token), black_box(NOW_SECS)))
    });

    group.bench_function("nearest_region_and_failover_order", |b| {
        b.iter(|| {
            let nearest = nearest_region(
                black_box(Some("NA")),
                black_box(Some("US")),
                black_box(Some(-122.4)),
            );
            failover_order(nearest)
        })
    });

    group.bench_function("freshness", |b| {
        b.iter(|| freshness(black_box(&generations_policy), black_box(ENTRY_AGE_MS)))
    });

    let authorization = format!("Bearer {token}");
    group.bench_function("whole_private_cached_read", |b| {
        b.iter(|| private_cached_read(&key, black_box(&authorization), black_box(NOW_SECS * 1000)))
    });

    group.finish();
}

/// Checks once, before timing, that the whole-request function takes the path it
/// is meant to measure, so an early `None` cannot pass for a fast request.
fn check_whole_request() {
    let (key, token) = signed_token();
    let decision = private_cached_read(&key, &format!("Bearer {token}"), NOW_SECS * 1000)
        .expect("the benchmark's private cached read must get through every step");
    assert_eq!(
        decision.key.as_str(),
        format!("GET /generations?limit=20&status=queued user={USER_ID}")
    );
    assert_eq!(decision.freshness, Freshness::Fresh);
    assert_eq!(decision.ttl_secs, 6);
    assert_eq!(
        decision.order,
        [Region::UsWest1, Region::UsEast1, Region::EuWest1]
    );
}

fn bench_edge_request(c: &mut Criterion) {
    check_whole_request();
    bench_parts(c);
}

criterion_group!(benches, bench_edge_request);
criterion_main!(benches);
