//! The read cache: L1 in process, then L2 in Redis when `REDIS_URL` is set, then the database.
//!
//! A lookup serves a fresh L1 entry once Redis confirms that no write has touched
//! its tags since it was loaded. A write on another instance bumps the versions
//! in Redis before it responds, but its pub/sub message may reach this instance
//! a moment after the client's next request. Without Redis, or while its breaker
//! is open, a fresh L1 entry is served as it is. Otherwise the lookup takes the key's lock in
//! L1, so concurrent misses on one key wait for one load instead of each making a
//! query, and tries L2, then the loader, filling L1 and L2 on the way back. When
//! the loader fails because the database is unavailable, the newest entry still
//! inside its stale-if-error window is served instead, from either level.
//!
//! A write invalidates by tags: in this process's L1 at once, and through Redis in
//! L2 and, by pub/sub, in every other instance's L1.

mod entry;
mod l1;
mod l2;
mod subscriber;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::ops::compute::Op;
use velro_shared::policy::{CacheKey, Invalidation};

pub use entry::{now_ms, CachedBody};
pub use l2::L2Store;
pub use subscriber::Subscription;

use crate::error::AppError;
use l1::L1Store;

/// Source of a lookup's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A fresh entry in this process.
    L1Hit,
    /// A fresh entry in Redis.
    L2Hit,
    /// Loaded from the database now.
    Miss,
    /// A stale entry, served because the database was unavailable.
    StaleOnError,
}

/// Outcome of the per-key refresh, reported out of moka's compute closure.
struct RefreshReport {
    lookup: Lookup,
    /// The loader's error, when no stale entry could stand in for it.
    failure: Option<AppError>,
    /// Whether Redis was asked, rather than skipped while its breaker was open.
    asked_l2: bool,
}

/// Hit and miss counts per level since start.
#[derive(Debug, Default)]
struct Counters {
    l1_hits: AtomicU64,
    l1_misses: AtomicU64,
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
}

/// A snapshot of the counters, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub l1_hits: u64,
    pub l1_misses: u64,
    pub l2_hits: u64,
    pub l2_misses: u64,
}

/// The two cache levels; cheap to clone.
#[derive(Clone)]
pub struct Cache {
    /// Behind an `Arc` because the store holds two moka caches, whose clones
    /// update several reference counts, and the application state holding this
    /// cache is cloned on every request.
    l1: Arc<L1Store>,
    l2: Option<Arc<L2Store>>,
    counters: Arc<Counters>,
}

impl Cache {
    /// A cache with an L1 of `l1_max_bytes` and, when given, the Redis L2.
    pub fn new(l1_max_bytes: u64, l2: Option<Arc<L2Store>>) -> Self {
        Self {
            l1: Arc::new(L1Store::new(l1_max_bytes)),
            l2,
            counters: Arc::new(Counters::default()),
        }
    }

    /// The Redis level, when configured.
    pub fn l2(&self) -> Option<&Arc<L2Store>> {
        self.l2.as_ref()
    }

    /// Starts the invalidation subscriber, when Redis is configured.
    pub fn subscribe(&self) -> Option<(Arc<Subscription>, tokio::task::JoinHandle<()>)> {
        let l2 = self.l2.as_ref()?;
        Some(subscriber::spawn(Arc::clone(l2), L1Store::clone(&self.l1)))
    }

    /// Returns the entry for `key`, loading it with `load` when no level has it fresh.
    ///
    /// Only [`AppError::is_unavailable`] failures fall back to a stale entry. Any
    /// other error, such as a 404, is returned and nothing is cached.
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
        let l1_key = self.l1.versioned_key(key, tags);
        if let Some(entry) = self.l1.entries.get(&l1_key).await {
            if entry.is_fresh(now_ms()) && self.confirmed_by_redis(&entry, tags).await {
                self.count(Lookup::L1Hit, false);
                return Ok((entry, Lookup::L1Hit));
            }
        }

        let mut report = RefreshReport {
            lookup: Lookup::Miss,
            failure: None,
            asked_l2: false,
        };
        let outcome = self
            .l1
            .entries
            .entry_by_ref(&l1_key)
            .and_compute_with(|current| {
                self.refresh(
                    key,
                    tags,
                    current.map(|entry| entry.into_value()),
                    load,
                    &mut report,
                )
            })
            .await;
        let RefreshReport {
            lookup,
            failure,
            asked_l2,
        } = report;
        if let Some(error) = failure {
            self.count(Lookup::Miss, asked_l2);
            return Err(error);
        }
        let entry = outcome
            .into_entry()
            .map(|entry| entry.into_value())
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "the cache kept no entry for {}",
                    key.as_str()
                ))
            })?;
        self.count(lookup, asked_l2);
        Ok((entry, lookup))
    }

    /// Whether Redis has the tag versions `entry` was loaded under; true without
    /// Redis or tags, and while Redis is unavailable.
    async fn confirmed_by_redis(&self, entry: &CachedBody, tags: &[String]) -> bool {
        let Some(l2) = &self.l2 else {
            return true;
        };
        if tags.is_empty() {
            return true;
        }
        match l2.tag_versions(tags).await {
            Some(current) => entry.redis_versions.as_ref() == Some(&current),
            None => true,
        }
    }

    /// The body of the per-key compute: runs while holding the key's lock in L1.
    async fn refresh<F, Fut>(
        &self,
        key: &CacheKey,
        tags: &[String],
        current: Option<Arc<CachedBody>>,
        load: F,
        report: &mut RefreshReport,
    ) -> Op<Arc<CachedBody>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedBody, AppError>>,
    {
        let now = now_ms();
        let found = match &self.l2 {
            Some(l2) => l2.lookup(key, tags).await,
            None => None,
        };
        report.asked_l2 = found.is_some();
        // Another request refreshed the entry while this one waited for the lock.
        let current_is_valid = |entry: &CachedBody| match &found {
            Some(found) => entry.redis_versions.as_ref() == Some(&found.versions),
            None => true,
        };
        if current
            .as_ref()
            .is_some_and(|entry| entry.is_fresh(now) && current_is_valid(entry))
        {
            report.lookup = Lookup::L1Hit;
            return Op::Nop;
        }

        let mut stale_l2 = None;
        if let Some(entry) = found.as_ref().and_then(|found| found.entry.as_ref()) {
            if entry.is_fresh(now) {
                report.lookup = Lookup::L2Hit;
                return Op::Put(Arc::new(entry.clone()));
            }
            stale_l2 = Some(Arc::new(entry.clone()));
        }

        match load().await {
            Ok(mut loaded) => {
                loaded.redis_versions = found.as_ref().map(|found| found.versions.clone());
                let loaded = Arc::new(loaded);
                if let (Some(l2), Some(found)) = (&self.l2, found) {
                    // Stored in the background: the response need not wait for Redis.
                    let (l2, key, entry) = (Arc::clone(l2), key.clone(), Arc::clone(&loaded));
                    tokio::spawn(async move { l2.store(&key, &entry, &found.versions).await });
                }
                report.lookup = Lookup::Miss;
                Op::Put(loaded)
            }
            Err(error) if error.is_unavailable() => {
                // An L1 entry that another instance's write made outdated is not served, even stale.
                let in_l1 = current
                    .filter(|entry| entry.is_usable_on_error(now) && current_is_valid(entry));
                let in_l2 = stale_l2.filter(|entry| entry.is_usable_on_error(now));
                report.lookup = Lookup::StaleOnError;
                match (in_l1, in_l2) {
                    (Some(l1), Some(l2)) if l2.stored_at_ms > l1.stored_at_ms => Op::Put(l2),
                    (Some(_), _) => Op::Nop,
                    (None, Some(l2)) => Op::Put(l2),
                    (None, None) => {
                        report.failure = Some(error);
                        Op::Nop
                    }
                }
            }
            Err(error) => {
                report.failure = Some(error);
                Op::Nop
            }
        }
    }

    /// Invalidates the tags of a committed write in L1, then in L2 and in the other instances.
    pub async fn invalidate(&self, invalidation: &Invalidation) {
        self.l1
            .invalidate_tags(invalidation.tags.iter().map(String::as_str));
        if let Some(l2) = &self.l2 {
            l2.invalidate(&invalidation.tags).await;
        }
    }

    /// Hit and miss counts per level since start.
    pub fn stats(&self) -> CacheStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            l1_hits: read(&self.counters.l1_hits),
            l1_misses: read(&self.counters.l1_misses),
            l2_hits: read(&self.counters.l2_hits),
            l2_misses: read(&self.counters.l2_misses),
        }
    }

    /// Counts one lookup; L2 counts only when Redis was asked, not while its breaker skipped it.
    fn count(&self, lookup: Lookup, asked_l2: bool) {
        let counters = &self.counters;
        let add = |counter: &AtomicU64| counter.fetch_add(1, Ordering::Relaxed);
        if lookup == Lookup::L1Hit {
            add(&counters.l1_hits);
            return;
        }
        add(&counters.l1_misses);
        if asked_l2 {
            if lookup == Lookup::L2Hit {
                add(&counters.l2_hits);
            } else {
                add(&counters.l2_misses);
            }
        }
    }
}

#[cfg(test)]
mod tests;
