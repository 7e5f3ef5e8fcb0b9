//! Cacheable reads: L1 lookup, entity tags, conditional requests and caching headers.
//!
//! A handler for a cacheable GET hands its loader to [`respond`]. The loader
//! runs only when neither cache level has the entry fresh. Its rendered body is
//! stored with a weak entity tag and the policy that `velro-shared` gives the
//! route, so the origin and the edge send the same `Cache-Control` for the same
//! response. While the database breaker is open the loader is not called at all,
//! and a stale entry inside its stale-if-error window is served instead.

use std::future::Future;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use velro_shared::freshness::etag_matches;
use velro_shared::policy::{self, CachePolicy, KeyError, Scope};

use crate::app::AppState;
use crate::cache::{now_ms, CachedBody, Lookup};
use crate::error::AppError;

static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// RFC 7234's `Warning` (obsoleted by RFC 9111, still read by some clients and proxies).
static WARNING: HeaderName = HeaderName::from_static("warning");

/// The parts of a GET request that decide its cache entry and conditional response.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub if_none_match: Option<String>,
}

impl ReadRequest {
    /// Drops the query string, for routes without parameters, so a client cannot
    /// mint new cache entries by appending arbitrary ones.
    pub fn without_query(self) -> Self {
        Self {
            query: None,
            ..self
        }
    }

    /// A plain GET of `path`, for reads the server makes itself, such as warm-up.
    pub fn get(path: &str) -> Self {
        Self {
            method: "GET".to_string(),
            path: path.to_string(),
            query: None,
            if_none_match: None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReadRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            method: parts.method.as_str().to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            if_none_match: parts
                .headers
                .get(header::IF_NONE_MATCH)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string),
        })
    }
}

/// Serves a cacheable read with the route's own policy.
pub async fn respond<T, F, Fut>(
    state: &AppState,
    read: &ReadRequest,
    user_id: Option<&str>,
    load: F,
) -> Result<Response, AppError>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    respond_with_policy(state, read, user_id, |route_policy| async move {
        Ok((load().await?, route_policy))
    })
    .await
}

/// Serves a cacheable read whose policy depends on what was loaded, such as a
/// generation that caches long once completed and briefly while it runs. The
/// loader gets the route's own policy and returns the one to store.
pub async fn respond_with_policy<T, F, Fut>(
    state: &AppState,
    read: &ReadRequest,
    user_id: Option<&str>,
    load: F,
) -> Result<Response, AppError>
where
    T: Serialize,
    F: FnOnce(CachePolicy) -> Fut,
    Fut: Future<Output = Result<(T, CachePolicy), AppError>>,
{
    let matched = policy::match_route(&read.method, &read.path)
        .ok_or_else(|| anyhow::anyhow!("no cache policy for {} {}", read.method, read.path))?;
    let key = match policy::cache_key(&read.method, &read.path, read.query.as_deref(), user_id) {
        Ok(key) => key,
        // The policy rejects whitespace and control characters, which would let two
        // different requests share one key; such a request is the client's mistake.
        Err(KeyError::NotCacheable) => {
            return Err(AppError::validation(
                "the path or query string contains whitespace or control characters",
            ));
        }
        Err(error) => {
            return Err(
                anyhow::anyhow!("cache key for {} {}: {error}", read.method, read.path).into(),
            );
        }
    };
    let tags = policy::read_tags(&matched, user_id);
    let (entry, lookup) = state
        .cache
        .get_or_load(&key, &tags, || async move {
            if !state.db_breaker.allows() {
                return Err(AppError::database_circuit_open());
            }
            let (value, policy) = match load(matched.policy).await {
                Ok(loaded) => loaded,
                Err(AppError::DatabaseUnavailable(error)) => {
                    // Counted here, because a stale entry may be served and hide the error from the middleware.
                    state.db_breaker.record_failure();
                    return Err(AppError::Unavailable {
                        reason: format!("loading {} failed: {error}", read.path),
                    });
                }
                Err(error) => return Err(error),
            };
            let body = serde_json::to_vec(&value)
                .map_err(|error| anyhow::anyhow!("serialising a response failed: {error}"))?;
            Ok(CachedBody::new(body, policy))
        })
        .await?;
    Ok(cached_response(
        &entry,
        lookup,
        read.if_none_match.as_deref(),
    ))
}

fn cached_response(
    entry: &Arc<CachedBody>,
    lookup: Lookup,
    if_none_match: Option<&str>,
) -> Response {
    let not_modified =
        if_none_match.is_some_and(|candidates| etag_matches(candidates, &entry.etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = entry.body.clone().into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };

    let headers = response.headers_mut();
    if let Some(etag) = &entry.etag_header {
        headers.insert(header::ETAG, etag.clone());
    }
    if let Some(cache_control) = &entry.cache_control_header {
        headers.insert(header::CACHE_CONTROL, cache_control.clone());
    }
    if entry.policy.scope == Scope::Private {
        // The body depends on the caller, so any cache in between must key on the token too.
        headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
    }
    // Cache-Status parameters as in RFC 9211.
    let status = match lookup {
        Lookup::L1Hit => "velro-origin; hit",
        Lookup::L2Hit => "velro-origin; hit; detail=l2",
        Lookup::Miss => "velro-origin; fwd=miss; stored",
        Lookup::StaleOnError => "velro-origin; fwd=stale; fwd-status=503; detail=stale-if-error",
    };
    headers.insert(CACHE_STATUS.clone(), HeaderValue::from_static(status));
    if lookup == Lookup::StaleOnError {
        headers.insert(
            WARNING.clone(),
            HeaderValue::from_static("111 velro-origin \"Revalidation Failed\""),
        );
    }
    if lookup != Lookup::Miss {
        headers.insert(header::AGE, HeaderValue::from(entry.age_seconds(now_ms())));
    }
    // For the request recorder in the middleware, which counts cache hits per route.
    response.extensions_mut().insert(lookup);
    response
}
