//! The HTTP client of `health-check` and `watch-deploy`, and how their failed
//! requests are described.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Client, Url};

/// Maximum time to open a TCP connection. Each request's own timeout also bounds it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the client. Each request sets its own timeout. Proxies from the
/// environment are ignored, because the deploy job must reach the deployment itself.
pub fn client(tool: &str) -> anyhow::Result<Client> {
    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .no_proxy()
        .user_agent(format!("velro-{tool}/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client failed")
}

/// Joins `path` to a base URL that ends in `/`, as `parse_base_url` leaves it.
pub fn endpoint(base: &Url, path: &str) -> Url {
    // A relative path without a leading slash keeps the base's path prefix.
    base.join(path).unwrap_or_else(|_| base.clone())
}

/// Describes a request that got no response, without repeating the URL, which
/// the caller prints once.
pub fn describe_failure(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no response within {}", seconds(timeout));
    }
    // The innermost cause is the one that names the problem, such as "Connection refused".
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let cause = cause.to_string();
    if error.is_connect() {
        format!("could not connect: {cause}")
    } else if error.is_decode() || error.is_body() {
        format!("could not read the response: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}

/// Formats a duration as seconds with one decimal, such as `2.0 s`.
pub fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// Formats a duration as milliseconds with one decimal, such as `3.4 ms`.
pub fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
