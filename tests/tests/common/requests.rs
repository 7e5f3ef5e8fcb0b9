//! One method per API request on [`TestApp`], plus a few that also check and parse
//! the response for tests that only need the result.
//!
//! The plain methods return the raw [`Response`], so tests can inspect statuses and
//! headers. Bodies are any `Serialize` value, so a test can send a typed request
//! from `velro_shared::api` or a deliberately wrong `serde_json::json!` value.

use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use serde::Serialize;
use serde_json::json;
use velro_shared::api::{
    Generation, GenerationPage, GenerationStatus, Project, TokenResponse, User,
};

use super::{parse_json, TestApp, MODEL, POLL_INTERVAL};

/// How long a generation may take to reach a status before the test fails. The
/// worker needs a few hundred milliseconds with 50 ms stages; the rest is headroom
/// for a loaded machine.
const GENERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// A registered user and the tokens from registration.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    pub user: User,
}

/// Returns an email address that no other test uses.
pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    /// Absolute URL of `path_and_query` on this server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
    }

    /// Builds a request without credentials.
    pub fn request(&self, method: Method, path_and_query: &str) -> RequestBuilder {
        self.client.request(method, self.url(path_and_query))
    }

    /// Builds a request with `Authorization: Bearer <token>`.
    pub fn authed(&self, method: Method, path_and_query: &str, token: &str) -> RequestBuilder {
        self.request(method, path_and_query).bearer_auth(token)
    }

    async fn send(&self, request: RequestBuilder) -> Response {
        request
            .send()
            .await
            .expect("the request should reach the server and get a response")
    }

    // --- auth ---

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.register_with(&json!({ "email": email, "password": password }))
            .await
    }

    pub async fn register_with(&self, body: &impl Serialize) -> Response {
        self.send(self.request(Method::POST, "/auth/register").json(body))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        let body = json!({ "email": email, "password": password });
        self.send(self.request(Method::POST, "/auth/login").json(&body))
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        let body = json!({ "refresh_token": refresh_token });
        self.send(self.request(Method::POST, "/auth/refresh").json(&body))
            .await
    }

    pub async fn logout(&self, refresh_token: &str) -> Response {
        let body = json!({ "refresh_token": refresh_token });
        self.send(self.request(Method::POST, "/auth/logout").json(&body))
            .await
    }

    /// Registers a user with a fresh email address and returns it with its tokens.
    pub async fn signup(&self) -> TestUser {
        let email = unique_email();
        let password = "correct horse battery staple".to_owned();
        let tokens: TokenResponse = parse_json(self.register(&email, &password).await, 201).await;
        TestUser {
            email,
            password,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            user: tokens.user,
        }
    }

    // --- users ---

    pub async fn profile(&self, token: &str) -> Response {
        self.send(self.authed(Method::GET, "/users/profile", token))
            .await
    }

    pub async fn update_profile(&self, token: &str, body: &impl Serialize) -> Response {
        self.send(
            self.authed(Method::PATCH, "/users/profile", token)
                .json(body),
        )
        .await
    }

    // --- projects ---

    pub async fn list_projects(&self, token: &str) -> Response {
        self.send(self.authed(Method::GET, "/projects", token))
            .await
    }

    pub async fn create_project(&self, token: &str, body: &impl Serialize) -> Response {
        self.send(self.authed(Method::POST, "/projects", token).json(body))
            .await
    }

    pub async fn get_project(&self, token: &str, id: &str) -> Response {
        self.send(self.authed(Method::GET, &format!("/projects/{id}"), token))
            .await
    }

    pub async fn update_project(&self, token: &str, id: &str, body: &impl Serialize) -> Response {
        self.send(
            self.authed(Method::PATCH, &format!("/projects/{id}"), token)
                .json(body),
        )
        .await
    }

    pub async fn delete_project(&self, token: &str, id: &str) -> Response {
        self.send(self.authed(Method::DELETE, &format!("/projects/{id}"), token))
            .await
    }

    /// Creates a project named `name` and returns it; panics unless the server returns 201.
    pub async fn new_project(&self, token: &str, name: &str) -> Project {
        parse_json(
            self.create_project(token, &json!({ "name": name })).await,
            201,
        )
        .await
    }

    // --- generations ---

    /// `POST /generations`, with an `Idempotency-Key` header when `idempotency_key` is set.
    pub async fn create_generation(
        &self,
        token: &str,
        body: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> Response {
        let mut request = self.authed(Method::POST, "/generations", token).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send(request).await
    }

    /// `GET /generations?<query>`; pass `""` for no query string.
    pub async fn list_generations(&self, token: &str, query: &str) -> Response {
        let path = if query.is_empty() {
            "/generations".to_owned()
        } else {
            format!("/generations?{query}")
        };
        self.send(self.authed(Method::GET, &path, token)).await
    }

    pub async fn get_generation(&self, token: &str, id: &str) -> Response {
        self.send(self.authed(Method::GET, &format!("/generations/{id}"), token))
            .await
    }

    pub async fn delete_generation(&self, token: &str, id: &str) -> Response {
        self.send(self.authed(Method::DELETE, &format!("/generations/{id}"), token))
            .await
    }

    /// Creates a generation of `prompt` with the built-in model, optionally in a
    /// project, and returns it; panics unless the server returns 202.
    pub async fn new_generation(
        &self,
        token: &str,
        prompt: &str,
        project_id: Option<&str>,
    ) -> Generation {
        let body = json!({ "prompt": prompt, "model": MODEL, "project_id": project_id });
        parse_json(self.create_generation(token, &body, None).await, 202).await
    }

    /// Fetches one page of `GET /generations?<query>`; panics unless the server returns 200.
    pub async fn generation_page(&self, token: &str, query: &str) -> GenerationPage {
        parse_json(self.list_generations(token, query).await, 200).await
    }

    /// Polls `GET /generations/{id}` until the generation has `status` and returns it.
    ///
    /// Fails the test when the generation reaches a different final status, or does
    /// not reach `status` within [`GENERATION_TIMEOUT`].
    pub async fn wait_for_generation_status(
        &self,
        token: &str,
        id: &str,
        status: GenerationStatus,
    ) -> Generation {
        let deadline = Instant::now() + GENERATION_TIMEOUT;
        loop {
            let generation: Generation =
                parse_json(self.get_generation(token, id).await, 200).await;
            if generation.status == status {
                return generation;
            }
            assert!(
                !generation.status.is_final(),
                "generation {id} ended as {:?} while waiting for {status:?}: {generation:?}",
                generation.status
            );
            assert!(
                Instant::now() < deadline,
                "generation {id} still {:?} after {GENERATION_TIMEOUT:?}, expected {status:?}",
                generation.status
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    // --- public ---

    pub async fn models(&self) -> Response {
        self.send(self.request(Method::GET, "/models")).await
    }

    pub async fn health(&self) -> Response {
        self.send(self.request(Method::GET, "/health")).await
    }

    pub async fn readiness(&self) -> Response {
        self.send(self.request(Method::GET, "/health/ready")).await
    }
}
