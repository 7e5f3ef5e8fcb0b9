//! Logging setup, done once at start.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Destination of log lines.
#[derive(Debug, Clone, Copy)]
pub enum LogTarget {
    /// Standard output: the server's logs, which the platform collects.
    Stdout,
    /// Standard error: for commands whose standard output is their result, such as `loadtest --json`.
    Stderr,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive such as
/// `info` or `velro_origin=debug,sqlx=warn`; an invalid one falls back to `info`
/// with a warning.
pub fn init(level: &str, format: LogFormat, target: LogTarget) {
    let (filter, invalid) = match EnvFilter::try_new(level) {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match (format, target) {
        (LogFormat::Json, LogTarget::Stdout) => {
            builder.json().with_writer(std::io::stdout).try_init()
        }
        (LogFormat::Json, LogTarget::Stderr) => {
            builder.json().with_writer(std::io::stderr).try_init()
        }
        (LogFormat::Pretty, LogTarget::Stdout) => builder.with_writer(std::io::stdout).try_init(),
        (LogFormat::Pretty, LogTarget::Stderr) => builder.with_writer(std::io::stderr).try_init(),
    };
    if installed.is_err() {
        return;
    }
    if let Some(error) = invalid {
        tracing::warn!(%error, level, "LOG_LEVEL is not a valid filter; using info");
    }
}
