//! Queries on `projects`. Every query is scoped to the owning user, so another
//! user's project id behaves exactly like a missing one.

use sqlx::FromRow;
use velro_shared::api::Project;

use super::{rfc3339, Db};

/// A project row.
#[derive(Debug, Clone, FromRow)]
pub struct ProjectRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ProjectRow {
    /// The API view of this project.
    pub fn to_api(&self) -> Project {
        Project {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

const COLUMNS: &str = "id, name, description, created_at, updated_at";

/// Most projects `GET /projects` returns; the list is not paginated.
pub const MAX_LISTED: i64 = 500;

/// Lists a user's projects, newest first.
pub async fn list(db: &Db, user_id: &str) -> Result<Vec<ProjectRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projects WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(user_id)
    .bind(MAX_LISTED)
    .fetch_all(db)
    .await
}

/// Finds one of the user's projects.
pub async fn find(db: &Db, user_id: &str, id: &str) -> Result<Option<ProjectRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projects WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Creates a project.
pub async fn insert(
    db: &Db,
    user_id: &str,
    id: &str,
    name: &str,
    description: &str,
    now_ms: i64,
) -> Result<ProjectRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO projects (id, user_id, name, description, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(description)
    .bind(now_ms)
    .fetch_one(db)
    .await
}

/// Updates the given fields of one of the user's projects; `None` when it is not theirs or missing.
pub async fn update(
    db: &Db,
    user_id: &str,
    id: &str,
    name: Option<&str>,
    description: Option<&str>,
    now_ms: i64,
) -> Result<Option<ProjectRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE projects SET name = COALESCE($1, name), description = COALESCE($2, description), updated_at = $3 \
         WHERE id = $4 AND user_id = $5 RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(description)
    .bind(now_ms)
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Deletes one of the user's projects and, by cascade, its generations; `false` when nothing matched.
pub async fn delete(db: &Db, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM projects WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Whether the user owns a project with this id.
pub async fn exists(db: &Db, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM projects WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}
