//! Issuing access tokens (short-lived HS256 JWTs) and opaque refresh tokens.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use velro_shared::token::{self, Claims, TokenKey};

/// Lifetime of an access token. Short, because access tokens are verified without
/// a database lookup and therefore cannot be revoked before they expire.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// Lifetime of a refresh token, in milliseconds.
pub const REFRESH_TOKEN_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Signs access tokens with the server's key.
#[derive(Clone)]
pub struct TokenIssuer {
    /// Behind an `Arc` because the key is a keyed HMAC state of a few hundred
    /// bytes, and the application state holding it is cloned on every request.
    key: Arc<TokenKey>,
}

impl TokenIssuer {
    /// Creates an issuer for `key`.
    pub fn new(key: TokenKey) -> Self {
        Self { key: Arc::new(key) }
    }

    /// The key, for verification.
    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// Signs an access token for `user_id`, valid from `now_unix` for [`ACCESS_TOKEN_TTL_SECS`].
    pub fn access_token(&self, user_id: &str, now_unix: u64) -> String {
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now_unix,
            exp: now_unix + ACCESS_TOKEN_TTL_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        token::sign(&self.key, &claims)
    }
}

/// A new refresh token: 256 random bits, URL-safe.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a refresh token. A plain SHA-256 suffices: the token has
/// 256 bits of entropy, so there is nothing to brute-force that a slow hash would protect.
pub fn hash_refresh_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
