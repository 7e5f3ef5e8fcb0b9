//! Cached responses in the data centre's Cache API, with the metadata the Cache
//! API does not keep: when the entry was stored and the policy it was stored under.
//!
//! The Cache API reads `Cache-Control` to decide whether and how long to keep an
//! entry, and refuses `private` responses. So the stored copy carries its own
//! `Cache-Control: public, max-age=<retention>`, covering the stale windows, and
//! the origin's `Cache-Control` and `Vary` travel in internal headers that are
//! restored when the entry is served. A private entry is safe under `public`,
//! because its key contains the verified user id and no client can request it.

use velro_shared::freshness::retention_secs;
use velro_shared::policy::{CacheKey, CachePolicy};
use worker::{Cache, Response};

use crate::reply::{Body, Reply};

/// Header with the unix milliseconds at which the entry was stored.
const STORED_AT: &str = "x-velro-stored-at";
/// Header with the policy the entry was stored under, as written by `CachePolicy::encode`.
const POLICY: &str = "x-velro-policy";
/// Headers carrying the origin's `Cache-Control` and `Vary`.
const ORIGIN_CACHE_CONTROL: &str = "x-velro-origin-cache-control";
const ORIGIN_VARY: &str = "x-velro-origin-vary";

/// Headers never stored: they depend on the request or the connection, or the
/// edge sets them again on every response.
const NOT_STORED: [&str; 10] = [
    "age",
    "cache-status",
    "connection",
    "keep-alive",
    "server-timing",
    "set-cookie",
    "transfer-encoding",
    "x-edge-region",
    "x-origin-region",
    "x-request-id",
];

/// A response read back from the cache.
#[derive(Debug)]
pub struct Stored {
    /// The response as the origin sent it, with its own `Cache-Control` and `Vary`.
    pub reply: Reply,
    pub stored_at_ms: u64,
    pub policy: CachePolicy,
}

impl Stored {
    /// Returns the entry's age in milliseconds at `now_ms`, zero when the clock went backwards.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms)
    }
}

/// The data centre's cache, with entries keyed by [`CacheKey`].
pub struct EdgeStore {
    cache: Cache,
    /// Scheme and host under which entries are keyed, such as `https://api.velro.ai`.
    base_url: String,
}

impl EdgeStore {
    /// Opens the default cache of the zone serving `base_url`.
    pub fn new(base_url: &str) -> EdgeStore {
        EdgeStore {
            cache: Cache::default(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Builds the URL an entry is stored under. The Cache API keys entries by URL,
    /// so the cache key becomes one percent-encoded path segment under a prefix
    /// that no API route uses.
    fn url(&self, key: &CacheKey) -> String {
        format!(
            "{}/_velro-edge-cache/v1/{}",
            self.base_url,
            percent_encode(key.as_str())
        )
    }

    /// Looks up the entry of `key`. An entry without readable metadata counts as absent.
    pub async fn get(&self, key: &CacheKey) -> worker::Result<Option<Stored>> {
        let Some(response) = self.cache.get(self.url(key), false).await? else {
            return Ok(None);
        };
        // The body is passed to the client unread; only the headers cross into Wasm.
        let mut reply = Reply::pass(response);

        let stored_at_ms = reply.header(STORED_AT).and_then(|value| value.parse().ok());
        let policy = reply.header(POLICY).and_then(CachePolicy::decode);
        let (Some(stored_at_ms), Some(policy)) = (stored_at_ms, policy) else {
            return Ok(None);
        };

        let origin_cache_control = reply.header(ORIGIN_CACHE_CONTROL).map(str::to_owned);
        let origin_vary = reply.header(ORIGIN_VARY).map(str::to_owned);
        // `cf-cache-status` is the Cache API's own header on what it returns.
        for internal in [
            STORED_AT,
            POLICY,
            ORIGIN_CACHE_CONTROL,
            ORIGIN_VARY,
            "cache-control",
            "vary",
            "cf-cache-status",
        ] {
            reply.remove_header(internal);
        }
        if let Some(value) = origin_cache_control {
            reply.set_header("cache-control", value);
        }
        if let Some(value) = origin_vary {
            reply.set_header("vary", value);
        }
        Ok(Some(Stored {
            reply,
            stored_at_ms,
            policy,
        }))
    }

    /// Stores `reply` under `key` with `policy`, received at `now_ms`.
    pub async fn put(
        &self,
        key: &CacheKey,
        reply: &Reply,
        policy: &CachePolicy,
        now_ms: u64,
    ) -> worker::Result<()> {
        let mut stored = Reply {
            status: reply.status,
            headers: reply
                .headers
                .iter()
                .filter(|(name, _)| {
                    !NOT_STORED.contains(&name.as_str()) && !name.starts_with("access-control-")
                })
                .cloned()
                .collect(),
            body: Body::Bytes(reply.body.bytes().to_vec()),
        };
        if let Some(value) = stored.header("cache-control").map(str::to_owned) {
            stored.set_header(ORIGIN_CACHE_CONTROL, value);
        }
        if let Some(value) = stored.header("vary").map(str::to_owned) {
            stored.set_header(ORIGIN_VARY, value);
        }
        stored.remove_header("vary");
        stored.set_header(
            "cache-control",
            format!("public, max-age={}", retention_secs(policy)),
        );
        // RFC 9111 §4.2.3: a response that arrives with `Age` was already that
        // many seconds old, for instance when the origin served it from its cache.
        let age_ms = reply
            .header("age")
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_mul(1000);
        stored.set_header(STORED_AT, now_ms.saturating_sub(age_ms).to_string());
        stored.set_header(POLICY, policy.encode());

        let response: Response = stored.into_response(false)?;
        self.cache.put(self.url(key), response).await
    }

    /// Deletes the entry of `key`, and returns whether there was one.
    pub async fn delete(&self, key: &CacheKey) -> worker::Result<bool> {
        let outcome = self.cache.delete(self.url(key), false).await?;
        Ok(matches!(outcome, worker::CacheDeletionOutcome::Success))
    }
}

/// Percent-encodes every byte outside RFC 3986's unreserved set, so the key fits
/// in one path segment and no two keys share a URL.
fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(text.len() * 3 / 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    encoded
}
