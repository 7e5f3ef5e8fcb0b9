//! Cached reads: a cacheable GET is served from the data centre's cache when
//! the entry allows it, and fetched from an origin (once per key per isolate)
//! and stored when it does not.
//!
//! Freshness follows `velro_shared::freshness`, with the policy the entry was
//! stored under. `Cache-Status` uses the parameters of RFC 9211: `hit` with the
//! remaining `ttl` (negative when stale), or `fwd` with the reason the request
//! went to the origin and the origin's `fwd-status`.

use std::rc::Rc;

use velro_shared::error::ErrorCode;
use velro_shared::freshness::{etag_matches, freshness, remaining_ttl_secs, Freshness};
use velro_shared::policy::{stored_policy, CacheKey, CachePolicy, Route, RouteMatch, Scope};
use worker::Context;

use crate::config::EdgeConfig;
use crate::inflight::{self, Role};
use crate::reply::Reply;
use crate::store::{EdgeStore, Stored};
use crate::upstream::{self, Fetched, Forward};

/// Seconds a 404 stays cached: long enough to absorb a burst of requests for a
/// missing id, short enough that a newly created resource shows up quickly.
const NOT_FOUND_TTL_SECS: u32 = 5;

/// Everything a cached read needs, owned, so a background refresh can take it.
#[derive(Debug, Clone)]
pub struct Read {
    pub key: CacheKey,
    pub route: Route,
    /// The route's own policy for GET.
    pub route_policy: CachePolicy,
    pub forward: Forward,
    pub now_ms: u64,
    /// Scheme and host of the request, under which the cache keys its entries.
    pub base_url: String,
    /// The client's `If-None-Match`.
    pub if_none_match: Option<String>,
}

/// Serves a cacheable read.
pub async fn serve(config: Rc<EdgeConfig>, context: &Context, read: Read) -> Reply {
    let store = EdgeStore::new(&read.base_url);
    let stored = match store.get(&read.key).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!(%error, request_id = read.forward.request_id, "cache lookup failed; fetching from the origin");
            None
        }
    };

    let Some(stored) = stored else {
        let (fetched, outcome) = fetch_and_store(&config, &read).await;
        return forwarded(&fetched, "miss", outcome, &read);
    };

    let age_ms = stored.age_ms(read.now_ms);
    match freshness(&stored.policy, age_ms) {
        Freshness::Fresh => hit(stored, &read, None),
        Freshness::StaleWhileRevalidate => {
            // RFC 5861 §3: serve the stale entry now and refresh it in the background.
            // A refresh already under way for this key makes a second one pointless.
            if !inflight::is_pending(read.key.as_str()) {
                let config = config.clone();
                let refresh = read.clone();
                context.wait_until(async move {
                    let _ = fetch_and_store(&config, &refresh).await;
                });
            }
            hit(stored, &read, Some("stale-while-revalidate"))
        }
        Freshness::StaleIfError | Freshness::Expired => {
            let (fetched, outcome) = fetch_and_store(&config, &read).await;
            let servable_on_error = freshness(&stored.policy, age_ms) == Freshness::StaleIfError;
            if fetched.failed() && servable_on_error {
                // RFC 5861 §4: the origin failed, and the entry is inside its stale-if-error window.
                stale_on_error(stored, &fetched, &read)
            } else {
                forwarded(&fetched, "stale", outcome, &read)
            }
        }
    }
}

/// Outcome of the fetched response in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreOutcome {
    Stored,
    NotStored,
    /// Another request in this isolate fetched it, and this one waited.
    Collapsed,
}

/// Fetches the read from the origins, once per key in this isolate, and stores the response when it may be stored.
async fn fetch_and_store(config: &EdgeConfig, read: &Read) -> (Rc<Fetched>, StoreOutcome) {
    let leader = match inflight::join(read.key.as_str()) {
        Role::Leader(leader) => Some(leader),
        Role::Follower(receiver) => match inflight::follow(receiver).await {
            Some(fetched) => return (fetched, StoreOutcome::Collapsed),
            // The leading request went away without a result; fetch without it.
            None => None,
        },
    };

    let fetched = Rc::new(upstream::send(config, &read.forward, read.now_ms).await);
    let mut outcome = StoreOutcome::NotStored;
    if let Some((reply, policy)) = fetched
        .reply
        .as_ref()
        .and_then(|reply| storable_policy(read, reply).map(|policy| (reply, policy)))
    {
        let store = EdgeStore::new(&read.base_url);
        match store.put(&read.key, reply, &policy, read.now_ms).await {
            Ok(()) => outcome = StoreOutcome::Stored,
            Err(error) => {
                tracing::error!(%error, request_id = read.forward.request_id, "storing a response in the cache failed")
            }
        }
    }
    if let Some(leader) = leader {
        leader.finish(fetched.clone());
    }
    (fetched, outcome)
}

/// Picks the policy to store an origin response under, or `None` when it must not be stored:
/// a response with `Set-Cookie` or `Cache-Control: no-store`, or a status other than 200 or 404.
fn storable_policy(read: &Read, reply: &Reply) -> Option<CachePolicy> {
    if reply.header("set-cookie").is_some() {
        return None;
    }
    let no_store = reply.header("cache-control").is_some_and(|value| {
        value
            .split(',')
            .any(|directive| directive.trim().eq_ignore_ascii_case("no-store"))
    });
    if no_store {
        return None;
    }
    let policy = match reply.status {
        200 => {
            let matched = RouteMatch {
                route: read.route,
                id: None,
                policy: read.route_policy,
            };
            stored_policy(&matched, reply.body.bytes())
        }
        404 => CachePolicy {
            scope: read.route_policy.scope,
            edge_ttl: NOT_FOUND_TTL_SECS,
            browser_ttl: 0,
            stale_while_revalidate: 0,
            stale_if_error: 0,
            immutable: false,
        },
        _ => return None,
    };
    (policy.is_cacheable() && policy.scope != Scope::NoStore).then_some(policy)
}

/// Builds the response from a stored entry, without contacting the origin.
fn hit(stored: Stored, read: &Read, detail: Option<&str>) -> Reply {
    let age_ms = stored.age_ms(read.now_ms);
    let ttl = remaining_ttl_secs(&stored.policy, age_ms);
    let mut status = format!("velro-edge; hit; ttl={ttl}");
    if let Some(detail) = detail {
        status.push_str("; detail=");
        status.push_str(detail);
    }
    let mut reply = conditional(stored.reply, read.if_none_match.as_deref());
    reply.set_header("age", (age_ms / 1000).to_string());
    reply.set_header("cache-status", status);
    reply
}

/// Builds the response from a stale entry because the origin failed.
fn stale_on_error(stored: Stored, fetched: &Fetched, read: &Read) -> Reply {
    let age_ms = stored.age_ms(read.now_ms);
    let ttl = remaining_ttl_secs(&stored.policy, age_ms);
    let mut status = String::from("velro-edge; fwd=stale");
    if let Some(origin) = &fetched.reply {
        status.push_str(&format!("; fwd-status={}", origin.status));
    }
    status.push_str(&format!("; ttl={ttl}; detail=stale-if-error"));

    let mut reply = conditional(stored.reply, read.if_none_match.as_deref());
    reply.set_header("age", (age_ms / 1000).to_string());
    reply.set_header("cache-status", status);
    // RFC 7234 §5.5.1's warning code, which clients and proxies still read though RFC 9111 obsoletes it.
    reply.set_header("warning", "111 velro-edge \"Revalidation Failed\"");
    reply
}

/// Builds the response from what the origin sent, or a 503 when no origin responded.
fn forwarded(fetched: &Fetched, reason: &str, outcome: StoreOutcome, read: &Read) -> Reply {
    let Some(origin) = &fetched.reply else {
        let mut reply = Reply::error(
            ErrorCode::ServiceUnavailable,
            "no origin could be reached; retry shortly",
            &read.forward.request_id,
        );
        reply.set_header("retry-after", "5");
        reply.set_header(
            "cache-status",
            format!("velro-edge; fwd={reason}; detail=origin-unreachable"),
        );
        return reply;
    };

    let mut status = format!("velro-edge; fwd={reason}; fwd-status={}", origin.status);
    match outcome {
        StoreOutcome::Stored => status.push_str("; stored"),
        StoreOutcome::Collapsed => status.push_str("; collapsed"),
        StoreOutcome::NotStored => {}
    }
    let mut reply = conditional(origin.clone(), read.if_none_match.as_deref());
    // RFC 9211 §2: each cache appends its member, so the origin's comes first.
    let cache_status = match origin.header("cache-status") {
        Some(upstream) => format!("{upstream}, {status}"),
        None => status,
    };
    reply.set_header("cache-status", cache_status);
    crate::handler::mark_origin(&mut reply, fetched);
    reply
}

/// Turns a 200 into a 304 when `If-None-Match` matches its entity tag (RFC 9110 §13.1.2).
fn conditional(reply: Reply, if_none_match: Option<&str>) -> Reply {
    let matches = reply.status == 200
        && if_none_match
            .zip(reply.header("etag"))
            .is_some_and(|(candidates, etag)| etag_matches(candidates, etag));
    if !matches {
        return reply;
    }
    // RFC 9110 §15.4.5: a 304 carries the headers a 200 would have for caching, and no body.
    let mut not_modified = Reply::empty(304);
    for name in [
        "etag",
        "cache-control",
        "vary",
        "expires",
        "content-location",
    ] {
        if let Some(value) = reply.header(name) {
            not_modified.set_header(name, value.to_owned());
        }
    }
    not_modified
}
