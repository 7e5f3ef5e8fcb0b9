//! The per-request decisions of the edge in one serialisable record, so that a
//! file of test vectors can check that the native and the wasm32 builds of this
//! crate decide alike.

use serde::{Deserialize, Serialize};

use crate::policy::{cache_control, cache_key, match_route};
use crate::routing::{failover_order, nearest_region, serving_region};

/// A request as the edge receives it, with the verified user id and Cloudflare's `cf` location fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    /// Uppercase HTTP method.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Raw query string, without the `?`.
    pub query: Option<String>,
    /// Verified user id, for private routes.
    pub user_id: Option<String>,
    /// `cf.continent`, such as `EU`.
    pub continent: Option<String>,
    /// `cf.country`, such as `DE`.
    pub country: Option<String>,
    /// `cf.longitude`, in degrees.
    pub longitude: Option<f64>,
}

/// Route policy, cache key, region and failover order of one request.
///
/// The policy fields are `None` when no route matches the method and path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDecision {
    /// The matched route's template, such as `/generations/{id}`.
    pub route: Option<String>,
    /// `public`, `private` or `no-store`.
    pub scope: Option<String>,
    /// Seconds a shared cache keeps the response fresh.
    pub edge_ttl: Option<u32>,
    /// Seconds the browser keeps the response fresh.
    pub browser_ttl: Option<u32>,
    /// Seconds of the stale-while-revalidate window.
    pub stale_while_revalidate: Option<u32>,
    /// Seconds of the stale-if-error window.
    pub stale_if_error: Option<u32>,
    /// The browser-facing `Cache-Control` value.
    pub cache_control: Option<String>,
    /// The cache key, when the request has one.
    pub cache_key: Option<String>,
    /// Region nearest to the client.
    pub nearest_region: String,
    /// Region that serves the request: the nearest for reads, the primary for writes.
    pub serving_region: String,
    /// Regions to try, in order, starting with the serving region.
    pub failover: Vec<String>,
}

/// Computes every decision for `input`.
pub fn decide(input: &DecisionInput) -> RequestDecision {
    let matched = match_route(&input.method, &input.path);
    let policy = matched.as_ref().map(|matched| matched.policy);
    let nearest = nearest_region(
        input.continent.as_deref(),
        input.country.as_deref(),
        input.longitude,
    );
    let serving = serving_region(&input.method, nearest);
    let key = cache_key(
        &input.method,
        &input.path,
        input.query.as_deref(),
        input.user_id.as_deref(),
    );

    RequestDecision {
        route: matched.map(|matched| matched.route.template().to_owned()),
        scope: policy.map(|policy| policy.scope.as_str().to_owned()),
        edge_ttl: policy.map(|policy| policy.edge_ttl),
        browser_ttl: policy.map(|policy| policy.browser_ttl),
        stale_while_revalidate: policy.map(|policy| policy.stale_while_revalidate),
        stale_if_error: policy.map(|policy| policy.stale_if_error),
        cache_control: policy.map(|policy| cache_control(&policy)),
        cache_key: key.ok().map(|key| key.as_str().to_owned()),
        nearest_region: nearest.as_str().to_owned(),
        serving_region: serving.as_str().to_owned(),
        failover: failover_order(serving)
            .iter()
            .map(|region| region.as_str().to_owned())
            .collect(),
    }
}
