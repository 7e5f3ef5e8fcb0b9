//! `ApiJson`: axum's JSON extractor with its rejections in the API's error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use velro_shared::error::ErrorCode;

use crate::error::AppError;

/// A JSON request body; bad input becomes a 400, 413 or 415 error envelope.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

fn rejection_to_error(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => AppError::client(
            ErrorCode::UnsupportedMediaType,
            "request body must be JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(error) => AppError::client(
            ErrorCode::InvalidJson,
            format!("request body is not valid JSON: {}", error.body_text()),
        ),
        JsonRejection::JsonDataError(error) => AppError::client(
            ErrorCode::InvalidJson,
            format!("request body has the wrong shape: {}", error.body_text()),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::client(
            ErrorCode::PayloadTooLarge,
            format!(
                "request body is larger than the limit of {} bytes",
                super::MAX_BODY_BYTES
            ),
        ),
        other => AppError::client(
            ErrorCode::InvalidJson,
            format!("request body could not be read: {}", other.body_text()),
        ),
    }
}
