//! Request and response bodies of the Velro API, as they travel over the wire.
//!
//! Timestamps are RFC 3339 strings in UTC and ids are UUID strings, so the edge
//! can pass bodies through without parsing dates. Request bodies reject unknown
//! fields: a misspelt field in a `PATCH` would otherwise be silently ignored.

use serde::{Deserialize, Serialize};

/// Maximum prompt length of a generation, in characters.
pub const MAX_PROMPT_CHARS: usize = 2_000;
/// Shortest password accepted at registration, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum password length, in characters, because argon2's cost grows with input length.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Maximum length of a display name or project name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Maximum length of a project description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Default and maximum page sizes of list endpoints.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;
/// Maximum `limit` a list endpoint accepts.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// Body of `POST /auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Body of `POST /auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// Body of `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Tokens issued by login, registration and refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
    pub user: User,
}

/// A user's own profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `PATCH /users/profile`; absent fields stay unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A project groups a user's generations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /projects`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// Body of `PATCH /projects/{id}`; absent fields stay unchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Response of `GET /projects`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectList {
    pub items: Vec<Project>,
}

/// Life cycle of a generation: `queued` -> `running` -> `completed` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenerationStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl GenerationStatus {
    /// The lowercase name used in JSON, SQL and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses the lowercase name; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "completed" => Some(Self::Completed),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Whether the generation can still change: only `completed` and `failed` are final.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// One generation request and, once finished, its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub id: String,
    pub project_id: Option<String>,
    pub model: String,
    pub prompt: String,
    pub status: GenerationStatus,
    /// Media type of `result`, such as `image/svg+xml`, once completed.
    pub result_type: Option<String>,
    /// The generated artefact, once completed.
    pub result: Option<String>,
    /// Failure reason, when `status` is `failed`.
    pub error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

/// Body of `POST /generations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGenerationRequest {
    pub prompt: String,
    pub model: String,
    #[serde(default)]
    pub project_id: Option<String>,
}

/// One page of `GET /generations`, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationPage {
    pub items: Vec<Generation>,
    /// Pass as `cursor` to fetch the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A generation model of the public catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Media type of what the model produces.
    pub output_type: String,
    pub max_prompt_chars: u32,
}

/// Response of `GET /models`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelList {
    pub items: Vec<Model>,
}

/// Response of `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` while the process serves requests.
    pub status: String,
    pub region: String,
    pub version: String,
    /// The `RELEASE` the instance was started with, such as a commit SHA; absent when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Reads served from the origin's in-process cache since start.
    pub l1_hits: u64,
    /// Reads the in-process cache had to load since start.
    pub l1_misses: u64,
    /// L1 misses that Redis served, since start; 0 without Redis.
    #[serde(default)]
    pub l2_hits: u64,
    /// L1 misses that Redis could not serve, since start; 0 without Redis.
    #[serde(default)]
    pub l2_misses: u64,
    /// State of the Redis circuit breaker: `closed`, `open`, `half_open`, or `disabled` without Redis.
    #[serde(default)]
    pub redis: String,
    /// State of the database circuit breaker: `closed`, `open` or `half_open`.
    #[serde(default)]
    pub database: String,
}

/// Outcome of one warm-up step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Pending,
    Ok,
    Failed,
    /// Failed, and the server runs without it, such as an unreachable optional Redis.
    Degraded,
}

/// One warm-up step as reported by `GET /health/ready`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarmupStep {
    pub name: String,
    pub outcome: StepOutcome,
    /// Wall time of the step, in milliseconds; `None` while pending.
    pub duration_ms: Option<f64>,
    /// Failure reason of the step.
    pub error: Option<String>,
}

/// Response of `GET /health/ready`: 200 when `ready`, 503 otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub steps: Vec<WarmupStep>,
    /// Wall time of the whole warm-up, in milliseconds, once finished.
    pub total_ms: Option<f64>,
    /// Reason a warmed-up server is not ready, such as an unreachable database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The `RELEASE` the instance was started with, so a deploy job can tell a new
    /// deployment from the one it replaces; absent when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// The body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// Error details: a `code` a client can branch on and a `message` it can show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub request_id: String,
}

impl ErrorEnvelope {
    /// Builds an envelope from its three parts.
    pub fn new(
        code: impl Into<String>,
        message: impl Into<String>,
        request_id: impl Into<String>,
    ) -> Self {
        Self {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
                request_id: request_id.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_json_shape() {
        let envelope = ErrorEnvelope::new("not_found", "generation not found", "req-1");
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "not_found", "message": "generation not found", "request_id": "req-1"}})
        );
    }

    #[test]
    fn update_profile_rejects_unknown_field() {
        let parsed: Result<UpdateProfileRequest, _> =
            serde_json::from_str(r#"{"display_nme": "x"}"#);
        assert!(parsed.is_err());
    }

    #[test]
    fn generation_status_round_trips() {
        for status in [
            GenerationStatus::Queued,
            GenerationStatus::Running,
            GenerationStatus::Completed,
            GenerationStatus::Failed,
        ] {
            assert_eq!(GenerationStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(GenerationStatus::parse("QUEUED"), None);
    }
}
