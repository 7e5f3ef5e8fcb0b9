//! The request flow of the worker, in order: CORS preflight, the edge's own
//! routes, route policy, access token, then a cached read or a request passed
//! to the origin. Every response leaves through [`finish`], which adds the
//! request id, region, timing and CORS headers.

use std::rc::Rc;

use velro_shared::error::ErrorCode;
use velro_shared::policy::{cache_key, invalidations, match_path, match_route};
use velro_shared::routing::{nearest_region, Region};
use worker::{Context, Env, Request, Response};

use crate::config::{self, EdgeConfig};
use crate::edge_routes::{edge_health, test_decide};
use crate::overrides;
use crate::reads::{self, Read};
use crate::reply::Reply;
use crate::request_id::request_id;
use crate::store::EdgeStore;
use crate::upstream::{self, Fetched};
use crate::{auth, cors, forward};

/// Facts about the request that every step and the final headers need.
pub struct Exchange {
    pub request_id: String,
    /// Uppercase HTTP method.
    pub method: String,
    /// Region nearest the client.
    pub nearest: Region,
    /// Current time in unix milliseconds, possibly overridden in tests.
    pub now_ms: u64,
    started_ms: u64,
}

/// Handles one request and always returns a response; failures become error envelopes.
pub async fn handle(request: Request, env: &Env, context: &Context) -> worker::Result<Response> {
    let started_ms = worker::Date::now().as_millis();
    let request_id = request_id(&request);
    let head_only = request.method() == worker::Method::Head;
    let request_origin = header(&request, "origin");

    let config = match config::load(env) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, request_id, "edge configuration is invalid");
            let mut reply = Reply::error(
                ErrorCode::Internal,
                "the edge is misconfigured; its log names the variable to fix",
                &request_id,
            );
            reply.set_header(
                "cache-status",
                "velro-edge; fwd=bypass; detail=misconfigured",
            );
            reply.set_header("x-request-id", request_id);
            return reply.into_response(head_only);
        }
    };

    let location = overrides::client_location(&request, &config);
    let exchange = Exchange {
        request_id,
        // workers-rs maps methods it does not know (PROPFIND, ...) to GET, so
        // the raw method is read from the JavaScript request instead.
        method: request.inner().method(),
        nearest: nearest_region(
            location.continent.as_deref(),
            location.country.as_deref(),
            location.longitude,
        ),
        now_ms: overrides::now_ms(&request, &config),
        started_ms,
    };

    let mut reply = route(request, &config, context, &exchange).await;
    finish(&mut reply, &config, &exchange, request_origin.as_deref());
    reply.into_response(head_only)
}

async fn route(
    mut request: Request,
    config: &Rc<EdgeConfig>,
    context: &Context,
    exchange: &Exchange,
) -> Reply {
    let url = match request.url() {
        Ok(url) => url,
        Err(_) => {
            return edge_error(
                ErrorCode::ValidationFailed,
                "the request URL is invalid",
                exchange,
            )
        }
    };
    let path = url.path().to_owned();
    let query = url.query().map(str::to_owned);

    // 1. CORS preflight, from the shared allow-list.
    if exchange.method == "OPTIONS" {
        let mut reply = cors::preflight(
            &config.allowed_origins,
            header(&request, "origin").as_deref(),
        );
        reply.set_header("cache-status", "velro-edge; fwd=bypass; detail=preflight");
        return reply;
    }

    // The edge's own routes.
    if path == "/edge/health" {
        return edge_health(config, exchange);
    }
    if path == "/edge/test/decide" && config.allows_test_overrides() {
        return test_decide(&mut request, exchange).await;
    }

    // 2. Route policy.
    let Some((route, id)) = match_path(&path) else {
        return edge_error(ErrorCode::NotFound, "no such route", exchange);
    };
    // The origin reads `{id}` as a UUID in canonical lowercase form, so every
    // spelling of one id must share its cache key and its invalidations.
    let path = match id {
        None => path.clone(),
        Some(raw) => match canonical_id(raw) {
            Some(id) => route.template().replace("{id}", &id),
            None => return edge_error(ErrorCode::NotFound, "no such resource", exchange),
        },
    };
    let Some(matched) = match_route(&exchange.method, &path) else {
        let mut reply = edge_error(
            ErrorCode::MethodNotAllowed,
            "this route does not accept that method",
            exchange,
        );
        reply.set_header("allow", route.allowed_methods().join(", "));
        return reply;
    };

    // 3. Access token, for the routes that need one.
    let user_id = if route.requires_access_token() {
        let authorization = header(&request, "authorization");
        match auth::verified_user(&config.token_key, authorization.as_deref(), exchange.now_ms) {
            Ok(user_id) => Some(user_id),
            Err(rejection) => {
                let (code, message) = rejection.code_and_message();
                return edge_error(code, &message, exchange);
            }
        }
    } else {
        None
    };

    let cached_read =
        matches!(exchange.method.as_str(), "GET" | "HEAD") && matched.policy.is_cacheable();
    let forward = match forward::build(
        &mut request,
        &matched,
        query.as_deref(),
        cached_read,
        exchange,
    )
    .await
    {
        Ok(forward) => forward,
        Err(reply) => return reply,
    };

    // 4-6. Cacheable reads: the cache, then the origin, with stale serving.
    if cached_read {
        let key = match cache_key(
            &exchange.method,
            &path,
            query.as_deref(),
            user_id.as_deref(),
        ) {
            Ok(key) => key,
            Err(_) => {
                return edge_error(
                    ErrorCode::ValidationFailed,
                    "the path or query string contains whitespace or control characters",
                    exchange,
                )
            }
        };
        let read = Read {
            key,
            route: matched.route,
            route_policy: matched.policy,
            forward,
            now_ms: exchange.now_ms,
            base_url: url.origin().ascii_serialization(),
            if_none_match: header(&request, "if-none-match"),
        };
        return reads::serve(config.clone(), context, read).await;
    }

    // 7. Everything else goes to the origin; a successful write invalidates this data centre's copies.
    let fetched = upstream::send(config, &forward, exchange.now_ms).await;
    let succeeded = fetched
        .reply
        .as_ref()
        .is_some_and(|reply| (200..300).contains(&reply.status));
    if succeeded && !matches!(exchange.method.as_str(), "GET" | "HEAD") {
        if let Some(user_id) = &user_id {
            invalidate(
                &url.origin().ascii_serialization(),
                &exchange.method,
                &path,
                user_id,
                exchange,
            )
            .await;
        }
    }
    passed_through(&fetched, exchange)
}

/// Deletes from this data centre's cache every key the write makes out of date.
///
/// NOTE: the Cache API cannot purge other data centres. Their copies expire with
/// the entries' `edge_ttl`, which is why private lists are fresh for only 10-30 s,
/// but a deleted completed generation (fresh for a day) stays visible to its
/// owner there.
async fn invalidate(base_url: &str, method: &str, path: &str, user_id: &str, exchange: &Exchange) {
    let store = EdgeStore::new(base_url);
    for key in invalidations(method, path, user_id).keys {
        if let Err(error) = store.delete(&key).await {
            tracing::error!(%error, key = key.as_str(), request_id = exchange.request_id, "deleting a cache entry after a write failed");
        }
    }
}

/// Serves the origin's response to a request the edge does not cache.
fn passed_through(fetched: &Fetched, exchange: &Exchange) -> Reply {
    let reason = if matches!(exchange.method.as_str(), "GET" | "HEAD") {
        "bypass"
    } else {
        "method"
    };
    let Some(origin) = &fetched.reply else {
        if fetched.timed_out && reason == "method" {
            // The write may have reached the database before the timeout.
            let mut reply = edge_error(
                ErrorCode::GatewayTimeout,
                "the origin did not respond in time; the write may have been applied, so check before retrying",
                exchange,
            );
            reply.set_header(
                "cache-status",
                "velro-edge; fwd=method; detail=origin-timeout",
            );
            return reply;
        }
        let mut reply = edge_error(
            ErrorCode::ServiceUnavailable,
            "no origin could be reached; retry shortly",
            exchange,
        );
        reply.set_header("retry-after", "5");
        reply.set_header(
            "cache-status",
            format!("velro-edge; fwd={reason}; detail=origin-unreachable"),
        );
        return reply;
    };
    let mut reply = origin.clone();
    let status = format!("velro-edge; fwd={reason}; fwd-status={}", origin.status);
    let cache_status = match origin.header("cache-status") {
        Some(upstream) => format!("{upstream}, {status}"),
        None => status,
    };
    reply.set_header("cache-status", cache_status);
    mark_origin(&mut reply, fetched);
    reply
}

/// Adds `X-Origin-Region` and the origin's share of `Server-Timing` to a response that used an origin.
pub fn mark_origin(reply: &mut Reply, fetched: &Fetched) {
    if let Some(region) = fetched.region {
        reply.set_header("x-origin-region", region.as_str());
        reply.append_header(
            "server-timing",
            format!(
                "origin;dur={};desc=\"{}\"",
                fetched.origin_ms,
                region.as_str()
            ),
        );
    }
}

/// Builds an error response in the API's envelope, sent by the edge without an origin.
pub fn edge_error(code: ErrorCode, message: &str, exchange: &Exchange) -> Reply {
    let mut reply = Reply::error(code, message, &exchange.request_id);
    reply.set_header(
        "cache-status",
        format!("velro-edge; fwd=bypass; detail={}", code.as_str()),
    );
    reply
}

/// Adds the headers every response carries.
fn finish(
    reply: &mut Reply,
    config: &EdgeConfig,
    exchange: &Exchange,
    request_origin: Option<&str>,
) {
    reply.set_header("x-request-id", exchange.request_id.clone());
    reply.set_header("x-edge-region", exchange.nearest.as_str());
    if reply.header("cache-status").is_none() {
        reply.set_header("cache-status", "velro-edge; fwd=bypass");
    }
    // workerd's clock does not advance while the worker computes, so this is the
    // time spent waiting on I/O; see `overrides::now_ms`.
    let edge_ms = worker::Date::now()
        .as_millis()
        .saturating_sub(exchange.started_ms);
    reply.append_header("server-timing", format!("edge;dur={edge_ms}"));
    // A preflight response already carries its own CORS headers.
    if exchange.method != "OPTIONS" {
        cors::decorate(reply, &config.allowed_origins, request_origin);
    }
}

/// Returns a percent-encoded `{id}` segment as a UUID in canonical lowercase
/// hyphenated form, as the origin reads it; `None` when it is not a UUID.
fn canonical_id(raw: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    uuid::Uuid::try_parse(&decoded)
        .ok()
        .map(|id| id.to_string())
}

/// Returns the value of request header `name`, `None` when it is absent.
pub fn header(request: &Request, name: &str) -> Option<String> {
    request.headers().get(name).ok().flatten()
}
