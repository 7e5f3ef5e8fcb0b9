//! Every environment variable the origin reads, with its default, for `velro-origin env`.
//!
//! A unit test checks this table against [`super::Config::from_source`], so a new
//! variable cannot be read without being listed here, and every default listed
//! here is the one the parser applies.

/// One environment variable of the origin.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    /// The value used when the variable is unset; empty when unset means "off" or "generated".
    pub default: &'static str,
    pub description: &'static str,
}

const fn variable(
    name: &'static str,
    default: &'static str,
    description: &'static str,
) -> Variable {
    Variable {
        name,
        default,
        description,
    }
}

/// The variables in the order an operator sets them up.
pub const VARIABLES: &[Variable] = &[
    variable("HOST", "127.0.0.1", "IP address to listen on; 0.0.0.0 in a container."),
    variable("PORT", "8000", "TCP port to listen on; 0 picks a free one."),
    variable("ENVIRONMENT", "development", "development, test, staging or production; production requires JWT_SECRET."),
    variable("REGION", "us-west1", "Region this instance serves: us-west1, us-east1 or eu-west1."),
    variable("RELEASE", "", "Name of the build, such as a commit SHA; /health and /health/ready report it, and health-check --release waits for it."),
    variable("DATA_DIR", "./data", "Folder for the default SQLite file and the generated development JWT secret."),
    variable("DATABASE_URL", "", "sqlite://PATH?mode=rwc or postgres://USER:PASSWORD@HOST/DB; unset means a SQLite file in DATA_DIR."),
    variable("JWT_SECRET", "", "HS256 key of at least 32 bytes; unset outside production means one generated under DATA_DIR."),
    variable("ALLOWED_ORIGINS", "http://localhost:3000,http://localhost:5173", "Browser origins allowed by CORS, comma-separated, or * alone."),
    variable("LOG_LEVEL", "info", "tracing filter, such as info or velro_origin=debug,info."),
    variable("LOG_FORMAT", "pretty", "json for log collectors, pretty for a terminal."),
    variable("DB_POOL_SIZE", "20", "Database connections opened at warm-up and kept open."),
    variable("DB_MAX_OVERFLOW", "30", "Extra database connections allowed under load, closed again when idle."),
    variable("DB_POOL_TIMEOUT", "30", "Seconds a request waits for a database connection before it gets 503."),
    variable("DB_POOL_RECYCLE", "3600", "Seconds after which a database connection is replaced."),
    variable("DB_BREAKER_FAILURES", "5", "Database connection failures within 10 s that open the database circuit breaker."),
    variable("DB_BREAKER_RESET_MS", "2000", "Milliseconds the database breaker stays open before a probe tries the database again."),
    variable("REDIS_URL", "", "redis://HOST:PORT of the L2 cache and invalidation channel; unset means L1 only."),
    variable("REDIS_POOL_SIZE", "20", "Redis connections for cache commands."),
    variable("REDIS_KEY_PREFIX", "velro", "Namespace of Redis keys and of the channel PREFIX:invalidate."),
    variable("REDIS_TIMEOUT_MS", "50", "Milliseconds one Redis command may take before it counts as failed."),
    variable("REDIS_BREAKER_FAILURES", "3", "Redis failures within 10 s that open the Redis circuit breaker."),
    variable("REDIS_BREAKER_RESET_MS", "1000", "Milliseconds the Redis breaker stays open before a probe tries Redis again."),
    variable("L1_CACHE_MAX_BYTES", "67108864", "Upper bound of the in-process cache, in bytes of cached bodies."),
    variable("HOT_SET_SIZE", "100", "Most recently active users whose profile and first generation page warm-up pre-loads."),
    variable("GENERATION_STEP_MS", "500", "Milliseconds the built-in generation provider takes per generation."),
    variable("PERF_MONITORING_ENABLED", "true", "false turns off request recording; /performance then reports zero counts."),
    variable("PERF_WINDOW_SECS", "300", "Seconds of the sliding window of /performance, from 30 to 86400."),
    variable("PERF_TARGET_RESPONSE_TIME_MS", "75", "Response-time target in milliseconds; requests over 1.5 times it log a warning."),
    variable("PERF_CACHE_HIT_RATE_TARGET", "95", "Cache hit rate target of /performance, in percent."),
    variable("WARMUP_HOLD_MS", "0", "Extra milliseconds readiness stays 503 after warm-up; a test aid."),
];

/// Renders the table as a dotenv file: a comment line, then `NAME=default`, per variable.
pub fn render_dotenv() -> String {
    let mut text = String::new();
    for variable in VARIABLES {
        text.push_str("# ");
        text.push_str(variable.description);
        text.push('\n');
        text.push_str(variable.name);
        text.push('=');
        text.push_str(variable.default);
        text.push('\n');
    }
    text
}
