//! The origin's one error type and how it becomes an HTTP response.
//!
//! A handler returns `AppError`; its `IntoResponse` sets the status and attaches
//! an [`ErrorInfo`] extension with an empty body. The request middleware has the
//! request id, so it renders the error envelope there and logs server-side
//! failures once, with their cause. Causes never reach the client.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use velro_shared::error::ErrorCode;

/// A failure while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The client's request cannot be served as sent; `message` is shown to the client.
    #[error("{message}")]
    Client { code: ErrorCode, message: String },
    /// The server cannot take the request now; the client should retry after a pause.
    #[error("service unavailable: {reason}")]
    Unavailable { reason: String },
    /// A database failure that is not the client's fault.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// Anything else unexpected.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// 400 `validation_failed` with a message naming the field and the accepted values.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::client(ErrorCode::ValidationFailed, message)
    }

    /// 404 `not_found` for the named kind of resource.
    pub fn not_found(what: &str) -> Self {
        Self::client(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 401 `unauthorized` with the given reason.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::client(ErrorCode::Unauthorized, message)
    }

    /// An error the client caused, with its code and message.
    pub fn client(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Client {
            code,
            message: message.into(),
        }
    }

    /// The API error code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Client { code, .. } => *code,
            Self::Unavailable { .. } => ErrorCode::ServiceUnavailable,
            Self::Database(sqlx::Error::PoolTimedOut) => ErrorCode::ServiceUnavailable,
            Self::Database(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Rebuilds an error shared by a cache loader among the requests that waited on it.
    pub fn from_shared(shared: Arc<AppError>) -> Self {
        match Arc::try_unwrap(shared) {
            Ok(error) => error,
            Err(shared) => match &*shared {
                Self::Client { code, message } => Self::client(*code, message.clone()),
                Self::Unavailable { reason } => Self::Unavailable {
                    reason: reason.clone(),
                },
                other => Self::Internal(anyhow::anyhow!("{}", error_chain(other))),
            },
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

/// What the request middleware needs to render the error envelope and log the failure.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    /// The message for the client.
    pub message: String,
    /// The internal cause chain, logged and never sent.
    pub cause: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let code = self.code();
        let (message, cause) = match &self {
            Self::Client { message, .. } => (message.clone(), None),
            Self::Unavailable { reason } => (
                "the service is temporarily unavailable; retry shortly".to_string(),
                Some(reason.clone()),
            ),
            Self::Database(sqlx::Error::PoolTimedOut) => (
                "the service is busy; retry shortly".to_string(),
                Some("timed out waiting for a database connection".to_string()),
            ),
            Self::Database(_) | Self::Internal(_) => (
                "internal server error".to_string(),
                Some(error_chain(&self)),
            ),
        };
        error_response(ErrorInfo {
            code,
            message,
            cause,
        })
    }
}

/// A response with the status of `info.code` and `info` attached for the middleware to render.
pub fn error_response(info: ErrorInfo) -> Response {
    let status =
        StatusCode::from_u16(info.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = status.into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response.extensions_mut().insert(info);
    response
}

/// Formats an error with its sources, outermost first, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeout_is_unavailable_with_retry_after() {
        let response = AppError::Database(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn internal_cause_is_kept_out_of_message() {
        let response = AppError::Internal(anyhow::anyhow!("disk on fire")).into_response();
        let info = response.extensions().get::<ErrorInfo>().unwrap();
        assert_eq!(info.message, "internal server error");
        assert_eq!(info.cause.as_deref(), Some("disk on fire"));
    }

    #[test]
    fn shared_client_error_keeps_code() {
        let shared = Arc::new(AppError::not_found("generation"));
        let _other_waiter = Arc::clone(&shared);
        let error = AppError::from_shared(shared);
        assert_eq!(error.code(), ErrorCode::NotFound);
        assert_eq!(error.to_string(), "generation not found");
    }
}
