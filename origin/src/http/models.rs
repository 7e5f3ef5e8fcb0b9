//! `/models`: the public catalogue of generation models.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use velro_shared::api::ModelList;

use super::reads::{self, ReadRequest};
use crate::app::AppState;
use crate::db;
use crate::error::AppError;

/// Routes under `/models`.
pub fn router() -> Router<AppState> {
    Router::new().route("/models", get(list_models))
}

async fn list_models(
    State(state): State<AppState>,
    read: ReadRequest,
) -> Result<Response, AppError> {
    // The catalogue is the same whatever the query string, so it gets one cache entry.
    serve_catalogue(&state, &read.without_query()).await
}

/// Serves the catalogue through the cache; warm-up calls it to fill L1.
pub async fn serve_catalogue(state: &AppState, read: &ReadRequest) -> Result<Response, AppError> {
    reads::respond(state, read, None, || async {
        Ok(ModelList {
            items: db::models::list(&state.db).await?,
        })
    })
    .await
}
