//! The response every path of the worker builds, before it becomes a
//! `worker::Response`.
//!
//! Responses from `fetch` and from the Cache API have immutable headers in
//! workerd, so the worker never edits them. It copies status and headers into a
//! [`Reply`], with the body either read into memory or kept as an unread stream,
//! edits that, and builds one new response at the end.

use serde::Serialize;
use velro_shared::api::ErrorEnvelope;
use velro_shared::error::ErrorCode;
use worker::{Headers, Response, ResponseBody};

/// Status, lowercase headers and body of a response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// Body of a [`Reply`].
#[derive(Debug, Clone)]
pub enum Body {
    /// Bytes in Wasm memory, which the worker can read and store.
    Bytes(Vec<u8>),
    /// A body the worker passes on unread, such as a cache hit's, which saves
    /// copying it into Wasm memory and back.
    Passed(ResponseBody),
}

impl Body {
    /// Returns the bytes of a body read into Wasm memory; empty for a passed-on one.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Bytes(bytes) => bytes,
            Body::Passed(_) => &[],
        }
    }
}

impl Reply {
    /// Builds a JSON response.
    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        // Every caller passes a plain API struct of strings, numbers and options,
        // which serde_json serialises without error; the empty fallback is never used.
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply {
            status,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("cache-control".to_owned(), "no-store".to_owned()),
            ],
            body: Body::Bytes(body),
        }
    }

    /// Builds an error response in the API's error envelope, with the status of `code`.
    pub fn error(code: ErrorCode, message: &str, request_id: &str) -> Reply {
        Reply::json(
            code.status(),
            &ErrorEnvelope::new(code.as_str(), message, request_id),
        )
    }

    /// Builds a response without a body.
    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// Returns the first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// Replaces every value of header `name` (lowercase) with `value`.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.remove_header(name);
        self.headers.push((name.to_owned(), value.into()));
    }

    /// Adds a value to header `name` (lowercase), keeping the existing ones.
    pub fn append_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_owned(), value.into()));
    }

    /// Removes every value of header `name` (lowercase).
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(candidate, _)| candidate != name);
    }

    /// Copies status, headers and body out of a response from `fetch` or the Cache API.
    ///
    /// `content-length` and `content-encoding` are dropped: the body read here is
    /// already decoded, and workerd sets both again for the client.
    pub async fn read(mut response: Response) -> worker::Result<Reply> {
        let body = Body::Bytes(response.bytes().await?);
        Ok(Reply::with_body(&response, body))
    }

    /// Copies status and headers out of a response and keeps its body unread.
    pub fn pass(response: Response) -> Reply {
        let reply = Reply::with_body(&response, Body::Bytes(Vec::new()));
        let (_, body) = response.into_parts();
        Reply {
            body: Body::Passed(body),
            ..reply
        }
    }

    fn with_body(response: &Response, body: Body) -> Reply {
        let headers = response
            .headers()
            .entries()
            .filter(|(name, _)| name != "content-length" && name != "content-encoding")
            .collect();
        Reply {
            status: response.status_code(),
            headers,
            body,
        }
    }

    /// Builds the `worker::Response`. A response to `HEAD` has no body, because the
    /// runtime sends the body as given.
    pub fn into_response(self, head_only: bool) -> worker::Result<Response> {
        let headers = Headers::new();
        for (name, value) in &self.headers {
            headers.append(name, value)?;
        }
        let builder = worker::ResponseBuilder::new()
            .with_status(self.status)
            .with_headers(headers);
        if head_only || self.status == 304 {
            return Ok(builder.empty());
        }
        Ok(match self.body {
            Body::Bytes(bytes) if bytes.is_empty() => builder.empty(),
            Body::Bytes(bytes) => builder.fixed(bytes),
            Body::Passed(body) => builder.body(body),
        })
    }
}
