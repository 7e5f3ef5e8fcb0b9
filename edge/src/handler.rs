//! The request flow of the worker, in order: CORS preflight, the edge's own
//! routes, route policy, access token, then a cached read or a request passed
//! to the origin. Every response leaves through [`finish`], which adds the
//! request id, region, timing and CORS headers.

use std::rc::Rc;

use serde::Serialize;
use velro_shared::decision::{decide, DecisionInput};
use velro_shared::error::ErrorCode;
use velro_shared::policy::{cache_key, invalidations, match_path, match_route, RouteMatch};
use velro_shared::routing::{nearest_region, Region};
use worker::{Context, Env, Request, Response};

use crate::config::{self, EdgeConfig};
use crate::overrides::{self, HEADER_PREFIX};
use crate::reads::{self, Read};
use crate::reply::Reply;
use crate::store::EdgeStore;
use crate::upstream::{self, Fetched, Forward};
use crate::{auth, cors};

/// Largest request body the edge forwards. The origin applies its own, smaller limit.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Maximum length of a request id accepted from a client; longer or non-printable ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Request headers that are not forwarded: hop-by-hop headers (RFC 9110 §7.6.1),
/// the ones the runtime sets itself, and Cloudflare's own.
const NOT_FORWARDED: [&str; 11] = [
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "accept-encoding",
];

/// Request headers a cached read forwards. The stored response serves every
/// request with the same key, so it may depend on nothing else: no cookies,
/// conditionals or ranges. Reading a short list also costs fewer calls into
/// JavaScript than copying every header.
const FORWARDED_ON_CACHED_READS: [&str; 5] = [
    "accept",
    "accept-language",
    "authorization",
    "origin",
    "user-agent",
];

/// Facts about the request that every step and the final headers need.
struct Exchange {
    request_id: String,
    method: String,
    nearest: Region,
    now_ms: u64,
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
        method: request.method().to_string().to_ascii_uppercase(),
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
    let Some((route, _)) = match_path(&path) else {
        return edge_error(ErrorCode::NotFound, "no such route", exchange);
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
    let forward = match forward(
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

/// Builds the request to send to the origin: the normalised path, the query,
/// the forwarded headers and, for methods with one, the body.
async fn forward(
    request: &mut Request,
    matched: &RouteMatch<'_>,
    query: Option<&str>,
    cached_read: bool,
    exchange: &Exchange,
) -> Result<Forward, Reply> {
    let mut path_and_query = matched.normalized_path();
    if let Some(query) = query.filter(|query| !query.is_empty()) {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }

    let mut headers: Vec<(String, String)> = if cached_read {
        FORWARDED_ON_CACHED_READS
            .iter()
            .filter_map(|name| header(request, name).map(|value| ((*name).to_owned(), value)))
            .collect()
    } else {
        request
            .headers()
            .entries()
            .filter(|(name, _)| is_forwarded(name))
            .collect()
    };
    if let Some(client_ip) = header(request, "cf-connecting-ip") {
        headers.push(("x-forwarded-for".to_owned(), client_ip));
    }
    headers.push(("x-request-id".to_owned(), exchange.request_id.clone()));
    // workerd decodes gzip for the worker, which must read the body to cache it.
    headers.push(("accept-encoding".to_owned(), "gzip".to_owned()));

    let body = if matches!(exchange.method.as_str(), "GET" | "HEAD") {
        None
    } else {
        let declared =
            header(request, "content-length").and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
            return Err(too_large(exchange));
        }
        let body = request.bytes().await.map_err(|_| {
            edge_error(
                ErrorCode::ValidationFailed,
                "the request body could not be read",
                exchange,
            )
        })?;
        if body.len() > MAX_BODY_BYTES {
            return Err(too_large(exchange));
        }
        Some(body)
    };

    // A cached read is fetched with GET even for HEAD, because the stored entry
    // serves both and a HEAD response has no body to store.
    let method = if cached_read {
        "GET".to_owned()
    } else {
        exchange.method.clone()
    };
    Ok(Forward {
        method,
        path_and_query,
        headers,
        body,
        nearest: exchange.nearest,
        request_id: exchange.request_id.clone(),
    })
}

/// Returns whether a request header of an uncached request goes to the origin.
/// The request id is set again, and the test overrides stay at the edge.
fn is_forwarded(name: &str) -> bool {
    let dropped = NOT_FORWARDED.contains(&name)
        || name.starts_with("cf-")
        || name.starts_with(HEADER_PREFIX)
        || name == "x-request-id";
    !dropped
}

fn too_large(exchange: &Exchange) -> Reply {
    edge_error(
        ErrorCode::PayloadTooLarge,
        &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        exchange,
    )
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
fn edge_error(code: ErrorCode, message: &str, exchange: &Exchange) -> Reply {
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

#[derive(Serialize)]
struct EdgeHealth {
    status: &'static str,
    environment: &'static str,
    nearest_region: &'static str,
    regions: Vec<RegionHealth>,
}

#[derive(Serialize)]
struct RegionHealth {
    region: &'static str,
    configured: bool,
    ejected: bool,
}

/// `GET /edge/health`: the edge's own status and its view of each region's origin.
fn edge_health(config: &EdgeConfig, exchange: &Exchange) -> Reply {
    let regions = Region::ALL
        .into_iter()
        .map(|region| RegionHealth {
            region: region.as_str(),
            configured: config.origin_url(region).is_some(),
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
async fn test_decide(request: &mut Request, exchange: &Exchange) -> Reply {
    match request.json::<DecisionInput>().await {
        Ok(input) => Reply::json(200, &decide(&input)),
        Err(error) => edge_error(
            ErrorCode::InvalidJson,
            &format!("the body is not a decision input: {error}"),
            exchange,
        ),
    }
}

/// Keeps the client's `X-Request-Id` when it is short printable ASCII, else makes a new one.
fn request_id(request: &Request) -> String {
    let incoming = header(request, "x-request-id").filter(|id| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id.bytes().all(|byte| byte.is_ascii_graphic())
    });
    incoming.unwrap_or_else(random_request_id)
}

/// Builds a random version 4 UUID. `Math.random` is enough for an id that only
/// correlates log lines and needs no secrecy.
fn random_request_id() -> String {
    let mut bytes = [0u8; 16];
    for byte in &mut bytes {
        *byte = (worker::js_sys::Math::random() * 256.0) as u8;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut hex = String::with_capacity(32);
    for byte in bytes {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0x0f), 16).unwrap_or('0'));
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn header(request: &Request, name: &str) -> Option<String> {
    request.headers().get(name).ok().flatten()
}
