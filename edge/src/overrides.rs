//! Request headers that set the client's location and the clock, for tests and
//! local runs, where workerd has no real `cf` object and time cannot be paused.
//!
//! They apply only when `ENVIRONMENT` is `development` or `test`, and the worker
//! never forwards them to an origin:
//!
//! - `x-velro-test-continent`, `x-velro-test-country`, `x-velro-test-longitude`
//!   replace `cf.continent`, `cf.country` and `cf.longitude`.
//! - `x-velro-test-now-ms` sets the current time, in unix milliseconds, for
//!   cache freshness, token expiry and outlier ejection.

use worker::Request;

use crate::config::EdgeConfig;

/// Prefix of every override header; the upstream request drops headers with it.
pub const HEADER_PREFIX: &str = "x-velro-test-";

/// Location of the client, from `request.cf` or the override headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientLocation {
    pub continent: Option<String>,
    pub country: Option<String>,
    pub longitude: Option<f64>,
}

/// Reads the client's location: the override headers when allowed, else `request.cf`.
pub fn client_location(request: &Request, config: &EdgeConfig) -> ClientLocation {
    let mut location = cf_location(request);
    if config.allows_test_overrides() {
        let header = |name: &str| {
            request
                .headers()
                .get(&format!("{HEADER_PREFIX}{name}"))
                .ok()
                .flatten()
        };
        if let Some(continent) = header("continent") {
            location.continent = Some(continent);
        }
        if let Some(country) = header("country") {
            location.country = Some(country);
        }
        if let Some(longitude) = header("longitude") {
            location.longitude = longitude.trim().parse().ok();
        }
    }
    location
}

/// Reads the location fields of `request.cf`. workers-rs parses the coordinates
/// with `unwrap`, so the raw JavaScript object is read here instead.
fn cf_location(request: &Request) -> ClientLocation {
    use worker::js_sys::Reflect;
    use worker::wasm_bindgen::JsValue;

    let Ok(cf) = Reflect::get(request.inner(), &JsValue::from_str("cf")) else {
        return ClientLocation::default();
    };
    if !cf.is_object() {
        return ClientLocation::default();
    }
    let field = |name: &str| Reflect::get(&cf, &JsValue::from_str(name)).ok();
    // Cloudflare sends the longitude as a string, such as "-122.4".
    let longitude = field("longitude").and_then(|value| {
        value
            .as_f64()
            .or_else(|| value.as_string().and_then(|text| text.trim().parse().ok()))
    });
    ClientLocation {
        continent: field("continent").and_then(|value| value.as_string()),
        country: field("country").and_then(|value| value.as_string()),
        longitude,
    }
}

/// Returns the current time in unix milliseconds: the override header when
/// allowed and valid, else the runtime's clock.
///
/// workerd advances `Date.now()` only between I/O operations, so two readings
/// inside one CPU-bound stretch are equal.
pub fn now_ms(request: &Request, config: &EdgeConfig) -> u64 {
    let overridden = config
        .allows_test_overrides()
        .then(|| {
            request
                .headers()
                .get(&format!("{HEADER_PREFIX}now-ms"))
                .ok()
                .flatten()
        })
        .flatten()
        .and_then(|value| value.trim().parse().ok());
    overridden.unwrap_or_else(|| worker::Date::now().as_millis())
}
