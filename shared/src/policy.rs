//! Cache policy of every API route: who may store a response, for how long, under
//! which key, and which cached entries a write invalidates.
//!
//! Velro's own caches (the edge and the origin's L1/L2) read [`CachePolicy`]
//! directly and key private entries by the verified user id, so they may hold
//! per-user responses. The `Cache-Control` header from [`cache_control`] is for
//! the browser and for caches outside Velro, which must not store `private`
//! responses (RFC 9111 §5.2.2.7).
//!
//! Invalidation works with tags. Each cached read carries the tags from
//! [`read_tags`], and a write bumps the version of each tag that [`invalidations`]
//! lists, so every entry stored under an older version becomes a miss. The edge
//! cannot find entries by tag, so a write also lists the exact keys it changes.

use std::fmt;

use crate::api::GenerationStatus;

/// Set of caches allowed to store a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any cache may store it, because the response is the same for every user.
    Public,
    /// Only the user's browser, and Velro's caches under a key with the user id, may store it.
    Private,
    /// No cache may store it.
    NoStore,
}

impl Scope {
    /// Returns the scope's name: `public`, `private` or `no-store`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Public => "public",
            Scope::Private => "private",
            Scope::NoStore => "no-store",
        }
    }

    /// Parses a name written by [`Scope::as_str`].
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "public" => Some(Scope::Public),
            "private" => Some(Scope::Private),
            "no-store" => Some(Scope::NoStore),
            _ => None,
        }
    }
}

/// Freshness and staleness limits of one response, for the browser and for shared caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Caches allowed to store the response.
    pub scope: Scope,
    /// Seconds a shared cache (the edge, the origin's L1/L2) keeps the response fresh.
    pub edge_ttl: u32,
    /// Seconds the browser keeps the response fresh (`max-age`).
    pub browser_ttl: u32,
    /// Seconds past freshness during which a cache may serve the response while it revalidates.
    pub stale_while_revalidate: u32,
    /// Seconds past freshness during which a cache may serve the response when the origin fails.
    pub stale_if_error: u32,
    /// Whether the response never changes while fresh, so a browser need not revalidate it.
    pub immutable: bool,
}

impl CachePolicy {
    /// Policy of a response that no cache may store.
    pub const NO_STORE: CachePolicy = CachePolicy {
        scope: Scope::NoStore,
        edge_ttl: 0,
        browser_ttl: 0,
        stale_while_revalidate: 0,
        stale_if_error: 0,
        immutable: false,
    };

    /// Returns whether a shared cache may store the response at all.
    pub fn is_cacheable(&self) -> bool {
        self.scope != Scope::NoStore && self.edge_ttl > 0
    }

    /// Writes the policy as six space-separated fields, for caches that store it
    /// with an entry: scope, `edge_ttl`, `browser_ttl`, `stale_while_revalidate`,
    /// `stale_if_error`, and `immutable` as 0 or 1. Example: `private 60 0 30 300 0`.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.scope.as_str(),
            self.edge_ttl,
            self.browser_ttl,
            self.stale_while_revalidate,
            self.stale_if_error,
            u8::from(self.immutable)
        )
    }

    /// Parses a policy written by [`CachePolicy::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<CachePolicy> {
        let mut fields = text.split(' ');
        let scope = Scope::parse(fields.next()?)?;
        let mut number = || fields.next()?.parse::<u32>().ok();
        let policy = CachePolicy {
            scope,
            edge_ttl: number()?,
            browser_ttl: number()?,
            stale_while_revalidate: number()?,
            stale_if_error: number()?,
            immutable: match number()? {
                0 => false,
                1 => true,
                _ => return None,
            },
        };
        fields.next().is_none().then_some(policy)
    }
}

/// Per-user policy that only shared caches hold fresh, and the browser revalidates every time.
const fn private(edge_ttl: u32, stale_while_revalidate: u32, stale_if_error: u32) -> CachePolicy {
    CachePolicy {
        scope: Scope::Private,
        edge_ttl,
        browser_ttl: 0,
        stale_while_revalidate,
        stale_if_error,
        immutable: false,
    }
}

/// `GET /models`: the catalogue changes only on deploys, so it may be served stale for
/// a day when the origin fails.
const MODELS_POLICY: CachePolicy = CachePolicy {
    scope: Scope::Public,
    edge_ttl: 300,
    browser_ttl: 60,
    stale_while_revalidate: 600,
    stale_if_error: 86_400,
    immutable: false,
};

/// One API route, independent of the HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/auth/register`
    AuthRegister,
    /// `/auth/login`
    AuthLogin,
    /// `/auth/refresh`
    AuthRefresh,
    /// `/auth/logout`
    AuthLogout,
    /// `/users/profile`
    Profile,
    /// `/projects`
    Projects,
    /// `/projects/{id}`
    Project,
    /// `/generations`
    Generations,
    /// `/generations/{id}`
    Generation,
    /// `/models`
    Models,
    /// `/health`
    Health,
    /// `/health/ready`
    Ready,
}

impl Route {
    /// Every route, in the order of the route table.
    pub const ALL: [Route; 12] = [
        Route::AuthRegister,
        Route::AuthLogin,
        Route::AuthRefresh,
        Route::AuthLogout,
        Route::Profile,
        Route::Projects,
        Route::Project,
        Route::Generations,
        Route::Generation,
        Route::Models,
        Route::Health,
        Route::Ready,
    ];

    /// Returns the path template, with `{id}` for the variable segment, which suits metric labels.
    pub fn template(self) -> &'static str {
        match self {
            Route::AuthRegister => "/auth/register",
            Route::AuthLogin => "/auth/login",
            Route::AuthRefresh => "/auth/refresh",
            Route::AuthLogout => "/auth/logout",
            Route::Profile => "/users/profile",
            Route::Projects => "/projects",
            Route::Project => "/projects/{id}",
            Route::Generations => "/generations",
            Route::Generation => "/generations/{id}",
            Route::Models => "/models",
            Route::Health => "/health",
            Route::Ready => "/health/ready",
        }
    }

    /// Returns the methods the route accepts, for an `Allow` header. `HEAD` is listed wherever `GET` is.
    pub fn allowed_methods(self) -> &'static [&'static str] {
        match self {
            Route::AuthRegister | Route::AuthLogin | Route::AuthRefresh | Route::AuthLogout => {
                &["POST"]
            }
            Route::Profile => &["GET", "HEAD", "PATCH"],
            Route::Projects | Route::Generations => &["GET", "HEAD", "POST"],
            Route::Project => &["GET", "HEAD", "PATCH", "DELETE"],
            Route::Generation => &["GET", "HEAD", "DELETE"],
            Route::Models | Route::Health | Route::Ready => &["GET", "HEAD"],
        }
    }

    /// Returns whether every method of the route needs a valid access token.
    /// The auth routes, the catalogue and the health checks are open.
    pub fn requires_access_token(self) -> bool {
        matches!(
            self,
            Route::Profile
                | Route::Projects
                | Route::Project
                | Route::Generations
                | Route::Generation
        )
    }
}

/// A request matched to its route, with the `{id}` segment and the route's default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The matched route.
    pub route: Route,
    /// The `{id}` segment, for the routes that have one.
    pub id: Option<&'a str>,
    /// Policy of the route for this method. For `GET /generations/{id}` it is the
    /// policy of a running generation until the caller knows the status.
    pub policy: CachePolicy,
}

impl RouteMatch<'_> {
    /// Builds the normalised path by filling the id into the template, such as `/generations/g1`.
    pub fn normalized_path(&self) -> String {
        match self.id {
            Some(id) => self.route.template().replace("{id}", id),
            None => self.route.template().to_owned(),
        }
    }
}

/// Maps `HEAD` to `GET`, because a `HEAD` response is the `GET` response without its body.
fn read_method(method: &str) -> &str {
    if method == "HEAD" {
        "GET"
    } else {
        method
    }
}

/// No route has more than two segments.
const MAX_SEGMENTS: usize = 2;

/// Looks up the route of `path` whatever the method, so a caller can tell 404 from 405.
///
/// Empty segments are skipped, so `/generations//g1/` matches like `/generations/g1`.
/// A path that does not start with `/` or contains a `.` or `..` segment matches
/// nothing, so the edge and the origin cannot resolve dot segments differently.
pub fn match_path(path: &str) -> Option<(Route, Option<&str>)> {
    let rest = path.strip_prefix('/')?;

    let mut segments = [""; MAX_SEGMENTS];
    let mut count = 0;
    for segment in rest.split('/').filter(|segment| !segment.is_empty()) {
        if segment == "." || segment == ".." || count == MAX_SEGMENTS {
            return None;
        }
        segments[count] = segment;
        count += 1;
    }

    let matched = match &segments[..count] {
        ["auth", "register"] => (Route::AuthRegister, None),
        ["auth", "login"] => (Route::AuthLogin, None),
        ["auth", "refresh"] => (Route::AuthRefresh, None),
        ["auth", "logout"] => (Route::AuthLogout, None),
        ["users", "profile"] => (Route::Profile, None),
        ["projects"] => (Route::Projects, None),
        ["projects", id] => (Route::Project, Some(*id)),
        ["generations"] => (Route::Generations, None),
        ["generations", id] => (Route::Generation, Some(*id)),
        ["models"] => (Route::Models, None),
        ["health"] => (Route::Health, None),
        ["health", "ready"] => (Route::Ready, None),
        _ => return None,
    };
    Some(matched)
}

/// Looks up the policy of `route` for `method` in the route table, or `None` when the
/// route does not accept the method. `method` is uppercase, with `HEAD` already mapped to `GET`.
fn route_policy(route: Route, method: &str) -> Option<CachePolicy> {
    let policy = match (route, method) {
        (
            Route::AuthRegister | Route::AuthLogin | Route::AuthRefresh | Route::AuthLogout,
            "POST",
        ) => CachePolicy::NO_STORE,
        (Route::Profile, "GET") => private(60, 30, 300),
        (Route::Profile, "PATCH") => CachePolicy::NO_STORE,
        (Route::Projects, "GET") => private(30, 30, 300),
        (Route::Projects, "POST") => CachePolicy::NO_STORE,
        (Route::Project, "GET") => private(60, 30, 300),
        (Route::Project, "PATCH" | "DELETE") => CachePolicy::NO_STORE,
        (Route::Generations, "GET") => private(10, 10, 300),
        (Route::Generations, "POST") => CachePolicy::NO_STORE,
        // The status is unknown until the row is read, so assume the most volatile one.
        (Route::Generation, "GET") => generation_policy(GenerationStatus::Running),
        (Route::Generation, "DELETE") => CachePolicy::NO_STORE,
        (Route::Models, "GET") => MODELS_POLICY,
        (Route::Health | Route::Ready, "GET") => CachePolicy::NO_STORE,
        _ => return None,
    };
    Some(policy)
}

/// Looks up the route of an uppercase HTTP `method` and a `path` without its query.
///
/// `HEAD` is treated like `GET`. Returns `None` for unknown routes and for methods
/// the route does not accept. Trailing and repeated slashes are ignored, so a caller
/// that forwards the request should forward [`RouteMatch::normalized_path`].
pub fn match_route<'a>(method: &str, path: &'a str) -> Option<RouteMatch<'a>> {
    let (route, id) = match_path(path)?;
    let policy = route_policy(route, read_method(method))?;
    Some(RouteMatch { route, id, policy })
}

/// Detail policy of one generation, which depends on its status.
///
/// A completed generation never changes, so it is immutable and cached long. A failed
/// one is final too, but the user may delete it, so shared caches keep it 5 minutes
/// and the browser revalidates. A queued or running one changes within seconds, so
/// it is fresh for 2 s and may be served stale for 2 s more while it revalidates.
pub fn generation_policy(status: GenerationStatus) -> CachePolicy {
    match status {
        GenerationStatus::Completed => CachePolicy {
            scope: Scope::Private,
            edge_ttl: 86_400,
            browser_ttl: 3_600,
            stale_while_revalidate: 86_400,
            stale_if_error: 7 * 86_400,
            immutable: true,
        },
        GenerationStatus::Failed => private(300, 60, 300),
        GenerationStatus::Queued | GenerationStatus::Running => private(2, 2, 60),
    }
}

/// Picks the policy under which a cache stores a 200 response of `matched`.
///
/// A generation detail's policy depends on the `status` field of its body, as in
/// [`generation_policy`]. When the body has no readable status, the route's own
/// policy (that of a running generation) applies, which is the shortest.
pub fn stored_policy(matched: &RouteMatch<'_>, body: &[u8]) -> CachePolicy {
    #[derive(serde::Deserialize)]
    struct StatusField {
        status: GenerationStatus,
    }

    if matched.route != Route::Generation {
        return matched.policy;
    }
    match serde_json::from_slice::<StatusField>(body) {
        Ok(field) => generation_policy(field.status),
        Err(_) => matched.policy,
    }
}

/// Renders the browser-facing `Cache-Control` header value of a response.
pub fn cache_control(policy: &CachePolicy) -> String {
    let mut value = match policy.scope {
        // `public` (RFC 9111 §5.2.2.9) lets any cache store it; `max-age` (§5.2.2.1)
        // is the browser's lifetime and `s-maxage` (§5.2.2.10) overrides it in shared
        // caches. The stale extensions are RFC 5861 §3 and §4, which caches that do not
        // know them must ignore (RFC 9111 §5.2.3).
        // NOTE: s-maxage carries proxy-revalidate semantics (RFC 9111 §5.2.2.10), so a
        // strictly conforming third-party shared cache revalidates instead of using
        // stale-while-revalidate. Velro's edge reads CachePolicy and is not affected.
        Scope::Public => format!(
            "public, max-age={}, s-maxage={}, stale-while-revalidate={}, stale-if-error={}",
            policy.browser_ttl,
            policy.edge_ttl,
            policy.stale_while_revalidate,
            policy.stale_if_error
        ),
        // `no-cache` (RFC 9111 §5.2.2.4) lets the browser store the response but makes it
        // revalidate before each reuse. That contradicts `immutable`, which is left out.
        Scope::Private if policy.browser_ttl == 0 => return "private, no-cache".to_owned(),
        // `private` (RFC 9111 §5.2.2.7) keeps the response out of shared caches outside Velro.
        Scope::Private => format!("private, max-age={}", policy.browser_ttl),
        // `no-store` (RFC 9111 §5.2.2.5) applies to private and shared caches alike.
        Scope::NoStore => return "no-store".to_owned(),
    };

    // `immutable` (RFC 8246) lets the browser skip revalidation while the response is fresh.
    if policy.immutable {
        value.push_str(", immutable");
    }
    value
}

/// Key under which a cached response is stored, the same at the edge and the origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// Returns the key as text, such as `GET /generations?limit=20 user=<uid>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reason [`cache_key`] could not derive a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The route is private and no verified user id was given.
    #[error("cache key of a private route needs the verified user id, and none was given")]
    MissingUser,
    /// The route is public and a user id was given, which would split one shared entry per user.
    #[error("cache key of a public route must not include a user id")]
    UnexpectedUser,
    /// The request has no cached form: an unknown route, a method other than GET or HEAD,
    /// a no-store route, or a path or query containing whitespace or control characters.
    #[error("request is not cacheable: only GET or HEAD on a cacheable route, with no whitespace in path or query, has a cache key")]
    NotCacheable,
}

/// Derives the cache key of a read.
///
/// The format is fixed because the edge and the origin both rely on it. It is the
/// method (`GET`, which `HEAD` maps to), the normalised path, the query pairs sorted
/// by name then value, and for private routes the verified user id. Empty pairs and
/// an empty query are dropped, and percent-encoding is kept as given. Examples:
/// `GET /models`, `GET /generations?limit=20&status=queued user=<uid>`.
///
/// `query` is the raw query string without the leading `?`. Only the generation list
/// takes parameters, so on every other route the key leaves the query out. A
/// generation detail's key does not depend on its status, because every status has
/// a private policy.
pub fn cache_key(
    method: &str,
    path: &str,
    query: Option<&str>,
    user_id: Option<&str>,
) -> Result<CacheKey, KeyError> {
    let matched = match_route(method, path).ok_or(KeyError::NotCacheable)?;
    if !matched.policy.is_cacheable() {
        return Err(KeyError::NotCacheable);
    }

    let user_id = user_id.filter(|user_id| !user_id.is_empty());
    let user_id = match (matched.policy.scope, user_id) {
        (Scope::Private, Some(user_id)) => Some(user_id),
        (Scope::Private, None) => return Err(KeyError::MissingUser),
        (Scope::Public, Some(_)) => return Err(KeyError::UnexpectedUser),
        (Scope::Public, None) => None,
        (Scope::NoStore, _) => return Err(KeyError::NotCacheable),
    };

    // The key uses spaces as separators, so a space in the path or query could make
    // two different requests share a key. A valid request target has none.
    let path = matched.normalized_path();
    // Only the generation list reads its query string. On every other route a query
    // would only add keys for the same response, and the origin ignores it as well.
    let query = match matched.route {
        Route::Generations => query.unwrap_or(""),
        _ => "",
    };
    if has_separator_chars(&path) || has_separator_chars(query) {
        return Err(KeyError::NotCacheable);
    }

    Ok(format_key(&path, &sorted_query(query), user_id))
}

fn has_separator_chars(text: &str) -> bool {
    text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Sorts `name=value` pairs by name, then value, then the raw pair, and drops empty pairs.
fn sorted_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty()).collect();
    pairs.sort_unstable_by_key(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name, value, *pair)
    });
    pairs.join("&")
}

fn format_key(path: &str, sorted_query: &str, user_id: Option<&str>) -> CacheKey {
    let mut key = format!("GET {path}");
    if !sorted_query.is_empty() {
        key.push('?');
        key.push_str(sorted_query);
    }
    if let Some(user_id) = user_id {
        key.push_str(" user=");
        key.push_str(user_id);
    }
    CacheKey(key)
}

/// Key of the no-query read of a private `path` by `user_id`.
fn private_key(path: &str, user_id: &str) -> CacheKey {
    format_key(path, "", Some(user_id))
}

/// Tag of the model catalogue.
pub const MODELS_TAG: &str = "models";

fn profile_tag(user_id: &str) -> String {
    format!("user:{user_id}:profile")
}

fn projects_tag(user_id: &str) -> String {
    format!("user:{user_id}:projects")
}

fn project_tag(project_id: &str) -> String {
    format!("project:{project_id}")
}

fn generations_tag(user_id: &str) -> String {
    format!("user:{user_id}:generations")
}

fn generation_tag(generation_id: &str) -> String {
    format!("generation:{generation_id}")
}

fn generation_details_tag(user_id: &str) -> String {
    format!("user:{user_id}:generation-details")
}

/// Lists the invalidation tags that a cached read carries, whose versions the origin bumps on writes.
///
/// Empty for a match that is not cacheable. Tags that name the user are left out
/// when `user_id` is `None`, but [`cache_key`] gives no key to such a read, so it is
/// never stored.
pub fn read_tags(route: &RouteMatch<'_>, user_id: Option<&str>) -> Vec<String> {
    if !route.policy.is_cacheable() {
        return Vec::new();
    }

    let user_id = user_id.filter(|user_id| !user_id.is_empty());
    let mut tags = Vec::new();
    match route.route {
        Route::Models => tags.push(MODELS_TAG.to_owned()),
        Route::Profile => tags.extend(user_id.map(profile_tag)),
        Route::Projects => tags.extend(user_id.map(projects_tag)),
        Route::Project => {
            tags.extend(route.id.map(project_tag));
            tags.extend(user_id.map(projects_tag));
        }
        Route::Generations => tags.extend(user_id.map(generations_tag)),
        Route::Generation => {
            tags.extend(route.id.map(generation_tag));
            tags.extend(user_id.map(generation_details_tag));
        }
        Route::AuthRegister
        | Route::AuthLogin
        | Route::AuthRefresh
        | Route::AuthLogout
        | Route::Health
        | Route::Ready => {}
    }
    tags
}

/// Cache entries a write makes out of date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalidation {
    /// Tags whose version the origin bumps.
    pub tags: Vec<String>,
    /// Exact keys to delete, for the edge, which cannot find entries by tag.
    pub keys: Vec<CacheKey>,
}

impl Invalidation {
    /// Returns whether there is nothing to invalidate.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.keys.is_empty()
    }
}

/// Lists the tags and keys that a successful write (method, path) by `user_id` invalidates.
///
/// The keys are the no-query reads of the changed lists and details, detail first.
/// Reads, auth routes and unknown routes invalidate nothing.
///
/// NOTE: lists read with a query (`?limit=`, `?cursor=`, `?status=`) have no key
/// here, so the edge keeps serving them until their `edge_ttl` runs out. The same
/// holds for the details of generations removed with their project: the origin's
/// `generation-details` tag covers them, but the edge has no key for them.
pub fn invalidations(method: &str, path: &str, user_id: &str) -> Invalidation {
    let Some(matched) = match_route(method, path) else {
        return Invalidation::default();
    };

    match (matched.route, method, matched.id) {
        (Route::Profile, "PATCH", _) => Invalidation {
            tags: vec![profile_tag(user_id)],
            keys: vec![private_key(Route::Profile.template(), user_id)],
        },
        (Route::Projects, "POST", _) => Invalidation {
            tags: vec![projects_tag(user_id)],
            keys: vec![private_key(Route::Projects.template(), user_id)],
        },
        (Route::Project, "PATCH", Some(project_id)) => Invalidation {
            tags: vec![project_tag(project_id), projects_tag(user_id)],
            keys: vec![
                private_key(&matched.normalized_path(), user_id),
                private_key(Route::Projects.template(), user_id),
            ],
        },
        // Deleting a project deletes its generations, whose ids the caller may not
        // have at hand, so every generation detail of the user is invalidated.
        (Route::Project, "DELETE", Some(project_id)) => Invalidation {
            tags: vec![
                project_tag(project_id),
                projects_tag(user_id),
                generations_tag(user_id),
                generation_details_tag(user_id),
            ],
            keys: vec![
                private_key(&matched.normalized_path(), user_id),
                private_key(Route::Projects.template(), user_id),
                private_key(Route::Generations.template(), user_id),
            ],
        },
        (Route::Generations, "POST", _) => Invalidation {
            tags: vec![generations_tag(user_id)],
            keys: vec![private_key(Route::Generations.template(), user_id)],
        },
        (Route::Generation, "DELETE", Some(generation_id)) => {
            generation_changed(user_id, generation_id)
        }
        _ => Invalidation::default(),
    }
}

/// Lists the tags and keys that a generation status change, made by the origin's background worker, invalidates.
pub fn generation_changed(user_id: &str, generation_id: &str) -> Invalidation {
    let detail_path = Route::Generation.template().replace("{id}", generation_id);
    Invalidation {
        tags: vec![generation_tag(generation_id), generations_tag(user_id)],
        keys: vec![
            private_key(&detail_path, user_id),
            private_key(Route::Generations.template(), user_id),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_encoding_round_trips() {
        for route in Route::ALL {
            for method in ["GET", "POST"] {
                let Some(matched) = match_route(method, route.template()) else {
                    continue;
                };
                let encoded = matched.policy.encode();
                assert_eq!(
                    CachePolicy::decode(&encoded),
                    Some(matched.policy),
                    "{encoded}"
                );
            }
        }
        assert_eq!(
            generation_policy(GenerationStatus::Completed).encode(),
            "private 86400 3600 86400 604800 1"
        );
        for bad in [
            "",
            "private",
            "shared 1 1 1 1 0",
            "private 1 1 1 1 2",
            "private 1 1 1 1 0 9",
        ] {
            assert_eq!(CachePolicy::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stored_policy_follows_generation_status() {
        let detail = match_route("GET", "/generations/g1").unwrap();
        let completed = br#"{"id":"g1","status":"completed","prompt":"x"}"#;
        let failed = br#"{"id":"g1","status":"failed"}"#;
        assert_eq!(
            stored_policy(&detail, completed),
            generation_policy(GenerationStatus::Completed)
        );
        assert_eq!(
            stored_policy(&detail, failed),
            generation_policy(GenerationStatus::Failed)
        );
        assert_eq!(stored_policy(&detail, b"not json"), detail.policy);
        assert_eq!(
            stored_policy(&detail, br#"{"status":"done"}"#),
            detail.policy
        );

        let profile = match_route("GET", "/users/profile").unwrap();
        assert_eq!(stored_policy(&profile, completed), profile.policy);
    }

    const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

    fn policy_of(method: &str, path: &str) -> CachePolicy {
        match match_route(method, path) {
            Some(matched) => matched.policy,
            None => panic!("{method} {path} should match a route"),
        }
    }

    fn key(method: &str, path: &str, query: Option<&str>, user_id: Option<&str>) -> String {
        match cache_key(method, path, query, user_id) {
            Ok(key) => key.to_string(),
            Err(error) => panic!("{method} {path} should have a key: {error}"),
        }
    }

    fn keys(invalidation: &Invalidation) -> Vec<&str> {
        invalidation.keys.iter().map(CacheKey::as_str).collect()
    }

    #[test]
    fn match_route_finds_every_template() {
        for route in Route::ALL {
            let path = route.template().replace("{id}", "x1");
            let method = route.allowed_methods()[0];
            let matched = match_route(method, &path).map(|matched| matched.route);
            assert_eq!(matched, Some(route), "{method} {path}");
        }
    }

    #[test]
    fn match_route_extracts_id() {
        let matched = match_route("GET", "/generations/g-42");
        assert_eq!(matched.map(|m| m.route), Some(Route::Generation));
        assert_eq!(matched.and_then(|m| m.id), Some("g-42"));
        assert_eq!(match_route("GET", "/projects").and_then(|m| m.id), None);
    }

    #[test]
    fn match_route_normalises_slashes() {
        assert_eq!(
            match_route("GET", "/generations/"),
            match_route("GET", "/generations")
        );
        assert_eq!(
            match_route("GET", "//generations//g1/"),
            match_route("GET", "/generations/g1")
        );
        assert_eq!(
            match_route("GET", "/generations//g1/").map(|m| m.normalized_path()),
            Some("/generations/g1".to_owned())
        );
    }

    #[test]
    fn match_route_rejects_unknown_paths() {
        for path in [
            "",
            "/",
            "generations",
            "/generation",
            "/Generations",
            "/generations/g1/extra",
            "/projects/p1/generations",
            "/auth",
            "/auth/unknown",
            "/users",
            "/health/live",
            "/generations/..",
            "/generations/.",
            "/models/../generations",
        ] {
            assert!(
                match_route("GET", path).is_none(),
                "{path:?} should not match"
            );
            assert!(
                match_route("POST", path).is_none(),
                "{path:?} should not match"
            );
        }
    }

    #[test]
    fn match_route_rejects_unsupported_methods() {
        assert!(match_route("POST", "/models").is_none());
        assert!(match_route("GET", "/auth/login").is_none());
        assert!(match_route("PUT", "/projects/p1").is_none());
        assert!(match_route("PATCH", "/generations/g1").is_none());
        assert!(match_route("get", "/models").is_none());
        assert!(match_route("OPTIONS", "/models").is_none());
    }

    #[test]
    fn head_is_matched_like_get() {
        assert_eq!(
            match_route("HEAD", "/models"),
            match_route("GET", "/models")
        );
        assert_eq!(
            match_route("HEAD", "/generations/g1"),
            match_route("GET", "/generations/g1")
        );
        assert!(match_route("HEAD", "/auth/login").is_none());
    }

    #[test]
    fn allowed_methods_agree_with_route_table() {
        for route in Route::ALL {
            let path = route.template().replace("{id}", "x1");
            for method in METHODS {
                let allowed = route.allowed_methods().contains(&method);
                let matched = match_route(method, &path).is_some();
                assert_eq!(allowed, matched, "{method} {path}");
            }
        }
    }

    #[test]
    fn match_path_ignores_method() {
        assert_eq!(match_path("/models"), Some((Route::Models, None)));
        assert_eq!(
            match_path("/projects/p1/"),
            Some((Route::Project, Some("p1")))
        );
        assert_eq!(match_path("/nowhere"), None);
    }

    #[test]
    fn route_table_policies() {
        assert_eq!(policy_of("GET", "/users/profile"), private(60, 30, 300));
        assert_eq!(policy_of("GET", "/projects"), private(30, 30, 300));
        assert_eq!(policy_of("GET", "/projects/p1"), private(60, 30, 300));
        assert_eq!(policy_of("GET", "/generations"), private(10, 10, 300));
        assert_eq!(
            policy_of("GET", "/generations/g1"),
            generation_policy(GenerationStatus::Running)
        );

        let models = policy_of("GET", "/models");
        assert_eq!(models.scope, Scope::Public);
        assert_eq!(models.edge_ttl, 300);
        assert_eq!(models.browser_ttl, 60);
        assert_eq!(models.stale_while_revalidate, 600);
        assert_eq!(models.stale_if_error, 86_400);
        assert!(!models.immutable);
    }

    #[test]
    fn writes_auth_and_health_are_no_store() {
        for (method, path) in [
            ("POST", "/auth/register"),
            ("POST", "/auth/login"),
            ("POST", "/auth/refresh"),
            ("POST", "/auth/logout"),
            ("PATCH", "/users/profile"),
            ("POST", "/projects"),
            ("PATCH", "/projects/p1"),
            ("DELETE", "/projects/p1"),
            ("POST", "/generations"),
            ("DELETE", "/generations/g1"),
            ("GET", "/health"),
            ("GET", "/health/ready"),
        ] {
            let policy = policy_of(method, path);
            assert_eq!(policy, CachePolicy::NO_STORE, "{method} {path}");
            assert!(!policy.is_cacheable(), "{method} {path}");
        }
    }

    #[test]
    fn is_cacheable_needs_scope_and_ttl() {
        assert!(private(10, 0, 0).is_cacheable());
        assert!(!private(0, 10, 10).is_cacheable());
        let no_store_with_ttl = CachePolicy {
            edge_ttl: 60,
            ..CachePolicy::NO_STORE
        };
        assert!(!no_store_with_ttl.is_cacheable());
    }

    #[test]
    fn completed_generation_is_immutable_and_long() {
        let policy = generation_policy(GenerationStatus::Completed);
        assert_eq!(policy.scope, Scope::Private);
        assert_eq!(policy.edge_ttl, 86_400);
        assert_eq!(policy.browser_ttl, 3_600);
        assert_eq!(policy.stale_if_error, 604_800);
        assert!(policy.immutable);
    }

    #[test]
    fn unfinished_generations_stay_fresh_briefly() {
        for status in [GenerationStatus::Queued, GenerationStatus::Running] {
            let policy = generation_policy(status);
            assert_eq!(policy.scope, Scope::Private);
            assert_eq!(policy.edge_ttl, 2);
            assert_eq!(policy.browser_ttl, 0);
            assert!(policy.stale_while_revalidate <= 5);
            assert!(!policy.immutable);
        }
    }

    #[test]
    fn failed_generation_cached_five_minutes() {
        let policy = generation_policy(GenerationStatus::Failed);
        assert_eq!(policy.scope, Scope::Private);
        assert_eq!(policy.edge_ttl, 300);
        assert_eq!(policy.browser_ttl, 0);
        assert!(!policy.immutable);
    }

    #[test]
    fn cache_control_public() {
        assert_eq!(
            cache_control(&MODELS_POLICY),
            "public, max-age=60, s-maxage=300, stale-while-revalidate=600, stale-if-error=86400"
        );
        let immutable = CachePolicy {
            immutable: true,
            ..MODELS_POLICY
        };
        assert_eq!(
            cache_control(&immutable),
            "public, max-age=60, s-maxage=300, stale-while-revalidate=600, stale-if-error=86400, immutable"
        );
    }

    #[test]
    fn cache_control_private() {
        assert_eq!(cache_control(&private(60, 30, 300)), "private, no-cache");
        assert_eq!(
            cache_control(&generation_policy(GenerationStatus::Completed)),
            "private, max-age=3600, immutable"
        );
        let mutable = CachePolicy {
            browser_ttl: 30,
            ..private(60, 30, 300)
        };
        assert_eq!(cache_control(&mutable), "private, max-age=30");
        let immutable_without_browser_ttl = CachePolicy {
            immutable: true,
            ..private(60, 0, 0)
        };
        assert_eq!(
            cache_control(&immutable_without_browser_ttl),
            "private, no-cache"
        );
    }

    #[test]
    fn cache_control_no_store() {
        assert_eq!(cache_control(&CachePolicy::NO_STORE), "no-store");
        let immutable = CachePolicy {
            immutable: true,
            ..CachePolicy::NO_STORE
        };
        assert_eq!(cache_control(&immutable), "no-store");
    }

    #[test]
    fn cache_key_formats() {
        assert_eq!(key("GET", "/models", None, None), "GET /models");
        assert_eq!(
            key("GET", "/users/profile", None, Some("u1")),
            "GET /users/profile user=u1"
        );
        assert_eq!(
            key(
                "GET",
                "/generations",
                Some("status=queued&limit=20"),
                Some("u1")
            ),
            "GET /generations?limit=20&status=queued user=u1"
        );
        assert_eq!(
            key("GET", "/generations/g1", None, Some("u1")),
            "GET /generations/g1 user=u1"
        );
    }

    #[test]
    fn cache_key_maps_head_to_get() {
        assert_eq!(key("HEAD", "/models", None, None), "GET /models");
        assert_eq!(
            key("HEAD", "/projects", None, Some("u1")),
            "GET /projects user=u1"
        );
    }

    #[test]
    fn cache_key_normalises_path() {
        assert_eq!(
            key("GET", "/generations/", None, Some("u1")),
            "GET /generations user=u1"
        );
        assert_eq!(
            key("GET", "//projects//p1/", None, Some("u1")),
            "GET /projects/p1 user=u1"
        );
    }

    #[test]
    fn cache_key_sorts_query_by_name_then_value() {
        assert_eq!(
            key("GET", "/generations", Some("b=2&a=2&a=1"), Some("u1")),
            "GET /generations?a=1&a=2&b=2 user=u1"
        );
        assert_eq!(
            key("GET", "/generations", Some("a=1&ab=0"), Some("u1")),
            "GET /generations?a=1&ab=0 user=u1"
        );
        assert_eq!(
            key("GET", "/generations", Some("flag&a=1"), Some("u1")),
            "GET /generations?a=1&flag user=u1"
        );
        assert_eq!(
            key("GET", "/generations", Some("a=&a"), Some("u1")),
            "GET /generations?a&a= user=u1"
        );
    }

    #[test]
    fn cache_key_drops_empty_query() {
        assert_eq!(
            key("GET", "/generations", Some(""), Some("u1")),
            "GET /generations user=u1"
        );
        assert_eq!(
            key("GET", "/generations", Some("&&"), Some("u1")),
            "GET /generations user=u1"
        );
        assert_eq!(
            key("GET", "/generations", Some("&x=1&"), Some("u1")),
            "GET /generations?x=1 user=u1"
        );
    }

    #[test]
    fn cache_key_keeps_percent_encoding() {
        assert_eq!(
            key(
                "GET",
                "/generations",
                Some("cursor=a%2Fb&status=queued"),
                Some("u1")
            ),
            "GET /generations?cursor=a%2Fb&status=queued user=u1"
        );
        assert_ne!(
            key("GET", "/generations", Some("q=%41"), Some("u1")),
            key("GET", "/generations", Some("q=A"), Some("u1"))
        );
    }

    #[test]
    fn cache_key_ignores_query_without_parameters() {
        assert_eq!(key("GET", "/models", Some("b=2&a=1"), None), "GET /models");
        assert_eq!(
            key("GET", "/users/profile", Some("x=1"), Some("u1")),
            "GET /users/profile user=u1"
        );
        assert_eq!(
            key("GET", "/projects/p1", Some("a b"), Some("u1")),
            "GET /projects/p1 user=u1"
        );
    }

    #[test]
    fn cache_key_checks_user() {
        assert_eq!(
            cache_key("GET", "/generations", None, None),
            Err(KeyError::MissingUser)
        );
        assert_eq!(
            cache_key("GET", "/generations", None, Some("")),
            Err(KeyError::MissingUser)
        );
        assert_eq!(
            cache_key("GET", "/models", None, Some("u1")),
            Err(KeyError::UnexpectedUser)
        );
        assert!(cache_key("GET", "/models", None, Some("")).is_ok());
    }

    #[test]
    fn cache_key_rejects_uncacheable_requests() {
        assert_eq!(
            cache_key("POST", "/generations", None, Some("u1")),
            Err(KeyError::NotCacheable)
        );
        assert_eq!(
            cache_key("DELETE", "/generations/g1", None, Some("u1")),
            Err(KeyError::NotCacheable)
        );
        assert_eq!(
            cache_key("GET", "/health", None, None),
            Err(KeyError::NotCacheable)
        );
        assert_eq!(
            cache_key("GET", "/nowhere", None, None),
            Err(KeyError::NotCacheable)
        );
        assert_eq!(
            cache_key("GET", "/generations", Some("a=1 user=u2"), Some("u1")),
            Err(KeyError::NotCacheable)
        );
        assert_eq!(
            cache_key("GET", "/generations/g 1", None, Some("u1")),
            Err(KeyError::NotCacheable)
        );
    }

    #[test]
    fn read_tags_per_route() {
        let cases: [(&str, &[&str]); 6] = [
            ("/models", &["models"]),
            ("/users/profile", &["user:u1:profile"]),
            ("/projects", &["user:u1:projects"]),
            ("/projects/p1", &["project:p1", "user:u1:projects"]),
            ("/generations", &["user:u1:generations"]),
            (
                "/generations/g1",
                &["generation:g1", "user:u1:generation-details"],
            ),
        ];
        for (path, expected) in cases {
            let Some(matched) = match_route("GET", path) else {
                panic!("GET {path} should match");
            };
            let user_id = (matched.policy.scope == Scope::Private).then_some("u1");
            assert_eq!(read_tags(&matched, user_id), expected, "GET {path}");
        }
    }

    #[test]
    fn read_tags_empty_for_uncacheable() {
        for (method, path) in [
            ("DELETE", "/generations/g1"),
            ("POST", "/auth/login"),
            ("GET", "/health"),
        ] {
            let Some(matched) = match_route(method, path) else {
                panic!("{method} {path} should match");
            };
            assert!(
                read_tags(&matched, Some("u1")).is_empty(),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn read_tags_without_user_keep_resource_tags() {
        let Some(matched) = match_route("GET", "/projects/p1") else {
            panic!("GET /projects/p1 should match");
        };
        assert_eq!(read_tags(&matched, None), ["project:p1"]);
    }

    #[test]
    fn read_tags_follow_replaced_policy() {
        let Some(matched) = match_route("GET", "/generations/g1") else {
            panic!("GET /generations/g1 should match");
        };
        let completed = RouteMatch {
            policy: generation_policy(GenerationStatus::Completed),
            ..matched
        };
        assert_eq!(
            read_tags(&completed, Some("u1")),
            ["generation:g1", "user:u1:generation-details"]
        );
    }

    #[test]
    fn profile_patch_invalidates_profile() {
        let invalidation = invalidations("PATCH", "/users/profile", "u1");
        assert_eq!(invalidation.tags, ["user:u1:profile"]);
        assert_eq!(keys(&invalidation), ["GET /users/profile user=u1"]);
    }

    #[test]
    fn project_writes_invalidate_project_and_list() {
        let created = invalidations("POST", "/projects", "u1");
        assert_eq!(created.tags, ["user:u1:projects"]);
        assert_eq!(keys(&created), ["GET /projects user=u1"]);

        let updated = invalidations("PATCH", "/projects/p1/", "u1");
        assert_eq!(updated.tags, ["project:p1", "user:u1:projects"]);
        assert_eq!(
            keys(&updated),
            ["GET /projects/p1 user=u1", "GET /projects user=u1"]
        );
    }

    #[test]
    fn project_delete_cascades_to_generations() {
        let deleted = invalidations("DELETE", "/projects/p1", "u1");
        assert_eq!(
            deleted.tags,
            [
                "project:p1",
                "user:u1:projects",
                "user:u1:generations",
                "user:u1:generation-details"
            ]
        );
        assert_eq!(
            keys(&deleted),
            [
                "GET /projects/p1 user=u1",
                "GET /projects user=u1",
                "GET /generations user=u1"
            ]
        );
    }

    #[test]
    fn generation_writes_invalidate_lists() {
        let created = invalidations("POST", "/generations", "u1");
        assert_eq!(created.tags, ["user:u1:generations"]);
        assert_eq!(keys(&created), ["GET /generations user=u1"]);

        let deleted = invalidations("DELETE", "/generations/g1", "u");
        assert_eq!(deleted.tags, ["generation:g1", "user:u:generations"]);
        assert_eq!(
            keys(&deleted),
            ["GET /generations/g1 user=u", "GET /generations user=u"]
        );
    }

    #[test]
    fn generation_changed_invalidates_detail_and_list() {
        let changed = generation_changed("u1", "g7");
        assert_eq!(changed.tags, ["generation:g7", "user:u1:generations"]);
        assert_eq!(
            keys(&changed),
            ["GET /generations/g7 user=u1", "GET /generations user=u1"]
        );
    }

    #[test]
    fn invalidation_keys_match_read_keys() {
        let deleted = invalidations("DELETE", "/projects/p1", "u1");
        for (path, expected) in [("/projects/p1", 0), ("/projects", 1), ("/generations", 2)] {
            let read = cache_key("GET", path, None, Some("u1"));
            assert_eq!(read.as_ref(), Ok(&deleted.keys[expected]), "GET {path}");
        }
    }

    #[test]
    fn invalidation_tags_cover_read_tags() {
        let read_tags_of = |path: &str| match match_route("GET", path) {
            Some(matched) => read_tags(&matched, Some("u1")),
            None => panic!("GET {path} should match"),
        };
        let changed = generation_changed("u1", "g1");
        assert!(changed.tags.contains(&read_tags_of("/generations/g1")[0]));
        assert!(changed.tags.contains(&read_tags_of("/generations")[0]));

        let deleted = invalidations("DELETE", "/projects/p1", "u1");
        assert!(deleted.tags.contains(&read_tags_of("/generations/g9")[1]));
    }

    #[test]
    fn reads_and_auth_invalidate_nothing() {
        for (method, path) in [
            ("GET", "/generations"),
            ("HEAD", "/projects/p1"),
            ("POST", "/auth/login"),
            ("POST", "/auth/register"),
            ("POST", "/auth/logout"),
            ("POST", "/nowhere"),
            ("PUT", "/projects/p1"),
        ] {
            let invalidation = invalidations(method, path, "u1");
            assert!(invalidation.is_empty(), "{method} {path}");
        }
    }
}
