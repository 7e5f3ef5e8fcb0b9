//! When a stored response may be reused: its freshness, the stale windows of
//! RFC 5861, and conditional requests.
//!
//! Both stale windows start when the response stops being fresh (RFC 9111 §4.2).
//! Inside `stale-while-revalidate` a cache serves the stale response and refreshes
//! it in the background (RFC 5861 §3). Inside `stale-if-error` it must fetch a new
//! one first, and may serve the stale one only when that fetch fails (RFC 5861 §4).

use crate::policy::CachePolicy;

/// Use a cache may make of a stored response of a given age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it as is.
    Fresh,
    /// Serve it, and refresh it in the background.
    StaleWhileRevalidate,
    /// Fetch a new response; serve this one only when the fetch fails.
    StaleIfError,
    /// Fetch a new response; this one may no longer be served.
    Expired,
}

impl Freshness {
    /// Returns whether the response may be sent without waiting for the origin.
    pub fn is_servable_now(self) -> bool {
        matches!(self, Freshness::Fresh | Freshness::StaleWhileRevalidate)
    }
}

/// Classifies a response stored under `policy` that is `age_ms` milliseconds old.
pub fn freshness(policy: &CachePolicy, age_ms: u64) -> Freshness {
    let ttl_ms = u64::from(policy.edge_ttl) * 1000;
    if age_ms < ttl_ms {
        return Freshness::Fresh;
    }
    let stale_ms = age_ms - ttl_ms;
    if stale_ms < u64::from(policy.stale_while_revalidate) * 1000 {
        Freshness::StaleWhileRevalidate
    } else if stale_ms < u64::from(policy.stale_if_error) * 1000 {
        Freshness::StaleIfError
    } else {
        Freshness::Expired
    }
}

/// Returns the remaining freshness lifetime in whole seconds, negative once stale.
///
/// This is the `ttl` parameter of `Cache-Status` (RFC 9211 §2.7).
pub fn remaining_ttl_secs(policy: &CachePolicy, age_ms: u64) -> i64 {
    let ttl_ms = i64::from(policy.edge_ttl) * 1000;
    let age_ms = i64::try_from(age_ms).unwrap_or(i64::MAX);
    (ttl_ms - age_ms).div_euclid(1000)
}

/// Returns how long, in seconds, a cache must keep a response under `policy`: its
/// freshness lifetime plus the longer of its two stale windows.
pub fn retention_secs(policy: &CachePolicy) -> u32 {
    let stale = policy.stale_while_revalidate.max(policy.stale_if_error);
    policy.edge_ttl.saturating_add(stale)
}

/// Returns whether an `If-None-Match` header value matches the current `etag`.
///
/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2), so the `W/` prefix
/// is ignored on both sides, and `*` matches any current representation.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let current = opaque(etag);
    if_none_match
        .split(',')
        .any(|candidate| candidate.trim() == "*" || opaque(candidate) == current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Scope;

    fn policy(edge_ttl: u32, stale_while_revalidate: u32, stale_if_error: u32) -> CachePolicy {
        CachePolicy {
            scope: Scope::Private,
            edge_ttl,
            browser_ttl: 0,
            stale_while_revalidate,
            stale_if_error,
            immutable: false,
        }
    }

    #[test]
    fn freshness_at_window_boundaries() {
        let profile = policy(60, 30, 300);
        assert_eq!(freshness(&profile, 0), Freshness::Fresh);
        assert_eq!(freshness(&profile, 59_999), Freshness::Fresh);
        assert_eq!(freshness(&profile, 60_000), Freshness::StaleWhileRevalidate);
        assert_eq!(freshness(&profile, 89_999), Freshness::StaleWhileRevalidate);
        assert_eq!(freshness(&profile, 90_000), Freshness::StaleIfError);
        assert_eq!(freshness(&profile, 359_999), Freshness::StaleIfError);
        assert_eq!(freshness(&profile, 360_000), Freshness::Expired);
    }

    #[test]
    fn freshness_without_stale_windows() {
        let short = policy(5, 0, 0);
        assert_eq!(freshness(&short, 4_999), Freshness::Fresh);
        assert_eq!(freshness(&short, 5_000), Freshness::Expired);
    }

    #[test]
    fn freshness_survives_huge_ages() {
        assert_eq!(
            freshness(&policy(60, 30, 300), u64::MAX),
            Freshness::Expired
        );
        assert!(remaining_ttl_secs(&policy(60, 30, 300), u64::MAX) < 0);
    }

    #[test]
    fn remaining_ttl_counts_down_past_zero() {
        let profile = policy(60, 30, 300);
        assert_eq!(remaining_ttl_secs(&profile, 0), 60);
        assert_eq!(remaining_ttl_secs(&profile, 17_500), 42);
        assert_eq!(remaining_ttl_secs(&profile, 60_000), 0);
        assert_eq!(remaining_ttl_secs(&profile, 60_001), -1);
        assert_eq!(remaining_ttl_secs(&profile, 63_000), -3);
    }

    #[test]
    fn retention_covers_the_longer_stale_window() {
        assert_eq!(retention_secs(&policy(60, 30, 300)), 360);
        assert_eq!(retention_secs(&policy(300, 600, 60)), 900);
        assert_eq!(retention_secs(&policy(u32::MAX, 1, 1)), u32::MAX);
    }

    #[test]
    fn etag_comparison_is_weak() {
        assert!(etag_matches("W/\"abc\"", "W/\"abc\""));
        assert!(etag_matches("\"abc\"", "W/\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "W/\"abc\""));
        assert!(etag_matches("*", "W/\"abc\""));
        assert!(!etag_matches("W/\"abd\"", "W/\"abc\""));
        assert!(!etag_matches("", "W/\"abc\""));
    }
}
