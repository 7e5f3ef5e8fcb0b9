//! The edge's own routes, served without an origin: `GET /edge/health`, and
//! `POST /edge/test/decide` in development and test.

use serde::Serialize;
use velro_shared::decision::{decide, DecisionInput};
use velro_shared::error::ErrorCode;
use velro_shared::routing::Region;
use worker::Request;

use crate::config::EdgeConfig;
use crate::handler::{edge_error, Exchange};
use crate::reply::Reply;
use crate::upstream;

#[derive(Serialize)]
struct EdgeHealth<'a> {
    status: &'static str,
    environment: &'static str,
    nearest_region: &'static str,
    regions: Vec<RegionHealth<'a>>,
}

#[derive(Serialize)]
struct RegionHealth<'a> {
    region: &'static str,
    configured: bool,
    /// The origin URL in use, from which the deploy job reads whether blue or green is live.
    origin: Option<&'a str>,
    ejected: bool,
}

/// `GET /edge/health`: the edge's own status and its view of each region's origin.
pub fn edge_health(config: &EdgeConfig, exchange: &Exchange) -> Reply {
    let regions = Region::ALL
        .into_iter()
        .map(|region| RegionHealth {
            region: region.as_str(),
            configured: config.origin_url(region).is_some(),
            origin: config.origin_url(region),
            ejected: upstream::is_ejected(region, exchange.now_ms),
        })
        .collect();
    let mut reply = Reply::json(
        200,
        &EdgeHealth {
            status: "ok",
            environment: config.environment.as_str(),
            nearest_region: exchange.nearest.as_str(),
            regions,
        },
    );
    reply.set_header("cache-status", "velro-edge; fwd=bypass; detail=edge-health");
    reply
}

/// `POST /edge/test/decide` (development and test only): the shared crate's
/// decisions for a request, computed by this wasm32 build, for the test vectors.
pub async fn test_decide(request: &mut Request, exchange: &Exchange) -> Reply {
    match request.json::<DecisionInput>().await {
        Ok(input) => Reply::json(200, &decide(&input)),
        Err(error) => edge_error(
            ErrorCode::InvalidJson,
            &format!("the body is not a decision input: {error}"),
            exchange,
        ),
    }
}
