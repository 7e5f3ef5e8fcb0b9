//! The virtual user: log in, read the profile, list the generations, open the
//! newest one, and start again until the stop signal. [`Pacing`] decides when
//! each request goes out.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;
use velro_shared::api::{
    ErrorEnvelope, Generation, GenerationPage, LoginRequest, TokenResponse, User,
};

use super::pacing::Pacing;
use super::recorder::{Endpoint, ErrorKind, Recorder};

/// Email of virtual user `index`, counting from 1, as `velro-origin seed` creates it.
pub fn demo_email(index: u32) -> String {
    format!("demo{index}@velro.test")
}

/// The URLs of the workflow's fixed routes under the base URL.
#[derive(Debug, Clone)]
pub struct Urls {
    pub login: Url,
    pub profile: Url,
    pub generations: Url,
}

impl Urls {
    /// Builds the routes under `base`, whose path ends in `/`.
    pub fn new(base: &Url) -> Self {
        Self {
            login: append_segments(base, &["auth", "login"]),
            profile: append_segments(base, &["users", "profile"]),
            generations: append_segments(base, &["generations"]),
        }
    }

    /// URL of one generation; `id` is percent-encoded as a single path segment.
    pub fn generation(&self, id: &str) -> Url {
        append_segments(&self.generations, &[id])
    }
}

fn append_segments(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    // `path_segments_mut` fails only for URLs that cannot be a base, such as
    // `mailto:`. Base URLs come from `parse_base_url`, which admits only http and
    // https URLs, and those can always be a base.
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// State that every virtual user of a run shares. It has no `Debug` because it contains the password.
pub struct RunContext {
    /// One client for all users, so connections are pooled and reused.
    pub client: Client,
    pub urls: Urls,
    pub password: String,
    /// Locked for one histogram update or counter increment at a time, and never across an `.await`.
    recorder: Mutex<Recorder>,
}

impl RunContext {
    /// Creates the context with an empty recorder.
    pub fn new(client: Client, urls: Urls, password: String) -> Self {
        Self {
            client,
            urls,
            password,
            recorder: Mutex::new(Recorder::new()),
        }
    }

    /// Locks the recorder, ignoring poisoning: the recorder contains only counts,
    /// so a panic in another user can at worst leave one sample half-recorded.
    pub fn recorder(&self) -> MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Cause of a failed request, with the detail logged on the first failure of its kind.
struct Failure {
    kind: ErrorKind,
    detail: String,
}

/// One simulated user, running its workflow in a loop on its own task.
pub struct VirtualUser {
    login: LoginRequest,
    context: Arc<RunContext>,
    pacing: Pacing,
    /// Becomes `true` when the run's duration ends or Ctrl-C is pressed.
    stop: watch::Receiver<bool>,
}

impl VirtualUser {
    /// Creates user `index`, counting from 1.
    pub fn new(
        index: u32,
        context: Arc<RunContext>,
        pacing: Pacing,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let login = LoginRequest {
            email: demo_email(index),
            password: context.password.clone(),
        };
        Self {
            login,
            context,
            pacing,
            stop,
        }
    }

    /// Runs workflows until the stop signal. A request already sent when it
    /// arrives runs to completion or to the client timeout.
    pub async fn run(mut self) {
        // In the closed model users arrive spread over one think time, as real
        // sessions do, instead of all logging in at the same instant. With no
        // think time, or a schedule, they start at once.
        self.pacing.think(&mut self.stop).await;
        while !*self.stop.borrow() {
            self.run_workflow().await;
            self.pacing.think(&mut self.stop).await;
        }
    }

    /// Runs the four steps once. A step that the next one needs (the token, the
    /// page) ends the workflow when it fails; the profile read does not.
    async fn run_workflow(&mut self) {
        let Some(due) = self.pacing.next_send(&mut self.stop).await else {
            return;
        };
        let login = self
            .context
            .client
            .post(self.context.urls.login.clone())
            .json(&self.login);
        let Some(tokens) = self
            .send::<TokenResponse>(Endpoint::Login, login, due)
            .await
        else {
            return;
        };
        let token = tokens.access_token;

        let Some(due) = self.pacing.next_send(&mut self.stop).await else {
            return;
        };
        let profile = self
            .context
            .client
            .get(self.context.urls.profile.clone())
            .bearer_auth(&token);
        self.send::<User>(Endpoint::Profile, profile, due).await;

        let Some(due) = self.pacing.next_send(&mut self.stop).await else {
            return;
        };
        let list = self
            .context
            .client
            .get(self.context.urls.generations.clone())
            .bearer_auth(&token);
        let Some(page) = self
            .send::<GenerationPage>(Endpoint::Generations, list, due)
            .await
        else {
            return;
        };
        let Some(newest) = page.items.first() else {
            return;
        };

        let Some(due) = self.pacing.next_send(&mut self.stop).await else {
            return;
        };
        let detail = self
            .context
            .client
            .get(self.context.urls.generation(&newest.id))
            .bearer_auth(&token);
        self.send::<Generation>(Endpoint::GenerationDetail, detail, due)
            .await;
    }

    /// Sends one request, records its outcome, and returns the decoded body of a
    /// 2xx response. The latency runs from `due`, the start that
    /// [`Pacing::next_send`] returned, to the end of the body. Decoding the JSON
    /// happens after the clock stops.
    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
        due: Instant,
    ) -> Option<T> {
        let response = async {
            let response = request.send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        let latency = due.elapsed();

        let failure = match response {
            Ok((status, body)) if status.is_success() => match serde_json::from_slice::<T>(&body) {
                Ok(value) => {
                    self.context.recorder().record_success(endpoint, latency);
                    return Some(value);
                }
                Err(error) => Failure {
                    kind: ErrorKind::InvalidBody,
                    detail: format!(
                        "HTTP {status} with a body that is not the expected JSON: {error}"
                    ),
                },
            },
            Ok((status, body)) => Failure {
                kind: ErrorKind::Status(status.as_u16()),
                detail: format!("HTTP {status}: {}", describe_error_body(&body)),
            },
            Err(error) => Failure {
                kind: classify(&error),
                detail: format!("{:#}", anyhow::Error::new(error)),
            },
        };
        self.record_failure(endpoint, failure, latency);
        None
    }

    fn record_failure(&self, endpoint: Endpoint, failure: Failure, latency: Duration) {
        let first_of_kind = self.context.recorder().record_error(endpoint, failure.kind);
        if !first_of_kind {
            return;
        }
        let hint = match (endpoint, failure.kind) {
            (Endpoint::Login, ErrorKind::Status(401)) => {
                "; this demo user is probably not seeded, or was seeded with another password: \
                 run `velro-origin seed --users N` with N at least --users"
            }
            _ => "",
        };
        tracing::warn!(
            endpoint = endpoint.label(),
            kind = %failure.kind,
            user = %self.login.email,
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request failed: {}{hint}; later failures of this kind at this endpoint are only counted",
            failure.detail,
        );
    }
}

/// Maps a transport error to the kind the report counts it under.
pub fn classify(error: &reqwest::Error) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Transport
    }
}

/// Summarises an error response: `code: message` from the API's error envelope,
/// or the start of the body when it is something else, such as a proxy's page.
pub fn describe_error_body(body: &[u8]) -> String {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        return format!("{}: {}", envelope.error.code, envelope.error.message);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty body".to_string();
    }
    const SHOWN_CHARS: usize = 200;
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_base_path_prefix() {
        let base = Url::parse("http://127.0.0.1:8080/api/").expect("valid URL");
        let urls = Urls::new(&base);
        assert_eq!(urls.login.as_str(), "http://127.0.0.1:8080/api/auth/login");
        assert_eq!(
            urls.profile.as_str(),
            "http://127.0.0.1:8080/api/users/profile"
        );
        assert_eq!(
            urls.generations.as_str(),
            "http://127.0.0.1:8080/api/generations"
        );
        assert_eq!(
            urls.generation("abc").as_str(),
            "http://127.0.0.1:8080/api/generations/abc"
        );
    }

    #[test]
    fn generation_url_encodes_id() {
        let urls = Urls::new(&Url::parse("http://127.0.0.1:8080/").expect("valid URL"));
        assert_eq!(
            urls.generation("a/b?c").as_str(),
            "http://127.0.0.1:8080/generations/a%2Fb%3Fc"
        );
    }

    #[test]
    fn error_body_uses_envelope() {
        let body = serde_json::to_vec(&ErrorEnvelope::new(
            "invalid_credentials",
            "email or password is wrong",
            "req-1",
        ))
        .expect("envelope serialises");
        assert_eq!(
            describe_error_body(&body),
            "invalid_credentials: email or password is wrong"
        );
    }

    #[test]
    fn error_body_falls_back_to_text() {
        assert_eq!(describe_error_body(b""), "empty body");
        assert_eq!(
            describe_error_body(b"<h1>Bad Gateway</h1>\n"),
            "<h1>Bad Gateway</h1>"
        );
        let long = "x".repeat(500);
        assert_eq!(describe_error_body(long.as_bytes()).len(), 203);
    }

    #[test]
    fn demo_email_counts_from_one() {
        assert_eq!(demo_email(1), "demo1@velro.test");
        assert_eq!(demo_email(50), "demo50@velro.test");
    }
}
