//! Access token verification at the edge, so a request without a valid token
//! gets 401 without an origin round trip, and private cache keys carry
//! the verified user id rather than the token.

use velro_shared::error::ErrorCode;
use velro_shared::token::{self, TokenKey};

/// Reason a request has no verified user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization: Bearer` header.
    Missing,
    /// The token failed verification.
    Invalid(token::TokenError),
}

impl Rejection {
    /// Returns the API error code and message for the 401 response.
    pub fn code_and_message(self) -> (ErrorCode, String) {
        match self {
            Rejection::Missing => (
                ErrorCode::Unauthorized,
                "access token is missing: send Authorization: Bearer <token>".to_owned(),
            ),
            Rejection::Invalid(error) => (error.code(), error.to_string()),
        }
    }
}

/// Verifies the bearer token of an `Authorization` header value at `now_ms`, and
/// returns the user id it was issued to.
pub fn verified_user(
    key: &TokenKey,
    authorization: Option<&str>,
    now_ms: u64,
) -> Result<String, Rejection> {
    let token = authorization
        .and_then(bearer_token)
        .ok_or(Rejection::Missing)?;
    let claims = token::verify(key, token, now_ms / 1000).map_err(Rejection::Invalid)?;
    Ok(claims.sub)
}

/// Extracts the token of a `Bearer` credential; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
