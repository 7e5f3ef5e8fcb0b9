//! The request id every response carries and every log line names.

use worker::Request;

use crate::handler::header;

/// Maximum length of a request id accepted from a client; longer or non-printable ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Keeps the client's `X-Request-Id` when it is short printable ASCII, else makes a new one.
pub fn request_id(request: &Request) -> String {
    let incoming = header(request, "x-request-id").filter(|id| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id.bytes().all(|byte| byte.is_ascii_graphic())
    });
    incoming.unwrap_or_else(random_request_id)
}

/// Builds a random version 4 UUID. `Math.random` is enough for an id that only
/// correlates log lines and needs no secrecy.
fn random_request_id() -> String {
    let mut bytes = [0u8; 16];
    for byte in &mut bytes {
        *byte = (worker::js_sys::Math::random() * 256.0) as u8;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut hex = String::with_capacity(32);
    for byte in bytes {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        hex.push(char::from_digit(u32::from(byte & 0x0f), 16).unwrap_or('0'));
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
