//! The origin's one error type and how it becomes an HTTP response.
//!
//! A handler returns `AppError`; its `IntoResponse` sets the status and attaches
//! an [`ErrorInfo`] extension with an empty body. The request middleware has the
//! request id, so it renders the error envelope there and logs server-side
//! failures once, with their cause. Causes never reach the client.

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
    /// The database cannot be reached: the connection failed, was cut, or the breaker is open.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] sqlx::Error),
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
            Self::Unavailable { .. } | Self::DatabaseUnavailable(_) => {
                ErrorCode::ServiceUnavailable
            }
            Self::Database(sqlx::Error::PoolTimedOut) => ErrorCode::ServiceUnavailable,
            Self::Database(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// 503 for a request that needs the database while its circuit breaker is open.
    pub fn database_circuit_open() -> Self {
        Self::Unavailable {
            reason: "the database circuit breaker is open".to_string(),
        }
    }

    /// Whether the failure is temporary unavailability, when a cache may serve a
    /// stale response instead (`stale-if-error`).
    pub fn is_unavailable(&self) -> bool {
        self.code() == ErrorCode::ServiceUnavailable
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_connection_error(&error) {
            Self::DatabaseUnavailable(error)
        } else {
            Self::Database(error)
        }
    }
}

/// Marks a response that failed because the database was unavailable, so the
/// request middleware can count it against the database's circuit breaker.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseFailure;

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
            Self::DatabaseUnavailable(_) => (
                "the database is unavailable; retry shortly".to_string(),
                Some(error_chain(&self)),
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
        let mut response = error_response(ErrorInfo {
            code,
            message,
            cause,
        });
        if matches!(self, Self::DatabaseUnavailable(_)) {
            response.extensions_mut().insert(DatabaseFailure);
        }
        response
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
        // Some errors, such as sqlx's, already print their source in their own message.
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
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
    fn lost_connection_is_unavailable() {
        let error = AppError::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(error.is_unavailable());
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.extensions().get::<DatabaseFailure>().is_some());
    }

    #[test]
    fn missing_row_is_not_unavailable() {
        assert!(!AppError::from(sqlx::Error::RowNotFound).is_unavailable());
    }
}
