//! `/performance` (JSON figures for operators and the deploy watcher) and
//! `/metrics` (Prometheus text). Both bypass the readiness gate and are not
//! recorded themselves.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;
use crate::monitor::{self, Gauges, PerformanceReport};

/// Content type of the Prometheus text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Builds the router of the monitoring routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/performance", get(performance))
        .route("/metrics", get(metrics))
}

async fn performance(State(state): State<AppState>) -> Json<PerformanceReport> {
    Json(state.monitor.performance())
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut breakers = vec![("database", state.db_breaker.state())];
    if let Some(l2) = state.cache.l2() {
        breakers.push(("redis", l2.breaker().state()));
    }
    let readiness = state.readiness.report();
    // NOTE: sqlx 0.8 does not expose how many tasks wait for a connection, so the
    // pool has no "waiting" gauge. Open minus idle connections are the ones in use.
    let gauges = Gauges {
        pool_connections: state.db.size(),
        pool_idle: state.db.num_idle(),
        pool_max: state.config.pool.max_connections(),
        breakers: &breakers,
        warmup_steps: &readiness.steps,
        resident_bytes: monitor::resident_bytes(),
    };
    let body = state.monitor.render_metrics(&gauges);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    response
}
