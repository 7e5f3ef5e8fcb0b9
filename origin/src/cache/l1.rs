//! The L1 cache: rendered response bodies of hot reads, held in process by moka.
//!
//! Invalidation works by tag versions. Each cached read carries the tags that the
//! shared policy gives it (`user:U:profile`, `generation:G`, ...), and its entry
//! key embeds the current version of each tag. A write bumps the versions of the
//! tags it touches, so later reads build new keys and never see the old entries,
//! which age out by TTL or size. A read that captured the old versions before a
//! concurrent write committed stores its result under the old key, where no later
//! read looks, which closes the race a plain delete would leave open.
//!
//! Entries outlive their freshness by the policy's stale-if-error window, so a
//! read can still be served while the database is down.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use velro_shared::policy::CacheKey;

use super::entry::CachedBody;

/// Maximum time an entry stays in L1, whatever its policy allows.
const MAX_RETENTION_SECONDS: u64 = 86_400;

/// Most tags whose versions are remembered; a forgotten tag restarts at a fresh version, which only costs misses.
const MAX_TAGS: u64 = 200_000;

/// Each entry lives for its freshness plus its stale-if-error window.
struct RetentionExpiry;

impl Expiry<String, Arc<CachedBody>> for RetentionExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<CachedBody>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            value.retention_seconds(MAX_RETENTION_SECONDS),
        ))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<CachedBody>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            value.retention_seconds(MAX_RETENTION_SECONDS),
        ))
    }
}

/// The in-process store; cheap to clone.
#[derive(Clone)]
pub struct L1Store {
    pub(super) entries: Cache<String, Arc<CachedBody>>,
    tag_versions: moka::sync::Cache<String, u64>,
    next_version: Arc<AtomicU64>,
}

impl L1Store {
    /// Creates a store holding at most `max_bytes` of keys and bodies.
    pub fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Arc<CachedBody>| {
                u32::try_from(key.len() + value.body.len() + value.etag.len()).unwrap_or(u32::MAX)
            })
            .expire_after(RetentionExpiry)
            .build();
        Self {
            entries,
            tag_versions: moka::sync::Cache::new(MAX_TAGS),
            next_version: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The entry key for `key` under the current versions of `tags`.
    pub fn versioned_key(&self, key: &CacheKey, tags: &[String]) -> String {
        let mut versioned = String::with_capacity(key.as_str().len() + 12 * tags.len());
        versioned.push_str(key.as_str());
        for tag in tags {
            let version = self.tag_versions.get_with_by_ref(tag.as_str(), || {
                self.next_version.fetch_add(1, Ordering::Relaxed)
            });
            // Writing to a String cannot fail.
            let _ = write!(versioned, "#{version}");
        }
        versioned
    }

    /// Makes every entry carrying one of `tags` unreachable.
    pub fn invalidate_tags<'a>(&self, tags: impl IntoIterator<Item = &'a str>) {
        for tag in tags {
            let version = self.next_version.fetch_add(1, Ordering::Relaxed);
            self.tag_versions.insert(tag.to_string(), version);
        }
    }

    /// Drops every entry, for when invalidations from other instances may have been missed.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }
}
