//! `/health` (liveness) and `/health/ready` (readiness after warm-up).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use velro_shared::api::{Health, Readiness};

use crate::app::AppState;

/// Health routes; they bypass the readiness gate.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
        region: state.config.region.as_str().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        l1_hits: state.cache.hits(),
        l1_misses: state.cache.misses(),
    })
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let report = state.readiness.report();
    let status = if state.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
