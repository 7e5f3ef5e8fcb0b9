//! `/auth`: registration, login, refresh-token rotation and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use velro_shared::api::{
    LoginRequest, RefreshRequest, RegisterRequest, TokenResponse, MAX_NAME_CHARS,
};
use velro_shared::error::ErrorCode;

use super::json::ApiJson;
use super::validate;
use crate::app::{unix_now, AppState};
use crate::auth::{
    hash_refresh_token, new_refresh_token, ACCESS_TOKEN_TTL_SECS, REFRESH_TOKEN_TTL_MS,
};
use crate::db::{self, tokens, users};
use crate::error::AppError;

/// Routes under `/auth`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
}

async fn register(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, AppError> {
    let email = validate::email(&request.email)?;
    validate::password(&request.password)?;
    let display_name = match &request.display_name {
        Some(name) => validate::required_text("display_name", name, MAX_NAME_CHARS)?,
        None => email.split('@').next().unwrap_or_default().to_string(),
    };

    let password_hash = state.passwords.hash(request.password).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let new_user = users::NewUser {
        id: &id,
        email: &email,
        password_hash: &password_hash,
        display_name: &display_name,
        now_ms: db::now_ms(),
    };
    let user = match users::insert(&state.db, &new_user).await {
        Ok(user) => user,
        Err(error) if db::is_unique_violation(&error) => {
            return Err(AppError::client(
                ErrorCode::Conflict,
                "an account with this email already exists",
            ));
        }
        Err(error) => return Err(error.into()),
    };
    tracing::info!(user_id = %user.id, "user registered");

    let family_id = uuid::Uuid::new_v4().to_string();
    let tokens = issue_tokens(&state, &user, &family_id).await?;
    Ok((StatusCode::CREATED, Json(tokens)))
}

async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, AppError> {
    let invalid = || {
        AppError::client(
            ErrorCode::InvalidCredentials,
            "email or password is incorrect",
        )
    };
    // A malformed email cannot match an account, so it gets the same error as a wrong password.
    let email = validate::email(&request.email).map_err(|_| invalid())?;
    let Some(user) = users::find_by_email(&state.db, &email).await? else {
        // Spend the time of a real check, so response timing does not reveal whether the email is registered.
        state.passwords.verify(request.password, None).await?;
        return Err(invalid());
    };
    if !state
        .passwords
        .verify_login(&user.id, request.password, user.password_hash.clone())
        .await?
    {
        return Err(invalid());
    }

    users::touch_last_active(&state.db, &user.id, db::now_ms()).await?;
    let family_id = uuid::Uuid::new_v4().to_string();
    Ok(Json(issue_tokens(&state, &user, &family_id).await?))
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, AppError> {
    let token_hash = hash_refresh_token(&request.refresh_token);
    match tokens::consume(&state.db, &token_hash, db::now_ms()).await? {
        tokens::Consumed::Valid { user_id, family_id } => {
            let user = users::find_by_id(&state.db, &user_id)
                .await?
                .ok_or_else(|| {
                    AppError::unauthorized(
                        "refresh token belongs to an account that no longer exists",
                    )
                })?;
            Ok(Json(issue_tokens(&state, &user, &family_id).await?))
        }
        tokens::Consumed::Reused => {
            tracing::warn!("a used refresh token was presented again; its session was revoked");
            Err(AppError::unauthorized(
                "refresh token was already used; the session is revoked, log in again",
            ))
        }
        tokens::Consumed::Invalid => Err(AppError::unauthorized(
            "refresh token is invalid or expired; log in again",
        )),
    }
}

async fn logout(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<StatusCode, AppError> {
    let token_hash = hash_refresh_token(&request.refresh_token);
    tokens::revoke_by_token(&state.db, &token_hash, db::now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs an access token and stores a new refresh token in `family_id`.
async fn issue_tokens(
    state: &AppState,
    user: &users::UserRow,
    family_id: &str,
) -> Result<TokenResponse, AppError> {
    let refresh_token = new_refresh_token();
    let token_hash = hash_refresh_token(&refresh_token);
    let now_ms = db::now_ms();
    let stored = tokens::NewRefreshToken {
        token_hash: &token_hash,
        user_id: &user.id,
        family_id,
        now_ms,
        expires_at_ms: now_ms + REFRESH_TOKEN_TTL_MS,
    };
    tokens::insert(&state.db, &stored).await?;
    Ok(TokenResponse {
        access_token: state.tokens.access_token(&user.id, unix_now()),
        refresh_token,
        token_type: "Bearer".to_string(),
        expires_in: ACCESS_TOKEN_TTL_SECS,
        user: user.to_api(),
    })
}
