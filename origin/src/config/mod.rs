//! Server configuration, read once from the environment at start-up.
//!
//! Every variable has a default that works on a laptop. A value that does not
//! parse stops the server before it binds, with a message that names the
//! variable and the accepted form.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use velro_shared::cors::AllowedOrigins;
use velro_shared::routing::Region;

mod monitoring;
pub mod variables;

pub use monitoring::MonitoringSettings;

/// Deployment environment; production tightens the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Staging,
    Production,
}

impl Environment {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "development" | "dev" => Some(Self::Development),
            "test" => Some(Self::Test),
            "staging" => Some(Self::Staging),
            "production" | "prod" => Some(Self::Production),
            _ => None,
        }
    }

    /// The canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// A secret string whose `Debug` output is redacted, so it cannot reach a log by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Shortest JWT secret accepted, in bytes: HS256 needs a key at least as long as its 256-bit output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The origin's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub database_url: String,
    /// `None` means: use the one persisted under `data_dir`, or generate it (development only).
    pub jwt_secret: Option<Secret>,
    pub allowed_origins: AllowedOrigins,
    pub log_level: String,
    pub log_format: LogFormat,
    pub region: Region,
    /// Name of the build this instance runs, such as a commit SHA; `None` when `RELEASE` is unset.
    pub release: Option<String>,
    pub environment: Environment,
    /// Folder for the default SQLite file and the development JWT secret.
    pub data_dir: PathBuf,
    /// Time the built-in generation provider takes per generation, to stand in for real model latency.
    pub generation_step: Duration,
    /// Extra time readiness stays at 503 after warm-up; a test aid, zero by default.
    pub warmup_hold: Duration,
    /// Upper bound of the in-process cache, in bytes of cached bodies.
    pub l1_cache_max_bytes: u64,
    /// Database connection pool sizing and timeouts.
    pub pool: PoolSettings,
    /// The Redis L2 cache and invalidation channel; `None` when `REDIS_URL` is unset.
    pub redis: Option<RedisSettings>,
    /// Circuit breaker around the database.
    pub db_breaker: BreakerSettings,
    /// Circuit breaker around Redis.
    pub redis_breaker: BreakerSettings,
    /// Number of most recently active users whose profile and first generation page warm-up pre-loads.
    pub hot_set_size: u32,
    /// Request recording for `/performance` and `/metrics`, and the targets it is compared with.
    pub monitoring: MonitoringSettings,
}

/// Connection settings of the Redis L2 cache.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL; it may carry a password.
    pub url: Secret,
    /// Connections in the command pool (`REDIS_POOL_SIZE`); pub/sub uses one more.
    pub pool_size: usize,
    /// Namespace of every key and of the invalidation channel, so deployments can share one Redis.
    pub key_prefix: String,
    /// Bound on one Redis command; a slower command counts as a failure and the read goes on without L2.
    pub timeout: Duration,
}

/// When a circuit breaker opens, and how long it stays open before a probe tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures within [`BreakerSettings::FAILURE_WINDOW`] that open the breaker.
    pub failures: u32,
    /// Time the breaker stays open before a probe checks the dependency.
    pub reset_after: Duration,
}

impl BreakerSettings {
    /// Failures older than this are forgotten, so rare errors spread over hours never open a breaker.
    pub const FAILURE_WINDOW: Duration = Duration::from_secs(10);
}

/// Connection pool settings, named as Railway operators know them from SQLAlchemy's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections opened at warm-up and kept open (`DB_POOL_SIZE`).
    pub size: u32,
    /// Extra connections allowed under load, closed again when idle (`DB_MAX_OVERFLOW`).
    pub max_overflow: u32,
    /// How long a request waits for a connection before it fails with 503 (`DB_POOL_TIMEOUT`).
    pub timeout: Duration,
    /// Age after which a connection is replaced (`DB_POOL_RECYCLE`), so server-side
    /// resources and load-balancer state do not build up on one connection forever.
    pub recycle: Duration,
}

impl PoolSettings {
    /// One connection and no overflow, for the one-shot `migrate` command.
    pub const SINGLE: PoolSettings = PoolSettings {
        size: 1,
        max_overflow: 0,
        timeout: Duration::from_secs(30),
        recycle: Duration::from_secs(3600),
    };

    /// Most connections the pool opens.
    pub fn max_connections(&self) -> u32 {
        self.size.saturating_add(self.max_overflow)
    }
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name}={value:?}: expected {expected}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    expected: &'static str,
}

/// A source of environment variables; tests pass a map instead of the process environment.
pub trait EnvSource {
    /// The value of `name`, or `None` when unset or empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    }
}

impl<const N: usize> EnvSource for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_string())
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads the configuration from any environment source.
    pub fn from_source(env: &impl EnvSource) -> Result<Self, ConfigError> {
        let environment = parse_or(
            env,
            "ENVIRONMENT",
            Environment::Development,
            "one of development, test, staging, production",
            Environment::parse,
        )?;
        let data_dir = PathBuf::from(env.get("DATA_DIR").unwrap_or_else(|| "./data".to_string()));
        let database_url = match env.get("DATABASE_URL") {
            Some(url) => validate_database_url(url)?,
            None => default_database_url(&data_dir),
        };
        let jwt_secret = match env.get("JWT_SECRET") {
            Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => {
                return Err(ConfigError {
                    name: "JWT_SECRET",
                    value: "<redacted>".to_string(),
                    expected:
                        "at least 32 bytes, for example the output of `openssl rand -base64 48`",
                });
            }
            Some(secret) => Some(Secret::new(secret)),
            None if environment == Environment::Production => {
                return Err(ConfigError {
                    name: "JWT_SECRET",
                    value: String::new(),
                    expected:
                        "a secret of at least 32 bytes; it is required when ENVIRONMENT=production",
                });
            }
            None => None,
        };

        Ok(Self {
            host: parse_or(env, "HOST", IpAddr::from([127, 0, 0, 1]), "an IP address such as 127.0.0.1 or 0.0.0.0", |v| {
                v.parse().ok()
            })?,
            port: parse_or(env, "PORT", 8000, "a TCP port number from 0 to 65535", |v| v.parse().ok())?,
            database_url,
            jwt_secret,
            allowed_origins: parse_or(
                env,
                "ALLOWED_ORIGINS",
                AllowedOrigins::List(vec!["http://localhost:3000".into(), "http://localhost:5173".into()]),
                "`*` alone, or a comma-separated list of origins such as https://app.velro.ai,http://localhost:3000",
                AllowedOrigins::parse,
            )?,
            log_level: env.get("LOG_LEVEL").unwrap_or_else(|| "info".to_string()),
            log_format: parse_or(env, "LOG_FORMAT", LogFormat::Pretty, "json or pretty", |v| match v {
                "json" => Some(LogFormat::Json),
                "pretty" => Some(LogFormat::Pretty),
                _ => None,
            })?,
            region: parse_or(env, "REGION", Region::PRIMARY, "one of us-west1, us-east1, eu-west1", |v| v.parse().ok())?,
            release: parse_or(env, "RELEASE", None, "1 to 100 letters, digits, '-', '_', '.' or '+'", parse_release)?,
            environment,
            data_dir,
            generation_step: parse_or(env, "GENERATION_STEP_MS", Duration::from_millis(500), "a whole number of milliseconds", parse_millis)?,
            warmup_hold: parse_or(env, "WARMUP_HOLD_MS", Duration::ZERO, "a whole number of milliseconds", parse_millis)?,
            l1_cache_max_bytes: parse_or(env, "L1_CACHE_MAX_BYTES", 64 * 1024 * 1024, "a whole number of bytes", |v| v.parse().ok())?,
            pool: PoolSettings {
                // 20 kept open plus 30 overflow is 50 per instance. Two instances at full
                // overflow, as during a blue-green deploy, need 100: more than the 97 that
                // Postgres's default max_connections leaves to ordinary users, so such a
                // deploy should lower DB_MAX_OVERFLOW or raise max_connections.
                size: parse_or(env, "DB_POOL_SIZE", 20, "a whole number from 1 to 500", |v| {
                    v.parse().ok().filter(|n| (1..=500).contains(n))
                })?,
                max_overflow: parse_or(env, "DB_MAX_OVERFLOW", 30, "a whole number from 0 to 500", |v| {
                    v.parse().ok().filter(|n| *n <= 500)
                })?,
                timeout: parse_or(env, "DB_POOL_TIMEOUT", Duration::from_secs(30), "a whole number of seconds from 1", parse_seconds)?,
                recycle: parse_or(env, "DB_POOL_RECYCLE", Duration::from_secs(3600), "a whole number of seconds from 1", parse_seconds)?,
            },
            redis: redis_settings(env)?,
            db_breaker: breaker_settings(env, "DB_BREAKER_FAILURES", 5, "DB_BREAKER_RESET_MS", 2000)?,
            redis_breaker: breaker_settings(env, "REDIS_BREAKER_FAILURES", 3, "REDIS_BREAKER_RESET_MS", 1000)?,
            hot_set_size: parse_or(env, "HOT_SET_SIZE", 100, "a whole number from 0 to 10000", |v| {
                v.parse().ok().filter(|n| *n <= 10_000)
            })?,
            monitoring: monitoring::monitoring_settings(env)?,
        })
    }

    /// Whether the database is SQLite, which serialises writes and lives in a local file.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

/// Parses `name` with `parse`, or returns `default` when it is unset.
fn parse_or<T>(
    env: &impl EnvSource,
    name: &'static str,
    default: T,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(value) => parse(value.trim()).ok_or(ConfigError {
            name,
            value,
            expected,
        }),
    }
}

/// An empty value means unset; anything else must be a short token that is safe to print.
fn parse_release(value: &str) -> Option<Option<String>> {
    if value.is_empty() {
        return Some(None);
    }
    let valid = value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    valid.then(|| Some(value.to_string()))
}

fn redis_settings(env: &impl EnvSource) -> Result<Option<RedisSettings>, ConfigError> {
    // Parsed even without REDIS_URL, so a typo is reported before Redis is switched on.
    let pool_size = parse_or(
        env,
        "REDIS_POOL_SIZE",
        20,
        "a whole number from 1 to 500",
        |v| v.parse().ok().filter(|n| (1..=500).contains(n)),
    )?;
    let key_prefix = parse_or(
        env,
        "REDIS_KEY_PREFIX",
        "velro".to_string(),
        "1 to 64 letters, digits, '-', '_', '.' or ':'",
        |v| {
            let valid = !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            valid.then(|| v.to_string())
        },
    )?;
    let timeout = parse_or(
        env,
        "REDIS_TIMEOUT_MS",
        Duration::from_millis(50),
        "a whole number of milliseconds from 1",
        |v| parse_millis(v).filter(|timeout| !timeout.is_zero()),
    )?;
    let Some(url) = env.get("REDIS_URL") else {
        return Ok(None);
    };
    if !url.starts_with("redis://") {
        // NOTE: rediss:// (TLS) is rejected because the redis crate is built without a
        // TLS feature; Railway's private network reaches Redis without TLS.
        return Err(ConfigError {
            name: "REDIS_URL",
            value: redacted_url(&url),
            expected: "redis://[USER:PASSWORD@]HOST:PORT[/DB]; TLS (rediss://) is not built in",
        });
    }
    Ok(Some(RedisSettings {
        url: Secret::new(url),
        pool_size,
        key_prefix,
        timeout,
    }))
}

/// The part of a URL that is safe to echo: its scheme. The rest may carry a password.
fn redacted_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://..."),
        None => "<redacted>".to_string(),
    }
}

fn breaker_settings(
    env: &impl EnvSource,
    failures_name: &'static str,
    failures_default: u32,
    reset_name: &'static str,
    reset_default_ms: u64,
) -> Result<BreakerSettings, ConfigError> {
    Ok(BreakerSettings {
        failures: parse_or(
            env,
            failures_name,
            failures_default,
            "a whole number from 1 to 1000",
            |v| v.parse().ok().filter(|n| (1..=1000).contains(n)),
        )?,
        reset_after: parse_or(
            env,
            reset_name,
            Duration::from_millis(reset_default_ms),
            "a whole number of milliseconds from 1",
            |v| parse_millis(v).filter(|reset| !reset.is_zero()),
        )?,
    })
}

fn parse_seconds(value: &str) -> Option<Duration> {
    value
        .parse()
        .ok()
        .filter(|seconds| *seconds > 0)
        .map(Duration::from_secs)
}

fn parse_millis(value: &str) -> Option<Duration> {
    value.parse().ok().map(Duration::from_millis)
}

fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}/velro.db?mode=rwc", data_dir.display())
}

fn validate_database_url(url: String) -> Result<String, ConfigError> {
    let supported = ["sqlite:", "postgres://", "postgresql://"];
    if !supported.iter().any(|prefix| url.starts_with(prefix)) {
        return Err(ConfigError {
            name: "DATABASE_URL",
            value: redacted_url(&url),
            expected: "sqlite://PATH?mode=rwc or postgres://USER@HOST/DB",
        });
    }
    // NOTE: sqlx is built without TLS, so a URL that demands it would fail at every
    // warm-up retry; it is rejected here instead.
    let requires_tls = [
        "sslmode=require",
        "sslmode=verify-ca",
        "sslmode=verify-full",
    ]
    .iter()
    .any(|mode| url.contains(mode));
    if requires_tls {
        return Err(ConfigError {
            name: "DATABASE_URL",
            value: redacted_url(&url),
            expected: "a postgres:// URL without sslmode=require or verify-*; TLS to Postgres is not built in",
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
