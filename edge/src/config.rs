//! The worker's configuration, from the variables in `wrangler.toml` and the
//! `JWT_SECRET` secret.
//!
//! | Name | Default | Meaning |
//! |---|---|---|
//! | `ENVIRONMENT` | `production` | `production`, `staging`, `development` or `test`; the test overrides work only in the last two |
//! | `ORIGIN_US_WEST1` | required | base URL of the primary region's origin |
//! | `ORIGIN_US_EAST1`, `ORIGIN_EU_WEST1` | empty | base URLs of the other regions' origins; empty means the region is not deployed |
//! | `ALLOWED_ORIGINS` | required | browser origins allowed by CORS, comma-separated, or `*` |
//! | `ORIGIN_TIMEOUT_MS` | `10000` | time one origin may take for its whole response |
//! | `JWT_SECRET` | required | the origin's access token secret, at least 32 bytes |

use std::cell::RefCell;
use std::rc::Rc;

use velro_shared::cors::AllowedOrigins;
use velro_shared::routing::Region;
use velro_shared::token::TokenKey;
use worker::Env;

/// Time an origin may take before the edge tries the next region. Long enough for
/// a write that waits on a busy database pool, short enough that a hung origin
/// does not hold a browser for the whole request.
const DEFAULT_ORIGIN_TIMEOUT_MS: u64 = 10_000;

/// Deployment environment of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Production,
    Staging,
    Development,
    Test,
}

impl Environment {
    /// Returns the lowercase name, as in `ENVIRONMENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Development => "development",
            Environment::Test => "test",
        }
    }
}

/// The parsed configuration.
pub struct EdgeConfig {
    pub environment: Environment,
    /// Base URL of each region's origin without a trailing slash, indexed like `Region::ALL`.
    origins: [Option<String>; 3],
    pub allowed_origins: AllowedOrigins,
    pub token_key: TokenKey,
    pub origin_timeout_ms: u64,
}

impl EdgeConfig {
    /// Returns the base URL of `region`'s origin, or `None` when the region is not deployed.
    pub fn origin_url(&self, region: Region) -> Option<&str> {
        let index = Region::ALL
            .iter()
            .position(|candidate| *candidate == region)?;
        self.origins[index].as_deref()
    }

    /// Returns whether the test-only request overrides apply. They never do in
    /// production or staging, because a client could use them to pick a region
    /// or to age cache entries.
    pub fn allows_test_overrides(&self) -> bool {
        matches!(
            self.environment,
            Environment::Development | Environment::Test
        )
    }
}

/// A variable that is missing or invalid. The message names the variable and
/// what it expects, and never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} is invalid: expected {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub expected: &'static str,
}

thread_local! {
    /// The configuration of this isolate. Variables change only with a new
    /// deployment, which starts new isolates, so parsing once is enough.
    static LOADED: RefCell<Option<Rc<EdgeConfig>>> = const { RefCell::new(None) };
}

/// Returns this isolate's configuration, parsing it from `env` on first use.
pub fn load(env: &Env) -> Result<Rc<EdgeConfig>, ConfigError> {
    if let Some(config) = LOADED.with(|loaded| loaded.borrow().clone()) {
        return Ok(config);
    }
    let config = Rc::new(parse(env)?);
    LOADED.with(|loaded| *loaded.borrow_mut() = Some(config.clone()));
    Ok(config)
}

fn parse(env: &Env) -> Result<EdgeConfig, ConfigError> {
    let environment = match text(env, "ENVIRONMENT").as_deref() {
        None | Some("production") => Environment::Production,
        Some("staging") => Environment::Staging,
        Some("development") => Environment::Development,
        Some("test") => Environment::Test,
        Some(_) => {
            return Err(ConfigError {
                name: "ENVIRONMENT",
                expected: "one of production, staging, development, test",
            })
        }
    };

    let origins = [
        origin(env, "ORIGIN_US_WEST1")?,
        origin(env, "ORIGIN_US_EAST1")?,
        origin(env, "ORIGIN_EU_WEST1")?,
    ];
    if origins[0].is_none() {
        return Err(ConfigError {
            name: "ORIGIN_US_WEST1",
            expected:
                "the http(s) base URL of the primary region's origin, which takes every write",
        });
    }

    let allowed_origins = text(env, "ALLOWED_ORIGINS")
        .and_then(|value| AllowedOrigins::parse(&value))
        .ok_or(ConfigError {
            name: "ALLOWED_ORIGINS",
            expected: "`*` or a comma-separated list of http(s) origins",
        })?;

    let secret = env.secret("JWT_SECRET").map(|secret| secret.to_string());
    let token_key = secret
        .ok()
        .and_then(|secret| TokenKey::new(secret.as_bytes()).ok())
        .ok_or(ConfigError {
            name: "JWT_SECRET",
            expected: "the origin's access token secret, at least 32 bytes",
        })?;

    let origin_timeout_ms = match text(env, "ORIGIN_TIMEOUT_MS") {
        None => DEFAULT_ORIGIN_TIMEOUT_MS,
        Some(value) => value
            .parse()
            .ok()
            .filter(|ms| (1..=60_000).contains(ms))
            .ok_or(ConfigError {
                name: "ORIGIN_TIMEOUT_MS",
                expected: "milliseconds between 1 and 60000",
            })?,
    };

    Ok(EdgeConfig {
        environment,
        origins,
        allowed_origins,
        token_key,
        origin_timeout_ms,
    })
}

/// Reads a plain-text variable; `None` when it is unset or blank.
fn text(env: &Env, name: &str) -> Option<String> {
    let value = env.var(name).ok()?.to_string();
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn origin(env: &Env, name: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(url) = text(env, name) else {
        return Ok(None);
    };
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match host {
        Some(host) if !host.is_empty() && !host.starts_with('/') => {
            Ok(Some(url.trim_end_matches('/').to_owned()))
        }
        _ => Err(ConfigError {
            name,
            expected: "an http(s) base URL such as https://us-west1.origin.example.com",
        }),
    }
}
