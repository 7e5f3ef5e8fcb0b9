//! The L2 cache in Redis, shared by every origin instance, and the invalidation channel.
//!
//! Keys under the configured prefix:
//! - `PREFIX:c:CACHE_KEY`: an encoded [`CachedBody`] with the tag versions it was loaded under.
//! - `PREFIX:t:TAG`: the tag's version, a random number that every write touching
//!   the tag replaces. A read that finds no version sets one. Versions are never
//!   reused, so a version key that expired or that Redis evicted under memory
//!   pressure only turns the entries stored under it into misses.
//! - `PREFIX:invalidate`: the pub/sub channel on which writes announce their tags to L1s.
//!
//! A lookup fetches the entry and the current versions of its tags in one `MGET`.
//! An entry whose versions differ was loaded before a write and is ignored. The
//! versions read before a database load are the ones stored with its result, so a
//! load that raced a write stores an entry that no later lookup accepts.
//!
//! Every command is bounded by `REDIS_TIMEOUT_MS` and guarded by the Redis circuit
//! breaker. A failed or skipped command makes the read go on without L2 and never
//! fails the request.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use velro_shared::policy::CacheKey;

use super::entry::CachedBody;
use crate::breaker::CircuitBreaker;
use crate::config::RedisSettings;

/// Maximum time an entry stays in Redis, whatever its policy allows.
const MAX_RETENTION_SECONDS: u64 = 86_400;
/// Lifetime of a tag version key, set again by every invalidation. Longer than
/// [`MAX_RETENTION_SECONDS`], so a version usually outlives the entries stored under it.
const TAG_RETENTION_SECONDS: u64 = 2 * MAX_RETENTION_SECONDS;

/// Result of one lookup.
#[derive(Debug)]
pub struct L2Lookup {
    /// The entry, when one exists and no write has touched its tags since it was stored.
    pub entry: Option<CachedBody>,
    /// Current versions of the read's tags, to store a freshly loaded entry under.
    pub versions: Vec<u64>,
}

/// Redis connections, key names and the breaker; shared behind an `Arc`.
pub struct L2Store {
    client: redis::Client,
    connections: Vec<ConnectionManager>,
    next_connection: AtomicUsize,
    prefix: String,
    timeout: Duration,
    breaker: CircuitBreaker,
    /// Identifies this process in invalidation messages, so it can skip its own.
    instance_id: String,
    /// Invalidations that Redis missed, replayed by the next write or the breaker's probe.
    pending: std::sync::Mutex<PendingInvalidations>,
}

impl L2Store {
    /// Creates the store. Connections open on first use, so a Redis that is down does not stop start-up.
    pub fn new(settings: &RedisSettings, breaker: CircuitBreaker) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(settings.url.expose())
            .map_err(|error| anyhow::anyhow!("REDIS_URL is not a valid Redis URL: {error}"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(settings.timeout))
            .set_connection_timeout(Some(settings.timeout.max(Duration::from_millis(250))))
            // One quick retry; the breaker and its probe handle longer outages.
            .set_number_of_retries(1);
        let connections = (0..settings.pool_size)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| anyhow::anyhow!("creating Redis connections failed: {error}"))?;
        Ok(Arc::new(Self {
            client,
            connections,
            next_connection: AtomicUsize::new(0),
            prefix: settings.key_prefix.clone(),
            timeout: settings.timeout,
            breaker,
            instance_id: uuid::Uuid::new_v4().simple().to_string(),
            pending: std::sync::Mutex::default(),
        }))
    }

    /// The client, for the pub/sub connection.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The breaker guarding Redis.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// This process's id in invalidation messages.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The invalidation channel.
    pub fn channel(&self) -> String {
        format!("{}:invalidate", self.prefix)
    }

    fn entry_key(&self, key: &CacheKey) -> String {
        format!("{}:c:{}", self.prefix, key.as_str())
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}:t:{tag}", self.prefix)
    }

    /// The keys whose versions an entry for `tags` is stored under: one per tag, and
    /// the epoch, which replaces every version at once.
    fn version_keys(&self, tags: &[String]) -> Vec<String> {
        let mut keys: Vec<String> = tags.iter().map(|tag| self.tag_key(tag)).collect();
        keys.push(self.epoch_key());
        keys
    }

    /// The epoch key. Unlike tag versions it never expires, because a new epoch
    /// turns every entry into a miss.
    fn epoch_key(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// Runs one command on the next connection, within the timeout and the breaker.
    /// Returns `None` when the breaker is open or the command fails.
    async fn run<T, F, Fut>(&self, what: &'static str, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allows() {
            return None;
        }
        self.execute(what, Record::Outcome, command).await
    }

    /// Runs one command on the next connection within the timeout, ignoring the
    /// breaker, and records the outcome on it when `record` is [`Record::Outcome`].
    async fn execute<T, F, Fut>(&self, what: &'static str, record: Record, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let index = self.next_connection.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let connection = self.connections[index].clone();
        let outcome = match tokio::time::timeout(self.timeout, command(connection)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::debug!(command = what, %error, "Redis command failed");
                None
            }
            Err(_) => {
                tracing::debug!(
                    command = what,
                    timeout_ms = self.timeout.as_millis() as u64,
                    "Redis command timed out"
                );
                None
            }
        };
        if record == Record::Outcome {
            match outcome {
                Some(_) => self.breaker.record_success(),
                None => self.breaker.record_failure(),
            }
        }
        outcome
    }

    /// Fetches the entry for `key` and the versions of `tags`, or `None` when Redis is unavailable.
    pub async fn lookup(&self, key: &CacheKey, tags: &[String]) -> Option<L2Lookup> {
        let version_keys = self.version_keys(tags);
        let mut keys = Vec::with_capacity(version_keys.len() + 1);
        keys.push(self.entry_key(key));
        keys.extend(version_keys.iter().cloned());
        let mut values = self.mget(&keys).await?;

        let encoded = if values.is_empty() {
            None
        } else {
            values.remove(0)
        };
        let versions = self.versions_or_new(&version_keys, values).await?;
        let entry = encoded
            .and_then(|bytes| CachedBody::decode(&bytes))
            .filter(|entry| entry.redis_versions.as_ref() == Some(&versions));
        Some(L2Lookup { entry, versions })
    }

    /// Fetches the current versions of `tags`, or `None` when Redis is unavailable.
    pub async fn tag_versions(&self, tags: &[String]) -> Option<Vec<u64>> {
        let keys = self.version_keys(tags);
        let values = self.mget(&keys).await?;
        self.versions_or_new(&keys, values).await
    }

    async fn mget(&self, keys: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
        self.run("MGET", |mut connection| async move {
            redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut connection)
                .await
        })
        .await
    }

    /// Parses the versions `MGET` returned for the version `keys`, and sets a new
    /// version for each key that has none. `SET ... NX GET` returns the version of a reader
    /// that set one first, so concurrent readers agree on it.
    async fn versions_or_new(
        &self,
        keys: &[String],
        values: Vec<Option<Vec<u8>>>,
    ) -> Option<Vec<u64>> {
        let mut versions: Vec<Option<u64>> = values
            .into_iter()
            .map(|value| value.and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse().ok()))
            .collect();
        if versions.len() != keys.len() {
            return None;
        }
        let missing: Vec<usize> = (0..keys.len())
            .filter(|index| versions[*index].is_none())
            .collect();
        if missing.is_empty() {
            return versions.into_iter().collect();
        }

        let proposed: Vec<u64> = missing.iter().map(|_| rand::random()).collect();
        let mut pipeline = redis::pipe();
        let epoch_key = self.epoch_key();
        for (index, version) in missing.iter().zip(&proposed) {
            let key = &keys[*index];
            let command = pipeline
                .cmd("SET")
                .arg(key)
                .arg(version)
                .arg("NX")
                .arg("GET");
            if *key != epoch_key {
                command.arg("EX").arg(TAG_RETENTION_SECONDS);
            }
        }
        let previous: Vec<Option<String>> = self
            .run("SET NX", |mut connection| async move {
                pipeline.query_async(&mut connection).await
            })
            .await?;
        for ((index, version), earlier) in missing.iter().zip(proposed).zip(previous) {
            versions[*index] = Some(
                earlier
                    .and_then(|text| text.parse().ok())
                    .unwrap_or(version),
            );
        }
        versions.into_iter().collect()
    }

    /// Stores `entry` under `key` with the tag versions read before it was loaded.
    pub async fn store(&self, key: &CacheKey, entry: &CachedBody, versions: &[u64]) {
        let entry_key = self.entry_key(key);
        let encoded = entry.encode(versions);
        let seconds = entry.retention_seconds(MAX_RETENTION_SECONDS);
        let stored: Option<()> = self
            .run("SET", |mut connection| async move {
                redis::cmd("SET")
                    .arg(entry_key)
                    .arg(encoded)
                    .arg("EX")
                    .arg(seconds)
                    .query_async(&mut connection)
                    .await
            })
            .await;
        if stored.is_none() {
            tracing::debug!(key = key.as_str(), "L2 store skipped");
        }
    }

    /// Replaces the versions of `tags` and announces them on the invalidation channel,
    /// together with any invalidations that Redis missed earlier. Returns whether
    /// Redis took them.
    ///
    /// An invalidation that Redis misses is kept, and the breaker's probe replays it
    /// before the breaker closes: otherwise the L2 entries from before the write
    /// would match their unchanged versions again once Redis is back.
    pub async fn invalidate(&self, tags: &[String]) -> bool {
        let pending = self.take_pending(tags);
        if pending.is_empty() {
            return true;
        }
        if !self.breaker.allows() {
            // Logged once when the breaker opened; one line per write would flood the log.
            tracing::debug!("Redis breaker open; invalidation kept for replay");
            self.keep_pending(pending);
            return false;
        }
        let applied = self.apply(&pending, Record::Outcome).await;
        if !applied {
            // NOTE: until the breaker's probe replays it, other instances keep serving
            // their L1 entries for these tags, for at most the entries' TTL.
            tracing::warn!(
                tags = pending.tags.len(),
                "publishing an invalidation failed; it is kept for replay"
            );
            self.keep_pending(pending);
        }
        applied
    }

    /// Sends one invalidation: new versions for its tags (or a new epoch), then the message.
    async fn apply(&self, pending: &PendingInvalidations, record: Record) -> bool {
        let mut pipeline = redis::pipe();
        if pending.everything {
            pipeline
                .cmd("SET")
                .arg(self.epoch_key())
                .arg(rand::random::<u64>())
                .ignore();
        }
        for tag in &pending.tags {
            pipeline
                .cmd("SET")
                .arg(self.tag_key(tag))
                .arg(rand::random::<u64>())
                .arg("EX")
                .arg(TAG_RETENTION_SECONDS)
                .ignore();
        }
        let tags: Vec<String> = if pending.everything {
            vec![FLUSH_ALL.to_string()]
        } else {
            pending.tags.iter().cloned().collect()
        };
        pipeline
            .cmd("PUBLISH")
            .arg(self.channel())
            .arg(invalidation_message(&self.instance_id, &tags))
            .ignore();
        self.execute("invalidate", record, |mut connection| async move {
            pipeline.query_async::<()>(&mut connection).await
        })
        .await
        .is_some()
    }

    /// Takes the kept invalidations, adding `tags`.
    fn take_pending(&self, tags: &[String]) -> PendingInvalidations {
        let mut kept = self.lock_pending();
        let mut pending = std::mem::take(&mut *kept);
        drop(kept);
        pending.add(tags);
        pending
    }

    /// Keeps invalidations that Redis did not take, for the next write or the probe.
    fn keep_pending(&self, pending: PendingInvalidations) {
        let mut kept = self.lock_pending();
        kept.everything |= pending.everything;
        let tags: Vec<String> = pending.tags.into_iter().collect();
        kept.add(&tags);
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, PendingInvalidations> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The breaker's probe: pings every connection, then replays the invalidations
    /// Redis missed. The breaker closes only when both worked.
    ///
    /// NOTE: another instance whose breaker closes first can read the old L2 entries
    /// until this replay lands, and a process that stops before Redis returns loses
    /// the invalidations it kept.
    pub async fn recover(&self) -> anyhow::Result<()> {
        self.ping().await?;
        let pending = self.take_pending(&[]);
        if pending.is_empty() {
            return Ok(());
        }
        if self.apply(&pending, Record::Nothing).await {
            tracing::info!(
                tags = pending.tags.len(),
                everything = pending.everything,
                "replayed invalidations that Redis missed"
            );
            Ok(())
        } else {
            self.keep_pending(pending);
            anyhow::bail!("replaying invalidations that Redis missed failed")
        }
    }

    /// Sends `PING` on every connection, bypassing the breaker: the warm-up check and the breaker's probe.
    ///
    /// A connection that Redis dropped fails its first command and reconnects, so
    /// each gets a second try. Pinging all of them means that once the breaker
    /// closes, requests do not find dead connections one by one and reopen it.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let pings = self.connections.iter().map(|connection| async move {
            let first = self.ping_once(connection.clone()).await;
            match first {
                Ok(()) => Ok(()),
                Err(_) => self.ping_once(connection.clone()).await,
            }
        });
        for outcome in futures::future::join_all(pings).await {
            outcome?;
        }
        Ok(())
    }

    async fn ping_once(&self, mut connection: ConnectionManager) -> anyhow::Result<()> {
        let reply: String = tokio::time::timeout(
            self.timeout.max(Duration::from_millis(250)),
            redis::cmd("PING").query_async(&mut connection),
        )
        .await
        .map_err(|_| anyhow::anyhow!("Redis did not respond to PING in time"))??;
        anyhow::ensure!(reply == "PONG", "Redis responded to PING with {reply:?}");
        Ok(())
    }
}

/// Whether [`L2Store::execute`] records the command's outcome on the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Outcome,
    /// For the probe, which records its own outcome once it has finished.
    Nothing,
}

/// Most tags kept for replay; beyond it, the replay moves the epoch instead,
/// which turns every L2 entry into a miss.
const MAX_PENDING_TAGS: usize = 10_000;

/// The tag that makes subscribers clear their whole L1.
pub const FLUSH_ALL: &str = "*";

/// Invalidations that Redis has not taken yet.
#[derive(Debug, Default)]
struct PendingInvalidations {
    tags: std::collections::BTreeSet<String>,
    /// Set when more than [`MAX_PENDING_TAGS`] were kept: everything is invalidated.
    everything: bool,
}

impl PendingInvalidations {
    fn add(&mut self, tags: &[String]) {
        if self.everything {
            return;
        }
        self.tags.extend(tags.iter().cloned());
        if self.tags.len() > MAX_PENDING_TAGS {
            self.tags.clear();
            self.everything = true;
        }
    }

    fn is_empty(&self) -> bool {
        self.tags.is_empty() && !self.everything
    }
}

/// Renders an invalidation: the sender's instance id, then one tag per line.
pub fn invalidation_message(instance_id: &str, tags: &[String]) -> String {
    let mut message = String::from(instance_id);
    for tag in tags {
        message.push('\n');
        message.push_str(tag);
    }
    message
}

/// Splits an invalidation into the sender's instance id and its tags.
pub fn parse_invalidation(message: &str) -> Option<(&str, Vec<&str>)> {
    let mut lines = message.split('\n');
    let sender = lines.next().filter(|sender| !sender.is_empty())?;
    Some((sender, lines.filter(|tag| !tag.is_empty()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_message_round_trips() {
        let tags = vec![
            "user:u1:profile".to_string(),
            "user:u1:generations".to_string(),
        ];
        let message = invalidation_message("abc", &tags);
        assert_eq!(
            parse_invalidation(&message),
            Some(("abc", vec!["user:u1:profile", "user:u1:generations"]))
        );
        assert_eq!(parse_invalidation(""), None);
    }
}
