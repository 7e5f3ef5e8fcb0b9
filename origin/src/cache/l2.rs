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

/// Longest an entry stays in Redis, whatever its policy allows.
const MAX_RETENTION_SECONDS: u64 = 86_400;
/// Lifetime of a tag version key, set again by every invalidation. Longer than
/// [`MAX_RETENTION_SECONDS`], so a version usually outlives the entries stored under it.
const TAG_RETENTION_SECONDS: u64 = 2 * MAX_RETENTION_SECONDS;

/// What one lookup found.
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
        let index = self.next_connection.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        let connection = self.connections[index].clone();
        match tokio::time::timeout(self.timeout, command(connection)).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                Some(value)
            }
            Ok(Err(error)) => {
                tracing::debug!(command = what, %error, "Redis command failed");
                self.breaker.record_failure();
                None
            }
            Err(_) => {
                tracing::debug!(
                    command = what,
                    timeout_ms = self.timeout.as_millis() as u64,
                    "Redis command timed out"
                );
                self.breaker.record_failure();
                None
            }
        }
    }

    /// Fetches the entry for `key` and the versions of `tags`, or `None` when Redis is unavailable.
    pub async fn lookup(&self, key: &CacheKey, tags: &[String]) -> Option<L2Lookup> {
        let mut keys = Vec::with_capacity(tags.len() + 1);
        keys.push(self.entry_key(key));
        keys.extend(tags.iter().map(|tag| self.tag_key(tag)));
        let mut values = self.mget(&keys).await?;

        let encoded = if values.is_empty() {
            None
        } else {
            values.remove(0)
        };
        let versions = self.versions_or_new(tags, values).await?;
        let entry = encoded
            .and_then(|bytes| CachedBody::decode(&bytes))
            .filter(|entry| entry.redis_versions.as_ref() == Some(&versions));
        Some(L2Lookup { entry, versions })
    }

    /// Fetches the current versions of `tags`, or `None` when Redis is unavailable.
    pub async fn tag_versions(&self, tags: &[String]) -> Option<Vec<u64>> {
        let keys: Vec<String> = tags.iter().map(|tag| self.tag_key(tag)).collect();
        let values = self.mget(&keys).await?;
        self.versions_or_new(tags, values).await
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

    /// Parses the versions `MGET` returned for `tags`, and sets a new version for
    /// each tag that has none. `SET ... NX GET` returns the version of a reader
    /// that set one first, so concurrent readers agree on it.
    async fn versions_or_new(
        &self,
        tags: &[String],
        values: Vec<Option<Vec<u8>>>,
    ) -> Option<Vec<u64>> {
        let mut versions: Vec<Option<u64>> = values
            .into_iter()
            .map(|value| value.and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse().ok()))
            .collect();
        if versions.len() != tags.len() {
            return None;
        }
        let missing: Vec<usize> = (0..tags.len())
            .filter(|index| versions[*index].is_none())
            .collect();
        if missing.is_empty() {
            return versions.into_iter().collect();
        }

        let proposed: Vec<u64> = missing.iter().map(|_| rand::random()).collect();
        let mut pipeline = redis::pipe();
        for (index, version) in missing.iter().zip(&proposed) {
            pipeline
                .cmd("SET")
                .arg(self.tag_key(&tags[*index]))
                .arg(version)
                .arg("NX")
                .arg("GET")
                .arg("EX")
                .arg(TAG_RETENTION_SECONDS);
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

    /// Replaces the versions of `tags` and announces them on the invalidation channel.
    /// Returns whether Redis took both. When it did not, other instances keep their
    /// L1 entries until those expire.
    pub async fn invalidate(&self, tags: &[String]) -> bool {
        if tags.is_empty() {
            return true;
        }
        if !self.breaker.allows() {
            // Logged once when the breaker opened; one line per write would flood the log.
            tracing::debug!(
                tags = tags.join(","),
                "Redis breaker open; invalidation not published"
            );
            return false;
        }
        let mut pipeline = redis::pipe();
        for tag in tags {
            let tag_key = self.tag_key(tag);
            pipeline
                .cmd("SET")
                .arg(&tag_key)
                .arg(rand::random::<u64>())
                .arg("EX")
                .arg(TAG_RETENTION_SECONDS)
                .ignore();
        }
        let message = invalidation_message(&self.instance_id, tags);
        pipeline
            .cmd("PUBLISH")
            .arg(self.channel())
            .arg(message)
            .ignore();
        let done: Option<()> = self
            .run("invalidate", |mut connection| async move {
                pipeline.query_async(&mut connection).await
            })
            .await;
        if done.is_none() {
            // NOTE: the other instances' L1 entries for these tags stay until their TTL
            // (at most a minute for profiles and lists), or until their subscription reconnects and clears L1.
            tracing::warn!(
                tags = tags.join(","),
                "publishing an invalidation failed; other instances may serve these reads until they expire"
            );
        }
        done.is_some()
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
        .map_err(|_| anyhow::anyhow!("Redis did not answer PING in time"))??;
        anyhow::ensure!(reply == "PONG", "Redis answered PING with {reply:?}");
        Ok(())
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
