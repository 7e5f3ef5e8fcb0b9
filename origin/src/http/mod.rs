//! The HTTP API: one module per resource, each with its own `router()`, merged here
//! under the middleware every request passes through.

mod auth;
mod dashboard;
pub mod generations;
mod health;
mod json;
mod middleware;
pub mod models;
mod monitoring;
mod path_id;
mod projects;
pub mod reads;
pub mod users;
mod validate;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::Router;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use velro_shared::cors;
use velro_shared::error::ErrorCode;

use crate::app::AppState;
use crate::config::AllowedOrigins;
use crate::error::AppError;

pub use middleware::{RequestId, X_REQUEST_ID};

/// Largest request body accepted, in bytes; the largest valid body (a 2,000-character
/// prompt with its fields) is far below it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Bodies at or below this size are sent uncompressed: compressing them costs
/// more CPU than the bytes it saves.
const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// Builds the application's router.
pub fn router(state: AppState) -> Router {
    let compression = CompressionLayer::new().gzip(true).br(true).compress_when(
        SizeAbove::new(COMPRESS_ABOVE_BYTES)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES),
    );

    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(projects::router())
        .merge(generations::router())
        .merge(models::router())
        .merge(health::router())
        .merge(monitoring::router())
        .merge(dashboard::router())
        .fallback(|| async { AppError::client(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            AppError::client(
                ErrorCode::MethodNotAllowed,
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(compression)
        .layer(cors(&state.config.allowed_origins))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_context,
        ))
        .with_state(state)
}

/// CORS for browsers on the allowed origins. With `*`, credentials are never
/// allowed, because the CORS protocol forbids that combination.
fn cors(allowed: &AllowedOrigins) -> CorsLayer {
    let methods: Vec<Method> = cors::ALLOWED_METHODS
        .iter()
        .filter_map(|method| Method::from_bytes(method.as_bytes()).ok())
        .collect();
    let layer = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(cors::ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(cors::EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(std::time::Duration::from_secs(u64::from(
            cors::PREFLIGHT_MAX_AGE_SECS,
        )));
    match allowed {
        AllowedOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        AllowedOrigins::List(origins) => {
            let origins: Vec<HeaderValue> = origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok())
                .collect();
            layer
                .allow_origin(AllowOrigin::list(origins))
                .allow_credentials(true)
        }
    }
}
