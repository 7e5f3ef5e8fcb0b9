//! The `AuthUser` extractor: a verified bearer token's user.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use velro_shared::token;

use crate::app::AppState;
use crate::error::AppError;

/// The user a request acts for, from a verified `Authorization: Bearer` token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            AppError::unauthorized(
                "missing Authorization header; send `Authorization: Bearer <access_token>`",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                AppError::unauthorized("Authorization header must be `Bearer <access_token>`")
            })?;
        let claims =
            token::verify(state.tokens.key(), token, crate::app::unix_now()).map_err(|error| {
                AppError::client(error.code(), format!("access token rejected: {error}"))
            })?;
        Ok(Self { id: claims.sub })
    }
}
