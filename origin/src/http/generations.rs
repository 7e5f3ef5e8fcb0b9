//! `/generations`: queueing generations, listing them page by page, and reading one.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use velro_shared::api::{
    CreateGenerationRequest, GenerationPage, GenerationStatus, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT,
    MAX_PROMPT_CHARS,
};
use velro_shared::error::ErrorCode;
use velro_shared::policy;

use super::json::ApiJson;
use super::path_id::PathId;
use super::reads::{self, ReadRequest};
use super::validate;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::generations::{self, Cursor, GenerationRow, ListQuery, NewGeneration};
use crate::db::{self, models, projects};
use crate::error::AppError;

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Routes under `/generations`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/generations",
            get(list_generations).post(create_generation),
        )
        .route(
            "/generations/{id}",
            get(get_generation).delete(delete_generation),
        )
}

/// Query parameters of `GET /generations`. Unknown parameters are rejected, which
/// also keeps clients from minting endless distinct cache keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    project_id: Option<String>,
    status: Option<String>,
}

async fn list_generations(
    State(state): State<AppState>,
    user: AuthUser,
    params: Result<Query<ListParams>, QueryRejection>,
    read: ReadRequest,
) -> Result<Response, AppError> {
    let Query(params) = params.map_err(|rejection| {
        AppError::validation(format!("invalid query string: {}", rejection.body_text()))
    })?;
    let limit = match params.limit.as_deref() {
        None => DEFAULT_PAGE_LIMIT,
        Some(raw) => raw
            .parse()
            .ok()
            .filter(|limit| (1..=MAX_PAGE_LIMIT).contains(limit))
            .ok_or_else(|| {
                AppError::validation(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE_LIMIT}"
                ))
            })?,
    };
    let status = params
        .status
        .as_deref()
        .map(|raw| {
            GenerationStatus::parse(raw).ok_or_else(|| {
                AppError::validation("status must be one of queued, running, completed, failed")
            })
        })
        .transpose()?;
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let project_id = params
        .project_id
        .as_deref()
        .map(|raw| {
            validate::canonical_uuid(raw)
                .ok_or_else(|| AppError::validation("project_id must be a project's UUID"))
        })
        .transpose()?;

    let query = ListQuery {
        project_id: project_id.as_deref(),
        status,
        after,
        limit,
    };
    serve_list(&state, &read, &user.id, &query).await
}

/// Serves one page of a user's generations through the cache; warm-up calls it
/// with the first page to pre-load the lists of recently active users.
pub async fn serve_list(
    state: &AppState,
    read: &ReadRequest,
    user_id: &str,
    query: &ListQuery<'_>,
) -> Result<Response, AppError> {
    let limit = query.limit;
    reads::respond(state, read, Some(user_id), || async {
        let mut rows = generations::list(&state.db, user_id, query).await?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if has_more {
            rows.last().map(encode_cursor)
        } else {
            None
        };
        Ok(GenerationPage {
            items: rows.iter().map(GenerationRow::to_api).collect(),
            next_cursor,
        })
    })
    .await
}

async fn create_generation(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateGenerationRequest>,
) -> Result<Response, AppError> {
    let prompt = validate::required_text("prompt", &request.prompt, MAX_PROMPT_CHARS)?;
    if !models::exists(&state.db, &request.model).await? {
        return Err(AppError::validation(format!(
            "model {:?} is not in the catalogue; GET /models lists the models",
            request.model
        )));
    }
    let idempotency_key = idempotency_key(&headers)?;
    // A malformed id cannot name one of the user's projects, so it is a missing project.
    let project_id = request
        .project_id
        .as_deref()
        .map(|raw| validate::canonical_uuid(raw).ok_or_else(|| AppError::not_found("project")))
        .transpose()?;
    let request_hash = request_hash(&request.model, &prompt, project_id.as_deref());

    if let Some(key) = idempotency_key.as_deref() {
        if let Some(existing) =
            generations::find_by_idempotency_key(&state.db, &user.id, key).await?
        {
            return replay(existing, &request_hash);
        }
    }
    if let Some(project_id) = project_id.as_deref() {
        if !projects::exists(&state.db, &user.id, project_id).await? {
            return Err(AppError::not_found("project"));
        }
    }

    let id = uuid::Uuid::now_v7().to_string();
    let new = NewGeneration {
        id: &id,
        user_id: &user.id,
        project_id: project_id.as_deref(),
        model: &request.model,
        prompt: &prompt,
        idempotency_key: idempotency_key.as_deref(),
        request_hash: &request_hash,
        now_ms: db::now_ms(),
    };
    let row = match generations::insert(&state.db, &new).await {
        Ok(row) => row,
        // A concurrent request with the same key won the insert, so this one is its replay.
        Err(error) if db::is_unique_violation(&error) => {
            let key = idempotency_key.as_deref().unwrap_or_default();
            let existing = generations::find_by_idempotency_key(&state.db, &user.id, key)
                .await?
                .ok_or_else(|| AppError::Database(error))?;
            return replay(existing, &request_hash);
        }
        Err(error) => return Err(error.into()),
    };

    state
        .cache
        .invalidate(&policy::invalidations("POST", "/generations", &user.id))
        .await;
    state.generation_queued.notify_one();
    Ok(accepted(&row, false))
}

async fn get_generation(
    State(state): State<AppState>,
    user: AuthUser,
    id: PathId,
    read: ReadRequest,
) -> Result<Response, AppError> {
    let id = id.or_not_found("generation")?;
    // The cache key is built from the canonical id, so every spelling of one
    // generation's path shares the entry that a delete invalidates.
    let read = ReadRequest {
        path: format!("/generations/{id}"),
        query: None,
        ..read
    };
    reads::respond_with_policy(&state, &read, Some(&user.id), |_route_policy| async {
        let row = generations::find(&state.db, &user.id, &id)
            .await?
            .ok_or_else(|| AppError::not_found("generation"))?;
        let policy = policy::generation_policy(row.status());
        Ok((row.to_api(), policy))
    })
    .await
}

async fn delete_generation(
    State(state): State<AppState>,
    user: AuthUser,
    id: PathId,
) -> Result<StatusCode, AppError> {
    let id = id.or_not_found("generation")?;
    if !generations::delete(&state.db, &user.id, &id).await? {
        return Err(AppError::not_found("generation"));
    }
    state
        .cache
        .invalidate(&policy::invalidations(
            "DELETE",
            &format!("/generations/{id}"),
            &user.id,
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Returns the generation the first attempt made for a retried create, or 422
/// when the key came back with a different request.
fn replay(existing: GenerationRow, request_hash: &str) -> Result<Response, AppError> {
    if existing.request_hash.as_deref() != Some(request_hash) {
        return Err(AppError::client(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used with a different request; use a new key for a new generation",
        ));
    }
    Ok(accepted(&existing, true))
}

fn accepted(row: &GenerationRow, replayed: bool) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/generations/{}", row.id))],
        Json(row.to_api()),
    )
        .into_response();
    if replayed {
        response.headers_mut().insert(
            IDEMPOTENT_REPLAYED.clone(),
            HeaderValue::from_static("true"),
        );
    }
    response
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    let valid = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key.bytes().all(|byte| byte.is_ascii_graphic());
    if !valid {
        return Err(AppError::validation(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters, such as a UUID"
        )));
    }
    Ok(Some(key.to_string()))
}

/// Fingerprint of a create's request fields, to tell a retry from a different request under the same key.
fn request_hash(model: &str, prompt: &str, project_id: Option<&str>) -> String {
    let canonical = serde_json::json!([model, prompt, project_id]).to_string();
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn encode_cursor(row: &GenerationRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", row.created_at, row.id))
}

fn decode_cursor(raw: &str) -> Result<Cursor, AppError> {
    let invalid = || {
        AppError::validation("cursor is invalid; pass the next_cursor of a previous page unchanged")
    };
    let decoded = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (created_at, id) = text.split_once('.').ok_or_else(invalid)?;
    let created_at = created_at.parse().map_err(|_| invalid())?;
    let id = validate::canonical_uuid(id).ok_or_else(invalid)?;
    Ok(Cursor { created_at, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let id = "01938a4e-0000-7000-8000-000000000000";
        let encoded = URL_SAFE_NO_PAD.encode(format!("1796414400123.{id}"));
        assert_eq!(
            decode_cursor(&encoded).unwrap(),
            Cursor {
                created_at: 1_796_414_400_123,
                id: id.to_string()
            }
        );
    }

    #[test]
    fn tampered_cursor_is_rejected() {
        for bad in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("12.not-a-uuid"),
            &URL_SAFE_NO_PAD.encode("x.01938a4e-0000-7000-8000-000000000000"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn request_hash_separates_fields() {
        assert_ne!(request_hash("m", "ab", None), request_hash("ma", "b", None));
        assert_ne!(
            request_hash("m", "p", None),
            request_hash("m", "p", Some("x"))
        );
        assert_eq!(request_hash("m", "p", None), request_hash("m", "p", None));
    }
}
