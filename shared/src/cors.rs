//! The CORS allow-list and the preflight response, the same at the edge and the
//! origin, so a browser gets one policy whichever tier responds.

/// Browser origins allowed to call the API, parsed from `ALLOWED_ORIGINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin, and therefore without credentials (the CORS protocol forbids both together).
    Any,
    /// An explicit list of `scheme://host[:port]` origins; credentials are allowed.
    List(Vec<String>),
}

impl AllowedOrigins {
    /// Parses `*` alone, or a comma-separated list of origins such as
    /// `https://app.velro.ai,http://localhost:5173`. Returns `None` when an entry
    /// is not an http(s) origin or the list is empty.
    pub fn parse(value: &str) -> Option<AllowedOrigins> {
        if value.trim() == "*" {
            return Some(AllowedOrigins::Any);
        }
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if !is_origin(origin) {
                return None;
            }
            origins.push(origin.trim_end_matches('/').to_owned());
        }
        (!origins.is_empty()).then_some(AllowedOrigins::List(origins))
    }

    /// Returns whether a request's `Origin` header value is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(origins) => origins.iter().any(|allowed| allowed == origin),
        }
    }

    /// Returns whether responses may allow credentials, which only a list permits.
    pub fn allows_credentials(&self) -> bool {
        matches!(self, AllowedOrigins::List(_))
    }
}

/// Checks whether `value` is a serialised origin: a scheme, a host and an optional port, with no path.
fn is_origin(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '*', ' '])
}

/// Methods a preflight allows.
pub const ALLOWED_METHODS: [&str; 5] = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"];

/// Request headers a preflight allows, lowercase.
pub const ALLOWED_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "if-none-match",
    "idempotency-key",
    "x-request-id",
];

/// Response headers a browser script may read, lowercase.
pub const EXPOSED_HEADERS: [&str; 8] = [
    "age",
    "cache-status",
    "etag",
    "server-timing",
    "warning",
    "x-edge-region",
    "x-origin-region",
    "x-request-id",
];

/// Seconds a browser may reuse a preflight response.
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_star_and_lists() {
        assert_eq!(AllowedOrigins::parse("*"), Some(AllowedOrigins::Any));
        assert_eq!(
            AllowedOrigins::parse(" https://app.velro.ai/ , http://localhost:5173"),
            Some(AllowedOrigins::List(vec![
                "https://app.velro.ai".to_owned(),
                "http://localhost:5173".to_owned(),
            ]))
        );
    }

    #[test]
    fn parse_rejects_non_origins() {
        assert_eq!(AllowedOrigins::parse(""), None);
        assert_eq!(AllowedOrigins::parse("app.velro.ai"), None);
        assert_eq!(AllowedOrigins::parse("https://app.velro.ai/path"), None);
        assert_eq!(AllowedOrigins::parse("ftp://app.velro.ai"), None);
        assert_eq!(AllowedOrigins::parse("https://*.velro.ai"), None);
    }

    #[test]
    fn allows_only_listed_origins() {
        let list = AllowedOrigins::parse("https://app.velro.ai").unwrap();
        assert!(list.allows("https://app.velro.ai"));
        assert!(!list.allows("https://evil.example"));
        assert!(!list.allows("https://app.velro.ai.evil.example"));
        assert!(list.allows_credentials());
        assert!(AllowedOrigins::Any.allows("https://evil.example"));
        assert!(!AllowedOrigins::Any.allows_credentials());
    }
}
