//! Velro's edge worker: a Cloudflare Worker that serves the API's cached reads
//! from the data centre's cache and sends everything else to the nearest healthy
//! regional origin.
//!
//! Every decision about a request (route policy, cache key, region, failover
//! order) comes from `velro-shared`, so the edge and the origin cannot disagree.
//! The parts, in the order a request meets them:
//!
//! - [`handler`]: the request flow, from CORS preflight to the origin.
//! - [`config`]: the worker's variables and secret, read once per isolate.
//! - [`cors`]: preflight responses and CORS headers from the shared allow-list.
//! - [`auth`]: access token verification for private routes.
//! - [`reads`]: cached reads with stale-while-revalidate and stale-if-error.
//! - [`store`]: entries in the Cache API, with the metadata the Cache API lacks.
//! - [`inflight`]: one origin fetch per key for concurrent misses in an isolate.
//! - [`forward`]: the request sent to an origin, with its headers and body.
//! - [`upstream`]: region choice, timeouts, failover and outlier detection.
//! - [`reply`]: the response type every path builds, and its final headers.
//! - [`overrides`]: test-only request headers for location and clock.
//! - [`edge_routes`]: `/edge/health`, and the decision route for the test vectors.
//! - [`request_id`]: the request id of every response.

mod auth;
mod config;
mod cors;
mod edge_routes;
mod forward;
mod handler;
mod inflight;
mod overrides;
mod reads;
mod reply;
mod request_id;
mod store;
mod upstream;

use worker::{event, Context, Env, Request, Response, Result};

/// Sets up logging once per isolate: `tracing` events go to the console, which
/// `wrangler tail` and workerd's output show.
#[event(start)]
fn start() {
    use tracing_subscriber::prelude::*;

    let console = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        // `std::time::SystemTime` is not available on wasm32-unknown-unknown, and
        // the console adds its own timestamps.
        .without_time()
        .with_writer(tracing_web::MakeWebConsoleWriter::new())
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    // `try_init` returns an error only when a global subscriber is already set
    // (tracing-subscriber 0.3), and that subscriber keeps logging.
    let _ = tracing_subscriber::registry().with(console).try_init();
}

#[event(fetch)]
async fn fetch(request: Request, env: Env, context: Context) -> Result<Response> {
    handler::handle(request, &env, &context).await
}
