//! The fixed table of route labels that requests are recorded under.
//!
//! A label is `METHOD template`, such as `GET /generations/{id}`, for every method
//! the shared policy accepts on every API route, plus `unmatched` for everything
//! else (unknown paths, methods a route does not accept, CORS preflights). The
//! table is fixed at start-up, so the recorder can keep one preallocated series
//! per label and clients cannot add labels.

use velro_shared::policy::{self, Route};

/// Label of requests that match no route of the shared policy.
pub const UNMATCHED: &str = "unmatched";

/// Index of a label in [`RouteTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(pub(super) usize);

/// One labelled route.
#[derive(Debug)]
struct Entry {
    /// `None` for the `unmatched` label.
    route: Option<Route>,
    method: &'static str,
    label: String,
}

/// Every label requests can be recorded under.
#[derive(Debug)]
pub struct RouteTable {
    entries: Vec<Entry>,
}

impl RouteTable {
    /// Builds the table from the shared route list. The health routes are left
    /// out, because monitoring requests are not recorded.
    pub fn new() -> Self {
        let mut entries = Vec::new();
        for route in Route::ALL {
            if matches!(route, Route::Health | Route::Ready) {
                continue;
            }
            for &method in route.allowed_methods() {
                entries.push(Entry {
                    route: Some(route),
                    method,
                    label: format!("{method} {}", route.template()),
                });
            }
        }
        entries.push(Entry {
            route: None,
            method: "",
            label: UNMATCHED.to_string(),
        });
        Self { entries }
    }

    /// Returns every id, in table order.
    pub fn ids(&self) -> impl Iterator<Item = RouteId> {
        (0..self.entries.len()).map(RouteId)
    }

    /// Finds the label of a request. A linear scan over a few dozen entries,
    /// cheaper than hashing the label.
    pub fn find(&self, method: &str, path: &str) -> RouteId {
        // The shared matcher skips empty segments, but the router returns 404 for
        // `/models/` or `//models`, so such paths must not count under a route.
        let has_empty_segment = path.len() > 1 && (path.ends_with('/') || path.contains("//"));
        let route = policy::match_route(method, path)
            .filter(|_| !has_empty_segment)
            .map(|matched| matched.route);
        let found = route.and_then(|route| {
            self.entries
                .iter()
                .position(|entry| entry.route == Some(route) && entry.method == method)
        });
        RouteId(found.unwrap_or(self.entries.len() - 1))
    }

    /// Returns the label of `id`, such as `GET /models`.
    pub fn label(&self, id: RouteId) -> &str {
        &self.entries[id.0].label
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_use_method_and_template() {
        let table = RouteTable::new();
        let id = table.find("GET", "/generations/abc");
        assert_eq!(table.label(id), "GET /generations/{id}");
        let id = table.find("HEAD", "/models");
        assert_eq!(table.label(id), "HEAD /models");
    }

    #[test]
    fn unknown_requests_share_one_label() {
        let table = RouteTable::new();
        for (method, path) in [
            ("GET", "/no-such-route"),
            ("PUT", "/models"),
            ("OPTIONS", "/models"),
            ("GET", "/health"),
            // The router returns 404 for these, although the shared matcher skips empty segments.
            ("GET", "/models/"),
            ("GET", "//models"),
            ("GET", "/generations//abc"),
            ("GET", "/generations/abc/"),
        ] {
            assert_eq!(
                table.label(table.find(method, path)),
                UNMATCHED,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn every_label_is_distinct() {
        let table = RouteTable::new();
        let mut labels: Vec<&str> = table.ids().map(|id| table.label(id)).collect();
        let count = labels.len();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), count);
    }
}
