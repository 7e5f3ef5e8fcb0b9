//! The HTTP client of the deploy commands, one bounded GET, and how failed
//! requests are described.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use reqwest::{Client, StatusCode, Url};

/// Maximum time to open a TCP connection. Each request's own timeout also bounds it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Maximum body read from an endpoint. `/performance` is about 10 KB and
/// `/health/ready` under 1 KB, so a larger body is not theirs.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Builds the client. Each request sets its own timeout. Proxies from the
/// environment are ignored, because the deploy job must reach the deployment
/// itself, and redirects are not followed, because a redirect is not a
/// response of the deployment itself.
pub fn client(tool: &str) -> anyhow::Result<Client> {
    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(format!("velro-{tool}/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client failed")
}

/// Joins `path` to a base URL that ends in `/`, as `parse_base_url` leaves it.
pub fn endpoint(base: &Url, path: &str) -> Url {
    // A relative path without a leading slash keeps the base's path prefix.
    base.join(path).unwrap_or_else(|_| base.clone())
}

/// Sends a GET and reads the body, all within `timeout` and at most
/// [`MAX_BODY_BYTES`]. The error describes the failure in a few words,
/// without the URL, which the caller prints once.
pub async fn get(
    client: &Client,
    url: &Url,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|error| describe_failure(&error))?;
        let status = response.status();
        let mut body = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| describe_failure(&error))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(format!(
                    "{status} with a body over {} KiB",
                    MAX_BODY_BYTES / 1024
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body.freeze()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no complete response within {}", seconds(timeout))))
}

fn describe_failure(error: &reqwest::Error) -> String {
    // The innermost cause is the one that names the problem, such as "Connection refused".
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let cause = cause.to_string();
    if error.is_connect() {
        format!("could not connect: {cause}")
    } else if error.is_body() || error.is_decode() {
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

/// Prints a line on standard output. A closed output, such as a pipe into
/// `head`, is ignored instead of ending the command with a panic, so the exit
/// status still reports the outcome.
pub fn print_line(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Prints a line on standard error, ignoring a closed output like [`print_line`].
pub fn eprint_line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
