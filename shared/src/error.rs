//! The API's error codes, with the HTTP status each one maps to and what a caller
//! (a browser, or the edge in front of the origin) can do about it.

/// Machine-readable error code carried in `error.code` of the error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not valid JSON, or not the expected shape.
    InvalidJson,
    /// A field or query parameter has a value the API does not accept.
    ValidationFailed,
    /// The request needs an access token and carried none, or an invalid one.
    Unauthorized,
    /// The access token was valid but has expired; refresh it and retry.
    TokenExpired,
    /// Email and password do not match an account.
    InvalidCredentials,
    /// The resource does not exist or belongs to another user.
    NotFound,
    /// The method is not defined for this route.
    MethodNotAllowed,
    /// The request conflicts with existing state, such as a registered email.
    Conflict,
    /// An `Idempotency-Key` was reused with a different request body.
    IdempotencyKeyReused,
    /// The body exceeds the size limit.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The server is warming up, overloaded or lost a dependency; retry after a pause.
    ServiceUnavailable,
    /// The origin did not respond in time; retrying or serving stale can help.
    GatewayTimeout,
    /// An unexpected failure on the server.
    Internal,
}

impl ErrorCode {
    /// The snake_case code sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::ValidationFailed => "validation_failed",
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::InvalidCredentials => "invalid_credentials",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ServiceUnavailable => "service_unavailable",
            Self::GatewayTimeout => "gateway_timeout",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status code for this error.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidJson | Self::ValidationFailed => 400,
            Self::Unauthorized | Self::TokenExpired | Self::InvalidCredentials => 401,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::IdempotencyKeyReused => 422,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ServiceUnavailable => 503,
            Self::GatewayTimeout => 504,
            Self::Internal => 500,
        }
    }

    /// Whether the same request may succeed later unchanged; a cache may serve a
    /// stale copy in the meantime (RFC 5861 `stale-if-error`).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::ServiceUnavailable | Self::GatewayTimeout | Self::Internal
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_codes() {
        assert_eq!(ErrorCode::InvalidJson.status(), 400);
        assert_eq!(ErrorCode::TokenExpired.status(), 401);
        assert_eq!(ErrorCode::NotFound.status(), 404);
        assert_eq!(ErrorCode::PayloadTooLarge.status(), 413);
        assert_eq!(ErrorCode::ServiceUnavailable.status(), 503);
    }

    #[test]
    fn only_server_side_errors_are_retryable() {
        assert!(ErrorCode::ServiceUnavailable.is_retryable());
        assert!(!ErrorCode::NotFound.is_retryable());
        assert!(!ErrorCode::Unauthorized.is_retryable());
    }
}
