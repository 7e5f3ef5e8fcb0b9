//! CORS at the edge, from the same allow-list and header lists as the origin
//! (`velro_shared::cors`), so a preflight never needs an origin round trip.

use velro_shared::cors::{
    AllowedOrigins, ALLOWED_HEADERS, ALLOWED_METHODS, EXPOSED_HEADERS, PREFLIGHT_MAX_AGE_SECS,
};

use crate::reply::Reply;

/// Builds the response to a preflight (`OPTIONS`). An origin outside the allow-list gets 204
/// without any `Access-Control-*` header, so the browser blocks the real request.
pub fn preflight(allowed: &AllowedOrigins, request_origin: Option<&str>) -> Reply {
    let mut reply = Reply::empty(204);
    if allow_origin(&mut reply, allowed, request_origin) {
        reply.set_header("access-control-allow-methods", ALLOWED_METHODS.join(", "));
        reply.set_header("access-control-allow-headers", ALLOWED_HEADERS.join(", "));
        reply.set_header("access-control-max-age", PREFLIGHT_MAX_AGE_SECS.to_string());
    }
    reply
}

/// Adds the CORS headers of an actual (non-preflight) response.
///
/// The origin's own `Access-Control-*` headers are replaced, so a cached
/// response never carries the allowed origin of the request that filled it.
pub fn decorate(reply: &mut Reply, allowed: &AllowedOrigins, request_origin: Option<&str>) {
    reply
        .headers
        .retain(|(name, _)| !name.starts_with("access-control-"));
    if allow_origin(reply, allowed, request_origin) {
        reply.set_header("access-control-expose-headers", EXPOSED_HEADERS.join(", "));
    }
}

/// Sets `Access-Control-Allow-Origin` (and credentials, for a list) when the
/// request's origin is allowed, and returns whether it is.
fn allow_origin(reply: &mut Reply, allowed: &AllowedOrigins, request_origin: Option<&str>) -> bool {
    // The response depends on the Origin header whenever the allow-list is a list.
    let varies_on_origin = reply.header("vary").is_some_and(|vary| {
        vary.split(',')
            .any(|name| name.trim().eq_ignore_ascii_case("origin"))
    });
    if matches!(allowed, AllowedOrigins::List(_)) && !varies_on_origin {
        reply.append_header("vary", "Origin");
    }
    let Some(request_origin) = request_origin else {
        return false;
    };
    if !allowed.allows(request_origin) {
        return false;
    }
    match allowed {
        AllowedOrigins::Any => reply.set_header("access-control-allow-origin", "*"),
        AllowedOrigins::List(_) => {
            reply.set_header("access-control-allow-origin", request_origin);
            reply.set_header("access-control-allow-credentials", "true");
        }
    }
    true
}
