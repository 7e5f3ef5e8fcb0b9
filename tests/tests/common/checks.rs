//! Assertions on responses that many tests share.

use reqwest::Response;
use serde::de::DeserializeOwned;
use velro_shared::api::{ErrorBody, ErrorEnvelope};

/// Value of header `name`, or `None` when it is absent or not visible ASCII.
pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Joins all field lines of a list-valued header such as `vary` with `, `, which
/// keeps its meaning; empty when the header is absent.
pub fn header_list(response: &Response, name: &str) -> String {
    let values: Vec<&str> = response
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    values.join(", ")
}

/// Value of `cache-control`; panics when the header is absent.
pub fn cache_control(response: &Response) -> String {
    header(response, "cache-control").unwrap_or_else(|| {
        panic!(
            "{} {} has no cache-control header",
            response.status(),
            response.url()
        )
    })
}

/// Extracts the `max-age` directive of a `Cache-Control` value, in seconds.
pub fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .map(str::trim)
        .find_map(|directive| directive.strip_prefix("max-age="))
        .map(|seconds| {
            seconds.parse().unwrap_or_else(|error| {
                panic!("max-age in {cache_control:?} is not a number: {error}")
            })
        })
}

/// Returns the parameters of the `velro-origin` entry of `cache-status` (RFC 9211),
/// such as `["hit"]` or `["fwd=miss"]`.
///
/// Panics when the header is absent or names another cache first.
pub fn cache_status_params(response: &Response) -> Vec<String> {
    let value = header(response, "cache-status").unwrap_or_else(|| {
        panic!(
            "{} {} has no cache-status header",
            response.status(),
            response.url()
        )
    });
    assert!(
        value.starts_with("velro-origin;"),
        "cache-status should start with `velro-origin;`: {value:?}"
    );

    // Entries are comma-separated, one per cache; the origin's own entry is the first.
    let origin_entry = value.split(',').next().unwrap_or_default();
    origin_entry
        .split(';')
        .skip(1)
        .map(|param| param.trim().to_owned())
        .collect()
}

/// Asserts the status, then parses the body as `T`; panics with the body text on either failure.
pub async fn parse_json<T: DeserializeOwned>(response: Response, expected_status: u16) -> T {
    let status = response.status().as_u16();
    let url = response.url().clone();
    let body = response
        .text()
        .await
        .expect("reading the response body should succeed");
    assert_eq!(
        status, expected_status,
        "unexpected status from {url}; body: {body}"
    );
    serde_json::from_str(&body).unwrap_or_else(|error| {
        panic!(
            "body from {url} does not parse as {}: {error}; body: {body}",
            std::any::type_name::<T>()
        )
    })
}

/// Asserts that `response` is an error in the API's format: the expected status,
/// an envelope with the expected `code`, a non-empty message, and a `request_id`
/// equal to the `x-request-id` header. Returns the error body for further checks.
pub async fn assert_error(
    response: Response,
    expected_status: u16,
    expected_code: &str,
) -> ErrorBody {
    let status = response.status().as_u16();
    let url = response.url().clone();
    let request_id = header(&response, "x-request-id");
    let body = response
        .text()
        .await
        .expect("reading the response body should succeed");

    assert_eq!(
        status, expected_status,
        "unexpected status from {url}; body: {body}"
    );
    let envelope: ErrorEnvelope = serde_json::from_str(&body).unwrap_or_else(|error| {
        panic!("error body from {url} is not an error envelope: {error}; body: {body}")
    });
    let error = envelope.error;
    assert_eq!(
        error.code, expected_code,
        "unexpected error code from {url}; body: {body}"
    );
    assert!(
        !error.message.trim().is_empty(),
        "error message from {url} is empty; body: {body}"
    );

    let request_id = request_id
        .unwrap_or_else(|| panic!("error response from {url} has no x-request-id header"));
    assert_eq!(
        error.request_id, request_id,
        "error.request_id should equal the x-request-id header"
    );
    error
}
