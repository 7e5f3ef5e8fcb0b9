//! `/projects`: the caller's projects.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use velro_shared::api::{
    CreateProjectRequest, Project, ProjectList, UpdateProjectRequest, MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
};
use velro_shared::policy;

use super::json::ApiJson;
use super::path_id::PathId;
use super::reads::{self, ReadRequest};
use super::validate;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{self, projects};
use crate::error::AppError;

/// Routes under `/projects`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route(
            "/projects/{id}",
            get(get_project)
                .patch(update_project)
                .delete(delete_project),
        )
}

async fn list_projects(
    State(state): State<AppState>,
    user: AuthUser,
    read: ReadRequest,
) -> Result<Response, AppError> {
    let read = read.without_query();
    reads::respond(&state, &read, Some(&user.id), || async {
        let rows = projects::list(&state.db, &user.id).await?;
        Ok(ProjectList {
            items: rows.iter().map(projects::ProjectRow::to_api).collect(),
        })
    })
    .await
}

async fn create_project(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(request): ApiJson<CreateProjectRequest>,
) -> Result<impl IntoResponse, AppError> {
    let name = validate::required_text("name", &request.name, MAX_NAME_CHARS)?;
    let description = validate::optional_text(
        "description",
        request.description.as_deref().unwrap_or_default(),
        MAX_DESCRIPTION_CHARS,
    )?;
    let id = uuid::Uuid::now_v7().to_string();
    let row = projects::insert(&state.db, &user.id, &id, &name, &description, db::now_ms()).await?;
    state
        .cache
        .invalidate(&policy::invalidations("POST", "/projects", &user.id))
        .await;
    let location = format!("/projects/{}", row.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(row.to_api()),
    ))
}

async fn get_project(
    State(state): State<AppState>,
    user: AuthUser,
    id: PathId,
    read: ReadRequest,
) -> Result<Response, AppError> {
    let id = id.or_not_found("project")?;
    // Keyed by the canonical id, so every spelling of the path shares one entry.
    let read = ReadRequest {
        path: format!("/projects/{id}"),
        query: None,
        ..read
    };
    reads::respond(&state, &read, Some(&user.id), || async {
        let row = projects::find(&state.db, &user.id, &id)
            .await?
            .ok_or_else(|| AppError::not_found("project"))?;
        Ok(row.to_api())
    })
    .await
}

async fn update_project(
    State(state): State<AppState>,
    user: AuthUser,
    id: PathId,
    ApiJson(request): ApiJson<UpdateProjectRequest>,
) -> Result<Json<Project>, AppError> {
    let id = id.or_not_found("project")?;
    let name = request
        .name
        .as_deref()
        .map(|name| validate::required_text("name", name, MAX_NAME_CHARS))
        .transpose()?;
    let description = request
        .description
        .as_deref()
        .map(|text| validate::optional_text("description", text, MAX_DESCRIPTION_CHARS))
        .transpose()?;
    let row = projects::update(
        &state.db,
        &user.id,
        &id,
        name.as_deref(),
        description.as_deref(),
        db::now_ms(),
    )
    .await?
    .ok_or_else(|| AppError::not_found("project"))?;
    state
        .cache
        .invalidate(&policy::invalidations(
            "PATCH",
            &format!("/projects/{id}"),
            &user.id,
        ))
        .await;
    Ok(Json(row.to_api()))
}

async fn delete_project(
    State(state): State<AppState>,
    user: AuthUser,
    id: PathId,
) -> Result<StatusCode, AppError> {
    let id = id.or_not_found("project")?;
    if !projects::delete(&state.db, &user.id, &id).await? {
        return Err(AppError::not_found("project"));
    }
    state
        .cache
        .invalidate(&policy::invalidations(
            "DELETE",
            &format!("/projects/{id}"),
            &user.id,
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
