//! One cached response body and its wire form in Redis.

use axum::http::HeaderValue;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use velro_shared::policy::{self, CachePolicy};

/// A response body ready to send, with the validator and policy it was built with.
#[derive(Debug, Clone)]
pub struct CachedBody {
    pub body: Bytes,
    /// Weak entity tag: the body is compressed per request, so only weak comparison applies (RFC 9110, 8.8.1).
    pub etag: String,
    pub policy: CachePolicy,
    /// When the body was loaded from the database, in Unix milliseconds.
    pub stored_at_ms: u64,
    /// Versions of the read's tags in Redis when the body was loaded, or `None`
    /// when it was loaded without Redis. An L1 hit compares them with the current
    /// ones, because another instance's invalidation may not have arrived yet.
    pub redis_versions: Option<Vec<u64>>,
    /// `etag` and the policy's `Cache-Control` as header values, built once when
    /// the entry is made so that a cache hit only clones them. `None` when a value
    /// is not a valid header, which the constructors' inputs never produce.
    pub etag_header: Option<HeaderValue>,
    pub cache_control_header: Option<HeaderValue>,
}

impl CachedBody {
    /// Wraps a body rendered now and computes its entity tag.
    pub fn new(body: Vec<u8>, policy: CachePolicy) -> Self {
        let digest = Sha256::digest(&body);
        let etag = format!("W/\"{}\"", hex_prefix(&digest, 16));
        Self::with_headers(Bytes::from(body), etag, policy, now_ms(), None)
    }

    fn with_headers(
        body: Bytes,
        etag: String,
        policy: CachePolicy,
        stored_at_ms: u64,
        redis_versions: Option<Vec<u64>>,
    ) -> Self {
        Self {
            etag_header: HeaderValue::from_str(&etag).ok(),
            cache_control_header: HeaderValue::from_str(&policy::cache_control(&policy)).ok(),
            body,
            etag,
            policy,
            stored_at_ms,
            redis_versions,
        }
    }

    /// Age in whole seconds at `now_ms`, as the `Age` header counts it.
    pub fn age_seconds(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms) / 1000
    }

    /// Whether the entry is inside its policy's shared-cache lifetime.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.stored_at_ms) < u64::from(self.policy.edge_ttl) * 1000
    }

    /// Whether the entry may still be served because loading a fresh one failed (RFC 5861, `stale-if-error`).
    pub fn is_usable_on_error(&self, now_ms: u64) -> bool {
        let window = u64::from(self.policy.edge_ttl) + u64::from(self.policy.stale_if_error);
        now_ms.saturating_sub(self.stored_at_ms) < window * 1000
    }

    /// Seconds a cache keeps the entry: freshness plus the stale-if-error window, capped at `cap_seconds`.
    pub fn retention_seconds(&self, cap_seconds: u64) -> u64 {
        let window = u64::from(self.policy.edge_ttl) + u64::from(self.policy.stale_if_error);
        window.clamp(1, cap_seconds)
    }

    /// Encodes the entry with the tag versions it was loaded under, for Redis.
    /// The versions passed here win over [`CachedBody::redis_versions`].
    ///
    /// The form is five header lines and the body: a format marker, the store
    /// time, the comma-separated tag versions, the entity tag, and the policy.
    pub fn encode(&self, tag_versions: &[u64]) -> Vec<u8> {
        let versions = tag_versions
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let header = format!(
            "{FORMAT}\n{}\n{versions}\n{}\n{}\n",
            self.stored_at_ms,
            self.etag,
            self.policy.encode(),
        );
        let mut encoded = Vec::with_capacity(header.len() + self.body.len());
        encoded.extend_from_slice(header.as_bytes());
        encoded.extend_from_slice(&self.body);
        encoded
    }

    /// Decodes what [`CachedBody::encode`] wrote, with its tag versions in
    /// [`CachedBody::redis_versions`], or returns `None` for anything else, such
    /// as a value from an older release.
    pub fn decode(encoded: &[u8]) -> Option<Self> {
        let mut rest = encoded;
        let mut lines = [""; 5];
        for line in &mut lines {
            let end = rest.iter().position(|byte| *byte == b'\n')?;
            *line = std::str::from_utf8(&rest[..end]).ok()?;
            rest = &rest[end + 1..];
        }
        let [format, stored_at, versions, etag, policy] = lines;
        if format != FORMAT {
            return None;
        }
        let versions = if versions.is_empty() {
            Vec::new()
        } else {
            versions
                .split(',')
                .map(|version| version.parse().ok())
                .collect::<Option<Vec<u64>>>()?
        };
        let policy = CachePolicy::decode(policy)?;
        Some(Self::with_headers(
            Bytes::copy_from_slice(rest),
            etag.to_string(),
            policy,
            stored_at.parse().ok()?,
            Some(versions),
        ))
    }
}

/// Marks the encoding, so a later release can change it without misreading old values.
const FORMAT: &str = "velro-cache-v1";

fn hex_prefix(bytes: &[u8], length: usize) -> String {
    bytes
        .iter()
        .take(length / 2)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use velro_shared::policy::match_route;

    use super::*;

    fn profile(text: &str) -> CachedBody {
        CachedBody::new(
            text.as_bytes().to_vec(),
            match_route("GET", "/users/profile").unwrap().policy,
        )
    }

    #[test]
    fn encoding_round_trips() {
        let entry = profile("{\"name\":\"line\\nbreak\"}\n");
        let decoded = CachedBody::decode(&entry.encode(&[3, 17])).unwrap();
        assert_eq!(decoded.redis_versions, Some(vec![3, 17]));
        assert_eq!(decoded.body, entry.body);
        assert_eq!(decoded.etag, entry.etag);
        assert_eq!(decoded.policy, entry.policy);
        assert_eq!(decoded.stored_at_ms, entry.stored_at_ms);
        assert_eq!(decoded.etag_header, entry.etag_header);
        assert_eq!(decoded.cache_control_header, entry.cache_control_header);
    }

    #[test]
    fn header_values_match_fields() {
        let entry = profile("{}");
        assert_eq!(entry.etag_header.as_ref().unwrap(), entry.etag.as_str());
        assert_eq!(
            entry.cache_control_header.as_ref().unwrap(),
            policy::cache_control(&entry.policy).as_str()
        );
    }

    #[test]
    fn decode_rejects_other_values() {
        assert!(CachedBody::decode(b"").is_none());
        assert!(
            CachedBody::decode(b"velro-cache-v0\n1\n\nW/\"x\"\npublic 1 1 1 1 0\n{}").is_none()
        );
        assert!(
            CachedBody::decode(b"velro-cache-v1\n1\nx\nW/\"x\"\npublic 1 1 1 1 0\n{}").is_none()
        );
        assert!(
            CachedBody::decode(b"velro-cache-v1\n1\n\nW/\"x\"\nshared 1 1 1 1 0\n{}").is_none()
        );
    }

    #[test]
    fn freshness_follows_policy() {
        // The profile policy: 60 s fresh, then 300 s usable when loading fails.
        let entry = profile("{}");
        let stored = entry.stored_at_ms;
        assert!(entry.is_fresh(stored + 59_999));
        assert!(!entry.is_fresh(stored + 60_000));
        assert!(entry.is_usable_on_error(stored + 359_999));
        assert!(!entry.is_usable_on_error(stored + 360_000));
        assert_eq!(entry.retention_seconds(86_400), 360);
        assert_eq!(entry.retention_seconds(100), 100);
    }

    #[test]
    fn etag_is_weak_and_stable() {
        let first = profile("same");
        assert!(first.etag.starts_with("W/\""));
        assert_eq!(first.etag, profile("same").etag);
        assert_ne!(first.etag, profile("other").etag);
    }
}
