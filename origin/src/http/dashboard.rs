//! `/dashboard`: a self-contained HTML page that polls `/performance` every
//! two seconds and draws the latency percentiles, the hit and error rates
//! against their targets, and a per-route table.
//!
//! The page's CSS and JavaScript are inline, so it needs nothing but this
//! origin. Its Content-Security-Policy allows exactly those two inline blocks by
//! their SHA-256 hashes (CSP Level 2 hash sources), plus `fetch` to this origin,
//! and nothing else: no other script, style, frame, form target or host.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::app::AppState;

const PAGE: &str = include_str!("dashboard.html");

/// The page's Content-Security-Policy, computed once from the page itself so
/// that editing the inline script or style cannot leave a stale hash behind.
static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> =
    LazyLock::new(|| content_security_policy(PAGE));

/// Returns the router for `GET /dashboard`.
pub fn router() -> Router<AppState> {
    Router::new().route("/dashboard", get(dashboard))
}

async fn dashboard() -> Response {
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY.clone(),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, PAGE).into_response()
}

/// Builds the policy for `page`: its one inline `<script>` and one inline
/// `<style>` are allowed by hash, and `fetch` may reach this origin only. The
/// favicon is an empty `data:` URL, so the browser does not request
/// `/favicon.ico` from the API.
fn content_security_policy(page: &str) -> HeaderValue {
    let script = hash_source(inline_block(page, "script"));
    let style = hash_source(inline_block(page, "style"));
    let policy = format!(
        "default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    // Only ASCII goes into the policy: the fixed text and base64 digests.
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// Returns the text between `<tag>` and `</tag>`, the exact bytes a browser
/// hashes for an inline block, or "" when the page has no such block.
fn inline_block<'a>(page: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let Some(start) = page.find(&open).map(|index| index + open.len()) else {
        return "";
    };
    match page[start..].find(&close) {
        Some(length) => &page[start..start + length],
        None => "",
    }
}

/// Formats the CSP hash source `'sha256-<base64 digest>'` of `content`.
fn hash_source(content: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(content.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_one_inline_script_and_style() {
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        assert!(inline_block(PAGE, "script").contains("fetch(\"performance\""));
        assert!(inline_block(PAGE, "style").contains("#latency-chart"));
    }

    #[test]
    fn page_loads_nothing_from_other_hosts() {
        // The SVG namespace is an identifier, not a resource the browser fetches.
        let page = PAGE.replace("http://www.w3.org/2000/svg", "");
        for pattern in ["http://", "https://", "src=", "@import", "url("] {
            assert!(
                !page.contains(pattern),
                "the page contains {pattern:?}, but it must work offline"
            );
        }
    }

    #[test]
    fn policy_allows_the_inline_blocks_by_hash() {
        let policy = content_security_policy(PAGE);
        let policy = policy.to_str().expect("the policy is ASCII");
        assert!(policy.contains(&hash_source(inline_block(PAGE, "script"))));
        assert!(policy.contains(&hash_source(inline_block(PAGE, "style"))));
        assert!(policy.contains("connect-src 'self'"));
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn hash_source_matches_a_known_digest() {
        // SHA-256 of the empty string, in base64.
        assert_eq!(
            hash_source(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }
}
