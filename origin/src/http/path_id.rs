//! `PathId`: the `{id}` segment of a resource path, as a canonical UUID.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::validate;
use crate::error::AppError;

/// The `{id}` of `/projects/{id}` or `/generations/{id}` in canonical lowercase
/// form, or `None` when the segment is not a UUID (or not valid UTF-8). No such
/// resource can exist then, so handlers return 404 without a query.
///
/// Canonical ids matter for caching: `/generations/%30...` and an upper-case
/// spelling name the same row, so they must also share one cache key.
pub struct PathId(Option<String>);

impl PathId {
    /// Returns the id, or a 404 naming the kind of resource.
    pub fn or_not_found(self, what: &str) -> Result<String, AppError> {
        self.0.ok_or_else(|| AppError::not_found(what))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = Path::<String>::from_request_parts(parts, state).await.ok();
        Ok(Self(
            raw.and_then(|Path(raw)| validate::canonical_uuid(&raw)),
        ))
    }
}
