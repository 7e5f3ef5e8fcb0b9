//! `/health` (liveness, cache and breaker counters) and `/health/ready` (readiness).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use velro_shared::api::{Health, Readiness};

use crate::app::AppState;
use crate::error::AppError;

/// Bound on the database ping behind `/health/ready`, so a hung database cannot hang the probe.
const READY_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Health routes; they bypass the readiness gate.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    let stats = state.cache.stats();
    let redis = match state.cache.l2() {
        Some(l2) => l2.breaker().state().as_str(),
        None => "disabled",
    };
    Json(Health {
        status: "ok".to_string(),
        region: state.config.region.as_str().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        release: state.config.release.clone(),
        l1_hits: stats.l1_hits,
        l1_misses: stats.l1_misses,
        l2_hits: stats.l2_hits,
        l2_misses: stats.l2_misses,
        redis: redis.to_string(),
        database: state.db_breaker.state().as_str().to_string(),
    })
}

/// Returns 200 once warm-up has finished and while the database responds to a ping, and 503 otherwise,
/// so a load balancer stops sending writes to an instance that cannot take them.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut report = state.readiness.report();
    report.release.clone_from(&state.config.release);
    if !state.readiness.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(report));
    }
    if let Err(reason) = check_database(&state).await {
        report.ready = false;
        report.reason = Some(reason);
        return (StatusCode::SERVICE_UNAVAILABLE, Json(report));
    }
    (StatusCode::OK, Json(report))
}

async fn check_database(state: &AppState) -> Result<(), String> {
    if !state.db_breaker.allows() {
        return Err("the database circuit breaker is open".to_string());
    }
    let ping = async {
        sqlx::query("SELECT 1").execute(&state.db).await?;
        Ok::<(), sqlx::Error>(())
    };
    match tokio::time::timeout(READY_PING_TIMEOUT, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            if AppError::from(error).is_unavailable() {
                state.db_breaker.record_failure();
            }
            Err("the database ping failed".to_string())
        }
        Err(_) => {
            state.db_breaker.record_failure();
            Err("the database ping timed out".to_string())
        }
    }
}
