//! The L1 cache: rendered response bodies of hot reads, held in process by moka.
//!
//! Invalidation works by tag versions. Each cached read carries the tags that the
//! shared policy gives it (`user:U:profile`, `generation:G`, ...), and its entry
//! key embeds the current version of each tag. A write bumps the versions of the
//! tags it touches, so later reads build new keys and never see the old entries,
//! which age out by TTL or size. A read that captured the old versions before a
//! concurrent write committed stores its result under the old key, where no later
//! read looks, which closes the race a plain delete would leave open.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use moka::Expiry;
use sha2::{Digest, Sha256};
use velro_shared::policy::{CacheKey, CachePolicy, Invalidation};

use crate::error::AppError;

/// A response body ready to send, with the validator and policy it was built with.
#[derive(Debug)]
pub struct CachedBody {
    pub body: Bytes,
    /// Weak entity tag: the body is compressed per request, so only weak comparison applies (RFC 9110, 8.8.1).
    pub etag: String,
    pub policy: CachePolicy,
}

impl CachedBody {
    /// Wraps a rendered JSON body and computes its entity tag.
    pub fn new(body: Vec<u8>, policy: CachePolicy) -> Self {
        let digest = Sha256::digest(&body);
        let etag = format!("W/\"{}\"", hex_prefix(&digest, 16));
        Self {
            body: Bytes::from(body),
            etag,
            policy,
        }
    }
}

fn hex_prefix(bytes: &[u8], length: usize) -> String {
    bytes
        .iter()
        .take(length / 2)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether a lookup found the entry or had to load it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

/// Each entry lives for its policy's edge TTL, the freshness a shared cache may assume.
struct PolicyExpiry;

impl Expiry<String, Arc<CachedBody>> for PolicyExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<CachedBody>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(value.policy.edge_ttl)))
    }
}

/// Most tags whose versions are remembered; a forgotten tag restarts at a fresh version, which only costs misses.
const MAX_TAGS: u64 = 200_000;

/// The in-process cache with hit and miss counters.
#[derive(Clone)]
pub struct L1Cache {
    entries: Cache<String, Arc<CachedBody>>,
    tag_versions: moka::sync::Cache<String, u64>,
    next_version: Arc<AtomicU64>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl L1Cache {
    /// Creates a cache holding at most `max_bytes` of bodies.
    pub fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Arc<CachedBody>| {
                u32::try_from(key.len() + value.body.len() + value.etag.len()).unwrap_or(u32::MAX)
            })
            .expire_after(PolicyExpiry)
            .build();
        Self {
            entries,
            tag_versions: moka::sync::Cache::new(MAX_TAGS),
            next_version: Arc::new(AtomicU64::new(1)),
            hits: Arc::new(AtomicU64::new(0)),
            misses: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Returns the entry for `key`, loading it with `load` on a miss.
    ///
    /// Concurrent misses on one key share a single `load` (moka coalesces them),
    /// so a burst of requests for a cold key makes one database query. Errors are
    /// not cached.
    pub async fn get_or_load<F, Fut>(
        &self,
        key: &CacheKey,
        tags: &[String],
        load: F,
    ) -> Result<(Arc<CachedBody>, Lookup), AppError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedBody, AppError>>,
    {
        let versioned_key = self.versioned_key(key, tags);
        let entry = self
            .entries
            .entry(versioned_key)
            .or_try_insert_with(async move { load().await.map(Arc::new) })
            .await
            .map_err(AppError::from_shared)?;
        // Requests that waited on another request's load count as hits: they made no query.
        let lookup = if entry.is_fresh() {
            Lookup::Miss
        } else {
            Lookup::Hit
        };
        let counter = if lookup == Lookup::Hit {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok((entry.into_value(), lookup))
    }

    /// Makes every entry carrying one of the invalidation's tags unreachable.
    pub fn invalidate(&self, invalidation: &Invalidation) {
        for tag in &invalidation.tags {
            let version = self.next_version.fetch_add(1, Ordering::Relaxed);
            self.tag_versions.insert(tag.clone(), version);
        }
    }

    /// Number of lookups served from the cache since start.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Number of lookups that had to load since start.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn versioned_key(&self, key: &CacheKey, tags: &[String]) -> String {
        let mut versioned = String::with_capacity(key.as_str().len() + 12 * tags.len());
        versioned.push_str(key.as_str());
        for tag in tags {
            let version = self.tag_versions.get_with_by_ref(tag.as_str(), || {
                self.next_version.fetch_add(1, Ordering::Relaxed)
            });
            versioned.push_str(&format!("#{version}"));
        }
        versioned
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use velro_shared::policy::{cache_key, match_route, read_tags};

    use super::*;

    fn profile_key(user: &str) -> (CacheKey, Vec<String>) {
        let route = match_route("GET", "/users/profile").unwrap();
        (
            cache_key("GET", "/users/profile", None, Some(user)).unwrap(),
            read_tags(&route, Some(user)),
        )
    }

    fn body(text: &str) -> CachedBody {
        CachedBody::new(
            text.as_bytes().to_vec(),
            match_route("GET", "/users/profile").unwrap().policy,
        )
    }

    #[tokio::test]
    async fn second_lookup_is_a_hit() {
        let cache = L1Cache::new(1 << 20);
        let (key, tags) = profile_key("u1");
        let (_, first) = cache
            .get_or_load(&key, &tags, || async { Ok(body("a")) })
            .await
            .unwrap();
        let (value, second) = cache
            .get_or_load(&key, &tags, || async { Ok(body("b")) })
            .await
            .unwrap();
        assert_eq!(first, Lookup::Miss);
        assert_eq!(second, Lookup::Hit);
        assert_eq!(&value.body[..], b"a");
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
    }

    #[tokio::test]
    async fn invalidation_forces_a_reload() {
        let cache = L1Cache::new(1 << 20);
        let (key, tags) = profile_key("u1");
        cache
            .get_or_load(&key, &tags, || async { Ok(body("old")) })
            .await
            .unwrap();
        cache.invalidate(&velro_shared::policy::invalidations(
            "PATCH",
            "/users/profile",
            "u1",
        ));
        let (value, lookup) = cache
            .get_or_load(&key, &tags, || async { Ok(body("new")) })
            .await
            .unwrap();
        assert_eq!(lookup, Lookup::Miss);
        assert_eq!(&value.body[..], b"new");
    }

    #[tokio::test]
    async fn other_users_entries_survive_invalidation() {
        let cache = L1Cache::new(1 << 20);
        let (key, tags) = profile_key("u2");
        cache
            .get_or_load(&key, &tags, || async { Ok(body("u2")) })
            .await
            .unwrap();
        cache.invalidate(&velro_shared::policy::invalidations(
            "PATCH",
            "/users/profile",
            "u1",
        ));
        let (_, lookup) = cache
            .get_or_load(&key, &tags, || async { Ok(body("x")) })
            .await
            .unwrap();
        assert_eq!(lookup, Lookup::Hit);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        let cache = L1Cache::new(1 << 20);
        let (key, tags) = profile_key("u1");
        let loads = Arc::new(AtomicUsize::new(0));
        let lookups = (0..16).map(|_| {
            let loads = Arc::clone(&loads);
            let (cache, key, tags) = (cache.clone(), key.clone(), tags.clone());
            async move {
                cache
                    .get_or_load(&key, &tags, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(body("shared"))
                    })
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(lookups).await;
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = L1Cache::new(1 << 20);
        let (key, tags) = profile_key("u1");
        let failed = cache
            .get_or_load(&key, &tags, || async { Err(AppError::not_found("user")) })
            .await;
        assert!(failed.is_err());
        let (_, lookup) = cache
            .get_or_load(&key, &tags, || async { Ok(body("ok")) })
            .await
            .unwrap();
        assert_eq!(lookup, Lookup::Miss);
    }

    #[test]
    fn etag_is_weak_and_stable() {
        let first = body("same");
        let second = body("same");
        assert!(first.etag.starts_with("W/\""));
        assert_eq!(first.etag, second.etag);
        assert_ne!(first.etag, body("other").etag);
    }
}
