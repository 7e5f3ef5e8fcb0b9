//! Requests to the regional origins: the region order, a timeout per attempt,
//! failover to the next region, and outlier ejection of failing regions.
//!
//! Reads go to the region nearest the client and writes to the primary
//! (`velro_shared::routing::serving_region`). On a connection error, a timeout
//! or a 5xx status the next region in the failover order is tried. That happens
//! for idempotent methods always, and for other writes only where the origin
//! deduplicates them (`forward::may_retry`), because the failed attempt may have
//! reached the database. Regions that fail
//! are ejected for a while inside this isolate (`velro_shared::outlier`), so
//! later requests do not wait for them.

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::{select, Either};
use velro_shared::outlier::{OriginFailure, OutlierDetector};
use velro_shared::routing::{failover_order, serving_region, Region};
use worker::wasm_bindgen::JsValue;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::config::EdgeConfig;
use crate::reply::Reply;

thread_local! {
    /// Health of each region's origin as this isolate has seen it.
    static OUTLIERS: RefCell<OutlierDetector> = RefCell::new(OutlierDetector::new());
}

/// A request to send to an origin.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Uppercase HTTP method.
    pub method: String,
    /// Normalised path and query, such as `/generations?limit=20`.
    pub path_and_query: String,
    /// Lowercase request headers to send.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Whether a failed attempt may be repeated against another region.
    pub retry_allowed: bool,
    /// Region nearest the client.
    pub nearest: Region,
    pub request_id: String,
}

/// The outcome of sending one request to the origins.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The last origin response, which is a 5xx when every region tried failed;
    /// `None` when no origin responded at all.
    pub reply: Option<Reply>,
    /// Region whose origin sent `reply`.
    pub region: Option<Region>,
    /// Milliseconds spent on origin attempts, by the runtime's clock.
    pub origin_ms: u64,
    /// Whether the last attempt timed out, so the origin may have applied a write.
    pub timed_out: bool,
}

impl Fetched {
    /// Returns whether the origins failed: no response, or a 5xx status.
    pub fn failed(&self) -> bool {
        self.reply.as_ref().is_none_or(|reply| reply.status >= 500)
    }
}

/// Sends `forward` to the origins in failover order until one gives a usable response.
pub async fn send(config: &EdgeConfig, forward: &Forward, now_ms: u64) -> Fetched {
    let serving = serving_region(&forward.method, forward.nearest);
    // A request that may not be retried goes to its serving region even when
    // that region is ejected: a write must reach the primary or fail.
    let order: Vec<Region> = if forward.retry_allowed {
        OUTLIERS.with(|outliers| {
            outliers
                .borrow()
                .order(failover_order(serving), now_ms)
                .to_vec()
        })
    } else {
        vec![serving]
    };
    let started_ms = worker::Date::now().as_millis();

    let mut fetched = Fetched {
        reply: None,
        region: None,
        origin_ms: 0,
        timed_out: false,
    };
    for region in order {
        let Some(base_url) = config.origin_url(region) else {
            continue;
        };
        let failure = match attempt(base_url, forward, config.origin_timeout_ms).await {
            Ok(reply) if reply.status < 500 => {
                OUTLIERS.with(|outliers| outliers.borrow_mut().record_success(region));
                fetched.reply = Some(reply);
                fetched.region = Some(region);
                break;
            }
            Ok(reply) => {
                tracing::warn!(
                    region = region.as_str(),
                    status = reply.status,
                    request_id = forward.request_id,
                    "origin returned a server error"
                );
                fetched.reply = Some(reply);
                fetched.region = Some(region);
                OriginFailure::ServerError
            }
            Err(error) => {
                tracing::warn!(
                    region = region.as_str(),
                    error = error.message,
                    request_id = forward.request_id,
                    "origin request failed"
                );
                fetched.timed_out = error.timed_out;
                OriginFailure::Unreachable
            }
        };
        let ejected = OUTLIERS.with(|outliers| {
            outliers
                .borrow_mut()
                .record_failure(region, failure, now_ms)
        });
        if ejected {
            tracing::info!(
                region = region.as_str(),
                "origin ejected after failures; skipping it for a while"
            );
        }
        if !forward.retry_allowed {
            break;
        }
    }
    fetched.origin_ms = worker::Date::now().as_millis().saturating_sub(started_ms);
    fetched
}

/// Returns whether `region` is ejected at `now_ms`, for the edge's health report.
pub fn is_ejected(region: Region, now_ms: u64) -> bool {
    OUTLIERS.with(|outliers| outliers.borrow().is_ejected(region, now_ms))
}

/// A failed attempt: what went wrong, and whether it was the timeout.
struct AttemptError {
    message: String,
    timed_out: bool,
}

impl From<String> for AttemptError {
    fn from(message: String) -> AttemptError {
        AttemptError {
            message,
            timed_out: false,
        }
    }
}

/// Sends `forward` to one origin, giving up after `timeout_ms`.
async fn attempt(
    base_url: &str,
    forward: &Forward,
    timeout_ms: u64,
) -> Result<Reply, AttemptError> {
    let headers = Headers::new();
    for (name, value) in &forward.headers {
        headers
            .append(name, value)
            .map_err(|error| format!("invalid header {name}: {error}"))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(forward.method.clone()))
        .with_headers(headers);
    if let Some(body) = &forward.body {
        let bytes = worker::js_sys::Uint8Array::from(body.as_slice());
        init.with_body(Some(JsValue::from(bytes)));
    }
    let url = format!("{base_url}{}", forward.path_and_query);
    let request = Request::new_with_init(&url, &init)
        .map_err(|error| format!("building the request to {url} failed: {error}"))?;

    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(async move {
        let response = fetch.send_with_signal(&signal).await?;
        Reply::read(response).await
    });
    let timeout = Box::pin(Delay::from(Duration::from_millis(timeout_ms)));
    match select(sending, timeout).await {
        Either::Left((Ok(reply), _)) => Ok(reply),
        Either::Left((Err(error), _)) => Err(format!("fetch from {url} failed: {error}").into()),
        Either::Right(_) => {
            controller.abort();
            Err(AttemptError {
                message: format!("{url} timed out after {timeout_ms} ms"),
                timed_out: true,
            })
        }
    }
}
