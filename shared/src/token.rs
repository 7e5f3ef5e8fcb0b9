//! HS256 access tokens (JWT, RFC 7519), signed by the origin and verified by the
//! edge and the origin with the same secret.
//!
//! [`sign`] writes the header `{"alg":"HS256","typ":"JWT"}`. [`verify`] accepts any
//! header whose `alg` is `HS256` and rejects every other `alg`, because letting the
//! token choose its algorithm would let an attacker pick `none`. The current time is
//! a parameter, so the code runs unchanged in the Wasm edge worker.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ErrorCode;

type HmacSha256 = Hmac<Sha256>;

/// How far in the future `iat` may be, in seconds, to absorb clock differences between hosts.
pub const CLOCK_SKEW_LEEWAY_SECS: u64 = 30;

/// Shortest accepted secret, in bytes: the HMAC-SHA256 output size (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Maximum token length, in bytes, that [`verify`] decodes. A token with UUID `sub`
/// and `jti` is 248 bytes long.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Base64url of `{"alg":"HS256","typ":"JWT"}`, the header of every token [`sign`] writes.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Signing and verification key; its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct TokenKey(HmacSha256);

impl TokenKey {
    /// Builds a key from the shared secret, rejecting one shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: &[u8]) -> Result<TokenKey, TokenError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::WeakKey);
        }
        // HMAC accepts keys of any length (hmac 0.12 hashes long ones), so this branch is unreachable.
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| TokenError::WeakKey)?;
        Ok(TokenKey(mac))
    }

    /// Clones the MAC keyed with the secret, ready for one message.
    fn mac(&self) -> HmacSha256 {
        self.0.clone()
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// Claims of an access token; times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// When the token was issued.
    pub iat: u64,
    /// When the token expires; it is invalid from this second on.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
}

/// Reason a token was rejected or a key could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is too long, lacks three dot-separated parts, or a part is not valid base64url or JSON.
    #[error("access token is malformed: expected three base64url parts holding a JSON header and claims")]
    Malformed,
    /// The header names an algorithm other than HS256, such as `none`.
    #[error("access token algorithm is not supported: only HS256 is accepted")]
    UnsupportedAlgorithm,
    /// The signature does not match the header and claims.
    #[error("access token signature is invalid")]
    BadSignature,
    /// The current time is at or past `exp`; the client should refresh the token.
    #[error("access token has expired; refresh it and retry")]
    Expired,
    /// `iat` is further in the future than the clock-skew leeway allows.
    #[error("access token is not valid yet: it was issued more than {leeway} seconds in the future", leeway = CLOCK_SKEW_LEEWAY_SECS)]
    NotYetValid,
    /// The secret is shorter than 32 bytes.
    #[error("token secret is too short: it must be at least 32 bytes")]
    WeakKey,
}

impl TokenError {
    /// Maps the error to its API error code: `token_expired` for an expired token, so the
    /// client can tell that a refresh helps, and `unauthorized` for the rest.
    pub fn code(self) -> ErrorCode {
        match self {
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Malformed
            | TokenError::UnsupportedAlgorithm
            | TokenError::BadSignature
            | TokenError::NotYetValid
            | TokenError::WeakKey => ErrorCode::Unauthorized,
        }
    }
}

/// The header fields `verify` reads; other fields are ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    /// Present only when the token needs extensions that must be understood.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Signs `claims` into a compact JWT with the header `{"alg":"HS256","typ":"JWT"}`.
pub fn sign(key: &TokenKey, claims: &Claims) -> String {
    // Claims holds only strings and integers, and serde_json fails only on maps with
    // non-string keys or on a Serialize impl that reports an error, so this cannot fail.
    let payload = serde_json::to_vec(claims).expect("Claims always serialises to JSON");

    let mut token = String::from(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);

    let mut mac = key.mac();
    mac.update(token.as_bytes());
    let signature = mac.finalize().into_bytes();

    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// Verifies a compact JWT and returns its claims.
///
/// Checks, in order: the length bound, three parts, the header's `alg`, the
/// signature (compared in constant time), the claims, then the times. The token is
/// expired when `now_unix >= exp`. `iat` may be up to [`CLOCK_SKEW_LEEWAY_SECS`] in
/// the future.
pub fn verify(key: &TokenKey, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
    // Bounding the length first keeps base64 and JSON decoding of hostile input cheap.
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }

    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };

    let header: Header = decode_json(header_b64)?;
    if header.alg != "HS256" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    // RFC 7515 §4.1.11: a recipient that does not understand an extension listed in
    // `crit` must reject the token, and this verifier understands none.
    if header.crit.is_some() {
        return Err(TokenError::UnsupportedAlgorithm);
    }

    // The engine rejects padding and non-zero trailing bits, so each signature has
    // exactly one accepted encoding.
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed)?;
    // The signed input is the first two parts with the dot between them, as sent. The
    // end index is the byte position of the second '.', an ASCII char, so it is a char
    // boundary and the slice cannot panic.
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;

    let claims: Claims = decode_json(payload_b64)?;
    if now_unix >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.iat > now_unix.saturating_add(CLOCK_SKEW_LEEWAY_SECS) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// Decodes one base64url part and parses it as JSON; any failure is `Malformed`.
fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    /// Token for `claims(NOW, NOW + 900)` under `SECRET`, computed independently with
    /// Python's `hmac`, `hashlib` and `base64` modules.
    const REFERENCE_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMCwianRpIjoianRpLTEifQ.7ddykh3cGv_V_fd95bgYLdyKFDlSFjmY0PeuXwUoKYI";

    fn key() -> TokenKey {
        match TokenKey::new(SECRET) {
            Ok(key) => key,
            Err(error) => panic!("test secret should be accepted: {error}"),
        }
    }

    fn claims(iat: u64, exp: u64) -> Claims {
        Claims {
            sub: "user-1".to_owned(),
            iat,
            exp,
            jti: "jti-1".to_owned(),
        }
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Builds a token from a raw header and payload, signed with `SECRET`.
    fn signed_with_header(header_json: &str, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", b64(header_json.as_bytes()), b64(&payload));
        let mut mac = key().mac();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
    }

    #[test]
    fn header_constant_encodes_header() {
        assert_eq!(b64(br#"{"alg":"HS256","typ":"JWT"}"#), HEADER_B64);
    }

    #[test]
    fn sign_matches_reference_token() {
        assert_eq!(sign(&key(), &claims(NOW, NOW + 900)), REFERENCE_TOKEN);
    }

    #[test]
    fn verify_accepts_reference_token() {
        assert_eq!(
            verify(&key(), REFERENCE_TOKEN, NOW + 10),
            Ok(claims(NOW, NOW + 900))
        );
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let original = Claims {
            sub: "b0e1c7d2".to_owned(),
            iat: 5,
            exp: 10,
            jti: "ü-\"quoted\"".to_owned(),
        };
        let token = sign(&key(), &original);
        assert_eq!(verify(&key(), &token, 5), Ok(original));
    }

    #[test]
    fn expiry_is_exact() {
        let token = sign(&key(), &claims(NOW, NOW + 900));
        assert!(verify(&key(), &token, NOW + 899).is_ok());
        assert_eq!(verify(&key(), &token, NOW + 900), Err(TokenError::Expired));
        assert_eq!(verify(&key(), &token, u64::MAX), Err(TokenError::Expired));
    }

    #[test]
    fn issued_at_allows_clock_skew() {
        let token = sign(&key(), &claims(NOW + CLOCK_SKEW_LEEWAY_SECS, NOW + 900));
        assert!(verify(&key(), &token, NOW).is_ok());

        let token = sign(&key(), &claims(NOW + CLOCK_SKEW_LEEWAY_SECS + 1, NOW + 900));
        assert_eq!(verify(&key(), &token, NOW), Err(TokenError::NotYetValid));
    }

    #[test]
    fn other_key_fails_signature() {
        let other = match TokenKey::new(b"another secret of at least 32 bytes!") {
            Ok(key) => key,
            Err(error) => panic!("secret should be accepted: {error}"),
        };
        assert_eq!(
            verify(&other, REFERENCE_TOKEN, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_claims_fail_signature() {
        let forged_payload =
            b64(br#"{"sub":"admin","iat":1700000000,"exp":1700000900,"jti":"jti-1"}"#);
        let mut parts: Vec<&str> = REFERENCE_TOKEN.split('.').collect();
        parts[1] = &forged_payload;
        assert_eq!(
            verify(&key(), &parts.join("."), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn signature_has_one_encoding() {
        // The last base64url character of a 32-byte value carries 4 data bits and 2
        // padding bits; 'I' and 'J' differ only in the padding bits.
        let altered = format!("{}J", &REFERENCE_TOKEN[..REFERENCE_TOKEN.len() - 1]);
        assert_eq!(verify(&key(), &altered, NOW), Err(TokenError::Malformed));

        let padded = format!("{REFERENCE_TOKEN}=");
        assert_eq!(verify(&key(), &padded, NOW), Err(TokenError::Malformed));

        // 40 characters decode to 30 bytes with no leftover bits, so only the MAC check fails.
        let truncated = &REFERENCE_TOKEN[..REFERENCE_TOKEN.len() - 3];
        assert_eq!(
            verify(&key(), truncated, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_rejected() {
        let payload = b64(&serde_json::to_vec(&claims(NOW, NOW + 900)).unwrap_or_default());
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            verify(&key(), &format!("{header}.{payload}."), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn other_algorithms_are_rejected() {
        for header in [
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"hs256","typ":"JWT"}"#,
            r#"{"alg":"HS256","crit":["exp"],"typ":"JWT"}"#,
        ] {
            let token = signed_with_header(header, &claims(NOW, NOW + 900));
            assert_eq!(
                verify(&key(), &token, NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn header_without_typ_is_accepted() {
        let token = signed_with_header(r#"{"alg":"HS256"}"#, &claims(NOW, NOW + 900));
        assert_eq!(verify(&key(), &token, NOW), Ok(claims(NOW, NOW + 900)));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let valid_header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let cases = [
            String::new(),
            ".".to_owned(),
            "..".to_owned(),
            "...".to_owned(),
            "a.b".to_owned(),
            format!("{REFERENCE_TOKEN}.extra"),
            "not base64!.e30.AA".to_owned(),
            format!("{}.e30.AA", b64(b"not json")),
            format!("{}.e30.AA", b64(b"[1,2]")),
            format!("{}.e30.AA", b64(br#"{"typ":"JWT"}"#)),
            format!("{valid_header}.e30.%%%"),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for token in cases {
            assert_eq!(
                verify(&key(), &token, NOW),
                Err(TokenError::Malformed),
                "{token:?}"
            );
        }
    }

    #[test]
    fn signed_but_invalid_claims_are_malformed() {
        for payload in [
            r#"{"sub":"u"}"#,
            r#"{"sub":"u","iat":-1,"exp":10,"jti":"j"}"#,
            r#"{"sub":"u","iat":1.5,"exp":10,"jti":"j"}"#,
        ] {
            let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
            let signing_input = format!("{header}.{}", b64(payload.as_bytes()));
            let mut mac = key().mac();
            mac.update(signing_input.as_bytes());
            let token = format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()));
            assert_eq!(
                verify(&key(), &token, 0),
                Err(TokenError::Malformed),
                "{payload}"
            );
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let inputs = [
            "\u{0}",
            "é.é.é",
            "....",
            "eyJ.eyJ.eyJ",
            "=.=.=",
            "a.b.c.d.e",
            "\u{FEFF}.x.y",
        ];
        for input in inputs {
            assert!(verify(&key(), input, NOW).is_err(), "{input:?}");
        }
        let long = "é".repeat(MAX_TOKEN_BYTES);
        assert_eq!(verify(&key(), &long, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn short_secret_is_weak() {
        assert_eq!(TokenKey::new(b"").map(|_| ()), Err(TokenError::WeakKey));
        assert_eq!(
            TokenKey::new(&[7; MIN_SECRET_BYTES - 1]).map(|_| ()),
            Err(TokenError::WeakKey)
        );
        assert!(TokenKey::new(&[7; MIN_SECRET_BYTES]).is_ok());
    }

    #[test]
    fn debug_hides_secret() {
        assert_eq!(format!("{:?}", key()), "TokenKey(<redacted>)");
    }

    #[test]
    fn error_codes() {
        assert_eq!(TokenError::Expired.code(), ErrorCode::TokenExpired);
        for error in [
            TokenError::Malformed,
            TokenError::UnsupportedAlgorithm,
            TokenError::BadSignature,
            TokenError::NotYetValid,
            TokenError::WeakKey,
        ] {
            assert_eq!(error.code(), ErrorCode::Unauthorized, "{error:?}");
        }
    }
}
