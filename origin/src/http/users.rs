//! `/users/profile`: the caller's own profile.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use velro_shared::api::{UpdateProfileRequest, User, MAX_NAME_CHARS};
use velro_shared::policy;

use super::json::ApiJson;
use super::reads::{self, ReadRequest};
use super::validate;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{self, users};
use crate::error::AppError;

/// Routes under `/users`.
pub fn router() -> Router<AppState> {
    Router::new().route("/users/profile", get(get_profile).patch(update_profile))
}

async fn get_profile(
    State(state): State<AppState>,
    user: AuthUser,
    read: ReadRequest,
) -> Result<Response, AppError> {
    serve_profile(&state, &read.without_query(), &user.id).await
}

/// Serves a user's profile through the cache; warm-up calls it to pre-load recently active users.
pub async fn serve_profile(
    state: &AppState,
    read: &ReadRequest,
    user_id: &str,
) -> Result<Response, AppError> {
    reads::respond(state, read, Some(user_id), || async {
        let row = users::find_by_id(&state.db, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        Ok(row.to_api())
    })
    .await
}

async fn update_profile(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(request): ApiJson<UpdateProfileRequest>,
) -> Result<Json<User>, AppError> {
    let Some(display_name) = request.display_name else {
        let row = users::find_by_id(&state.db, &user.id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        return Ok(Json(row.to_api()));
    };
    let display_name = validate::required_text("display_name", &display_name, MAX_NAME_CHARS)?;
    let row = users::update_display_name(&state.db, &user.id, &display_name, db::now_ms())
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    state
        .cache
        .invalidate(&policy::invalidations("PATCH", "/users/profile", &user.id))
        .await;
    // Written through to the cache: the next read is a hit, and is still served
    // if the database fails right after this write.
    let profile = row.to_api();
    let cached = reads::respond(
        &state,
        &ReadRequest::get("/users/profile"),
        Some(&user.id),
        || {
            let profile = profile.clone();
            async move { Ok(profile) }
        },
    )
    .await;
    if let Err(error) = cached {
        tracing::debug!(user_id = %user.id, %error, "caching the updated profile failed");
    }
    Ok(Json(profile))
}
