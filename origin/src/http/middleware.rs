//! The middleware every request passes through: request id, readiness gate,
//! database circuit breaker, error envelope, timing, default caching headers,
//! and recording for `/performance` and `/metrics`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use velro_shared::api::ErrorEnvelope;
use velro_shared::error::ErrorCode;
use velro_shared::policy;

use crate::app::AppState;
use crate::cache::Lookup;
use crate::error::{error_response, DatabaseFailure, ErrorInfo};
use crate::monitor::is_monitoring_path;

/// Header carrying the request id, kept from the client or generated here.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Maximum length of a client-supplied request id; longer or non-visible-ASCII ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request id, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Wraps every request; see the module docs.
pub async fn request_context(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id =
        incoming_request_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_string();

    let mut response = if is_gated(&state, &method, &path) {
        error_response(ErrorInfo {
            code: ErrorCode::ServiceUnavailable,
            message: "the server is warming up; retry shortly".to_string(),
            cause: None,
        })
    } else if needs_closed_database(&state, &method, &path) {
        // Reads go on, because the cache may still serve them from a stale entry.
        error_response(ErrorInfo {
            code: ErrorCode::ServiceUnavailable,
            message: "the database is unavailable; retry shortly".to_string(),
            cause: None,
        })
    } else {
        next.run(request).await
    };
    if response.extensions().get::<DatabaseFailure>().is_some() {
        state.db_breaker.record_failure();
    }

    if let Some(info) = response.extensions_mut().remove::<ErrorInfo>() {
        render_error(&mut response, &info, &request_id, &method, &path);
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let elapsed = started.elapsed();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={elapsed_ms:.3}")) {
        headers.append(SERVER_TIMING.clone(), value);
    }
    tracing::debug!(
        %method,
        route = route_label(&method, &path),
        status = response.status().as_u16(),
        duration_ms = elapsed_ms,
        request_id,
        "request served"
    );
    let lookup = response.extensions().get::<Lookup>().copied();
    state.monitor.record(
        method.as_str(),
        &path,
        response.status().as_u16(),
        elapsed,
        lookup,
        &request_id,
    );
    response
}

/// Until warm-up finishes only the monitoring routes (health, metrics,
/// performance, dashboard) and CORS preflights are served, so no client request
/// pays for a cold pool or an empty cache.
fn is_gated(state: &AppState, method: &Method, path: &str) -> bool {
    !state.readiness.is_ready() && method != Method::OPTIONS && !is_monitoring_path(path)
}

/// A write while the database breaker is open is rejected before it queues for a connection.
fn needs_closed_database(state: &AppState, method: &Method, path: &str) -> bool {
    let is_read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    !is_read && !path.starts_with("/health") && !state.db_breaker.allows()
}

fn incoming_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&X_REQUEST_ID)?.to_str().ok()?;
    let valid = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.bytes().all(|byte| byte.is_ascii_graphic());
    valid.then(|| value.to_string())
}

fn render_error(
    response: &mut Response,
    info: &ErrorInfo,
    request_id: &str,
    method: &Method,
    path: &str,
) {
    let route = route_label(method, path);
    // A 5xx with a cause is a failure to investigate. One without, such as the
    // warm-up gate, is expected back-pressure, so it stays at debug
    // level and a cold start under traffic cannot flood the log.
    match &info.cause {
        Some(cause) if response.status().is_server_error() => {
            tracing::error!(%method, route, request_id, code = %info.code, cause, "request failed");
        }
        _ => tracing::debug!(%method, route, request_id, code = %info.code, "request rejected"),
    }
    let envelope = ErrorEnvelope::new(info.code.as_str(), info.message.clone(), request_id);
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ETAG);
    *response.body_mut() = Body::from(body);
}

/// The route template for logs, so ids do not explode the number of distinct labels.
fn route_label(method: &Method, path: &str) -> &'static str {
    policy::match_route(method.as_str(), path)
        .map_or("unmatched", |matched| matched.route.template())
}
