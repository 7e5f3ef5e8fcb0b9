//! Checks the edge's per-request decisions against `tests/vectors/decisions.json`.
//!
//! The same file is meant for the edge worker's tests inside workerd, so that the
//! native and the wasm32 builds of `velro-shared` provably decide alike: route
//! policy, cache key, scope, TTLs, `Cache-Control`, region and failover order.

use serde::Deserialize;
use velro_shared::policy::{cache_control, cache_key, match_route, Scope};
use velro_shared::routing::{failover_order, nearest_region, serving_region};

const VECTORS: &str = include_str!("vectors/decisions.json");

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    request: Request,
    expected: Expected,
}

#[derive(Debug, Deserialize)]
struct Request {
    method: String,
    path: String,
    query: Option<String>,
    user_id: Option<String>,
    continent: Option<String>,
    country: Option<String>,
    longitude: Option<f64>,
}

/// The decision for one request; `route` is `None` for a path no route matches.
#[derive(Debug, Deserialize, PartialEq)]
struct Expected {
    route: Option<String>,
    scope: Option<String>,
    edge_ttl: Option<u32>,
    browser_ttl: Option<u32>,
    stale_while_revalidate: Option<u32>,
    stale_if_error: Option<u32>,
    cache_control: Option<String>,
    cache_key: Option<String>,
    nearest_region: String,
    serving_region: String,
    failover: Vec<String>,
}

fn decide(request: &Request) -> Expected {
    let matched = match_route(&request.method, &request.path);
    let policy = matched.as_ref().map(|matched| matched.policy);
    let nearest = nearest_region(
        request.continent.as_deref(),
        request.country.as_deref(),
        request.longitude,
    );
    let serving = serving_region(&request.method, nearest);
    Expected {
        route: matched
            .as_ref()
            .map(|matched| matched.route.template().to_string()),
        scope: policy.map(|policy| {
            match policy.scope {
                Scope::Public => "public",
                Scope::Private => "private",
                Scope::NoStore => "no-store",
            }
            .to_string()
        }),
        edge_ttl: policy.map(|policy| policy.edge_ttl),
        browser_ttl: policy.map(|policy| policy.browser_ttl),
        stale_while_revalidate: policy.map(|policy| policy.stale_while_revalidate),
        stale_if_error: policy.map(|policy| policy.stale_if_error),
        cache_control: policy.map(|policy| cache_control(&policy)),
        cache_key: cache_key(
            &request.method,
            &request.path,
            request.query.as_deref(),
            request.user_id.as_deref(),
        )
        .ok()
        .map(|key| key.as_str().to_string()),
        nearest_region: nearest.as_str().to_string(),
        serving_region: serving.as_str().to_string(),
        failover: failover_order(serving)
            .iter()
            .map(|region| region.as_str().to_string())
            .collect(),
    }
}

#[test]
fn vectors_match_decisions() {
    let cases: Vec<Case> = serde_json::from_str(VECTORS).expect("decisions.json should parse");
    assert!(
        cases.len() >= 10,
        "decisions.json has only {} cases",
        cases.len()
    );
    for case in &cases {
        assert_eq!(decide(&case.request), case.expected, "case {:?}", case.name);
    }
}
