//! Database access: the connection pool, migrations and one module of queries per table.
//!
//! The pool is sqlx's `Any` driver, so one set of queries serves both the SQLite
//! default and Postgres. Queries therefore stick to portable SQL: `$N`
//! placeholders, TEXT and BIGINT columns, and `RETURNING`, which both engines have.

pub mod generations;
pub mod models;
pub mod projects;
pub mod tokens;
pub mod users;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

use crate::breaker::CircuitBreaker;
use crate::config::PoolSettings;

/// Migrations embedded in the binary, so `serve` and `migrate` need no files at run time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A connection idle for longer than this is pinged before use, so a connection
/// the server or a proxy dropped meanwhile is replaced instead of failing a request.
const VALIDATE_AFTER_IDLE: Duration = Duration::from_secs(30);
/// For this long after a database failure, every connection is pinged before use.
const VALIDATE_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Overflow connections above the pool size close after this long unused.
const OVERFLOW_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Per-connection Postgres settings: a name for `pg_stat_activity`, and bounds so
/// a runaway query or an abandoned transaction cannot hold locks indefinitely.
const POSTGRES_SESSION_SETTINGS: &str = "SET application_name = 'velro-origin'; \
    SET statement_timeout = '30s'; SET idle_in_transaction_session_timeout = '60s';";

/// The connection pool; cheap to clone.
pub type Db = AnyPool;

/// Opens a pool for `database_url`, creating the SQLite file's folder when needed.
///
/// With a `breaker`, a connection is also pinged before use whenever the database
/// failed recently, so connections that an outage broke are replaced one by one
/// instead of each failing a request after the database is back.
pub async fn connect(
    database_url: &str,
    pool: &PoolSettings,
    breaker: Option<CircuitBreaker>,
) -> anyhow::Result<Db> {
    sqlx::any::install_default_drivers();
    let is_sqlite = database_url.starts_with("sqlite:");
    if is_sqlite {
        create_sqlite_folder(database_url)?;
    }

    let options: AnyConnectOptions = database_url
        .parse()
        .context("DATABASE_URL is not a valid database URL")?;
    // Statement logging at INFO would put every query on the hot path into the log.
    let options = options.log_statements(tracing::log::LevelFilter::Debug);

    let pool = AnyPoolOptions::new()
        .min_connections(pool.size)
        .max_connections(pool.max_connections())
        // NOTE: sqlx retries a refused connect until this timeout, so while the pool has
        // no open connection left and the server refuses new ones, a request waits up to
        // DB_POOL_TIMEOUT before it fails and counts toward opening the breaker.
        .acquire_timeout(pool.timeout)
        .max_lifetime(pool.recycle)
        .idle_timeout(OVERFLOW_IDLE_TIMEOUT)
        // Pinging on every acquire would add a round trip to every query; only
        // connections that sat idle long enough to have been dropped are checked.
        .test_before_acquire(false)
        .before_acquire(move |connection, meta| {
            let failed_recently = breaker
                .as_ref()
                .is_some_and(|breaker| breaker.failed_within(VALIDATE_AFTER_FAILURE));
            Box::pin(async move {
                if meta.idle_for > VALIDATE_AFTER_IDLE || failed_recently {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |connection, _meta| {
            Box::pin(async move {
                if !is_sqlite {
                    connection.execute(POSTGRES_SESSION_SETTINGS).await?;
                } else {
                    // WAL lets readers proceed while one writer commits; the busy timeout makes
                    // a second writer wait for the lock instead of failing with SQLITE_BUSY.
                    connection
                        .execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
                        .await?;
                }
                Ok(())
            })
        })
        .connect_lazy_with(options);
    Ok(pool)
}

/// Applies the embedded migrations that the database has not seen yet.
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    MIGRATOR
        .run(db)
        .await
        .context("applying database migrations failed")
}

fn create_sqlite_folder(database_url: &str) -> anyhow::Result<()> {
    let path = database_url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(folder) = Path::new(path)
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating the database folder {} failed", folder.display()))?;
    }
    Ok(())
}

/// Current time in Unix milliseconds, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Formats Unix milliseconds as an RFC 3339 UTC timestamp with millisecond precision.
pub fn rfc3339(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|moment| moment.format(format).ok())
        .unwrap_or_default()
}

/// Whether a database error means the database cannot be reached, rather than
/// that one query failed: the connection broke or was refused, or the server is
/// shutting down or not accepting connections. These count against the
/// database's circuit breaker and let a cache serve stale responses.
pub fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database_error) => database_error.code().is_some_and(|code| {
            // SQLSTATE class 08 is connection exceptions. 57P01-57P03 are admin or crash
            // shutdown and "cannot connect now"; 53300 is too many connections; 55000
            // is what Postgres reports for a database that does not allow connections.
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "53300" | "55000"
                )
        }),
        _ => false,
    }
}

/// Whether a database error is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db_error) if db_error.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_414_400_123), "2026-12-04T20:00:00.123Z");
    }
}
