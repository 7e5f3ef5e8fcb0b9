//! The request the edge sends to an origin: the normalised path and query, the
//! forwarded headers, and the body, bounded in size.

use futures_util::StreamExt;
use velro_shared::error::ErrorCode;
use velro_shared::policy::{Route, RouteMatch};
use worker::Request;

use crate::handler::{edge_error, header, Exchange};
use crate::overrides::HEADER_PREFIX;
use crate::reply::Reply;
use crate::upstream::Forward;

/// Maximum request body the edge forwards, in bytes. The origin applies its own, smaller limit.
const MAX_BODY_BYTES: usize = 1024 * 1024;

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

/// Builds the request to send to the origin: the normalised path, the query,
/// the forwarded headers and, for methods with one, the body.
pub async fn build(
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
        Some(read_body(request, exchange).await?)
    };

    // A cached read is fetched with GET even for HEAD, because the stored entry
    // serves both and a HEAD response has no body to store.
    let method = if cached_read {
        "GET".to_owned()
    } else {
        exchange.method.clone()
    };
    let has_idempotency_key = headers
        .iter()
        .any(|(name, value)| name == "idempotency-key" && !value.trim().is_empty());
    Ok(Forward {
        retry_allowed: may_retry(&method, matched, has_idempotency_key),
        method,
        path_and_query,
        headers,
        body,
        nearest: exchange.nearest,
        request_id: exchange.request_id.clone(),
    })
}

/// Reads the request body chunk by chunk and stops at [`MAX_BODY_BYTES`], so a
/// huge chunked body cannot grow the isolate's memory, which Wasm never returns.
async fn read_body(request: &mut Request, exchange: &Exchange) -> Result<Vec<u8>, Reply> {
    let unreadable = || {
        edge_error(
            ErrorCode::ValidationFailed,
            "the request body could not be read",
            exchange,
        )
    };
    let mut stream = request.stream().map_err(|_| unreadable())?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| unreadable())?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large(exchange));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Returns whether a request header of an uncached request goes to the origin.
/// The request id and `X-Forwarded-For` are set again, and the test overrides
/// stay at the edge.
fn is_forwarded(name: &str) -> bool {
    let dropped = NOT_FORWARDED.contains(&name)
        || name.starts_with("cf-")
        || name.starts_with(HEADER_PREFIX)
        || name == "x-request-id"
        || name == "x-forwarded-for";
    !dropped
}

/// Returns whether a failed attempt may be repeated against another region:
/// for idempotent methods (RFC 9110 §9.2.2) always, and for other writes only
/// where the origin deduplicates by `Idempotency-Key`, which is
/// `POST /generations` alone. Elsewhere a retry after an attempt that reached
/// the database would apply the write twice.
fn may_retry(method: &str, matched: &RouteMatch<'_>, has_idempotency_key: bool) -> bool {
    match method {
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" => true,
        "POST" => has_idempotency_key && matched.route == Route::Generations,
        _ => false,
    }
}

fn too_large(exchange: &Exchange) -> Reply {
    edge_error(
        ErrorCode::PayloadTooLarge,
        &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        exchange,
    )
}
