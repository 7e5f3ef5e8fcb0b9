//! Authentication: password hashing, access and refresh tokens, the JWT key, and
//! the extractor that turns a bearer token into the calling user.

mod extract;
mod key;
mod password;
mod tokens;

pub use extract::AuthUser;
pub use key::load_token_key;
pub use password::PasswordHasher;
pub use tokens::{
    hash_refresh_token, new_refresh_token, TokenIssuer, ACCESS_TOKEN_TTL_SECS, REFRESH_TOKEN_TTL_MS,
};
