//! Queries on `generations`. Reads and deletes are scoped to the owning user;
//! the status updates belong to the background worker.

use sqlx::FromRow;
use velro_shared::api::{Generation, GenerationStatus};

use super::{rfc3339, Db};

/// A generation row.
#[derive(Debug, Clone, FromRow)]
pub struct GenerationRow {
    pub id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub model: String,
    pub prompt: String,
    pub status: String,
    pub result_type: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
}

impl GenerationRow {
    /// Parses the stored status; a value outside the four known ones reads as `failed`.
    pub fn status(&self) -> GenerationStatus {
        GenerationStatus::parse(&self.status).unwrap_or(GenerationStatus::Failed)
    }

    /// The API view of this generation.
    pub fn to_api(&self) -> Generation {
        Generation {
            id: self.id.clone(),
            project_id: self.project_id.clone(),
            model: self.model.clone(),
            prompt: self.prompt.clone(),
            status: self.status(),
            result_type: self.result_type.clone(),
            result: self.result.clone(),
            error: self.error.clone(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            completed_at: self.completed_at.map(rfc3339),
        }
    }
}

const COLUMNS: &str =
    "id, user_id, project_id, model, prompt, status, result_type, result, error, \
                       request_hash, created_at, updated_at, completed_at";

/// A generation to insert, always as `queued`.
pub struct NewGeneration<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub project_id: Option<&'a str>,
    pub model: &'a str,
    pub prompt: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: &'a str,
    pub now_ms: i64,
}

/// Inserts a queued generation; a repeated idempotency key fails with a unique violation.
pub async fn insert(db: &Db, new: &NewGeneration<'_>) -> Result<GenerationRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO generations (id, user_id, project_id, model, prompt, status, idempotency_key, request_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.project_id)
    .bind(new.model)
    .bind(new.prompt)
    .bind(new.idempotency_key)
    .bind(new.request_hash)
    .bind(new.now_ms)
    .fetch_one(db)
    .await
}

/// Finds the generation a user created with an idempotency key.
pub async fn find_by_idempotency_key(
    db: &Db,
    user_id: &str,
    key: &str,
) -> Result<Option<GenerationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM generations WHERE user_id = $1 AND idempotency_key = $2"
    ))
    .bind(user_id)
    .bind(key)
    .fetch_optional(db)
    .await
}

/// Finds one of the user's generations.
pub async fn find(db: &Db, user_id: &str, id: &str) -> Result<Option<GenerationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM generations WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Position after which a page starts: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

/// Filters and position of one page of `GET /generations`.
#[derive(Debug, Default)]
pub struct ListQuery<'a> {
    pub project_id: Option<&'a str>,
    pub status: Option<GenerationStatus>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// Lists a page of the user's generations, newest first, and fetches one row
/// past the page so the caller knows whether another page follows.
pub async fn list(
    db: &Db,
    user_id: &str,
    query: &ListQuery<'_>,
) -> Result<Vec<GenerationRow>, sqlx::Error> {
    // Built from fixed fragments only; every value goes through a bind.
    let mut sql = format!("SELECT {COLUMNS} FROM generations WHERE user_id = $1");
    let mut next = 2;
    if query.project_id.is_some() {
        sql.push_str(&format!(" AND project_id = ${next}"));
        next += 1;
    }
    if query.status.is_some() {
        sql.push_str(&format!(" AND status = ${next}"));
        next += 1;
    }
    if query.after.is_some() {
        sql.push_str(&format!(
            " AND (created_at < ${a} OR (created_at = ${a} AND id < ${b}))",
            a = next,
            b = next + 1
        ));
        next += 2;
    }
    sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${next}"));

    let mut statement = sqlx::query_as(&sql).bind(user_id);
    if let Some(project_id) = query.project_id {
        statement = statement.bind(project_id);
    }
    if let Some(status) = query.status {
        statement = statement.bind(status.as_str());
    }
    if let Some(cursor) = &query.after {
        statement = statement.bind(cursor.created_at).bind(cursor.id.as_str());
    }
    statement
        .bind(i64::from(query.limit) + 1)
        .fetch_all(db)
        .await
}

/// Deletes one of the user's generations; `false` when nothing matched.
pub async fn delete(db: &Db, user_id: &str, id: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM generations WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Claims the oldest queued generation by moving it to `running`.
///
/// The `status = 'queued'` guard in the outer `WHERE` makes the claim safe when
/// several workers (or origin instances on one Postgres) race for the same row:
/// only one update matches.
pub async fn claim_next_queued(db: &Db, now_ms: i64) -> Result<Option<GenerationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE generations SET status = 'running', updated_at = $1 \
         WHERE id = (SELECT id FROM generations WHERE status = 'queued' ORDER BY created_at, id LIMIT 1) \
         AND status = 'queued' RETURNING {COLUMNS}"
    ))
    .bind(now_ms)
    .fetch_optional(db)
    .await
}

/// Stores the result of a running generation; `false` when it was deleted meanwhile.
pub async fn complete(
    db: &Db,
    id: &str,
    result_type: &str,
    result: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let outcome = sqlx::query(
        "UPDATE generations SET status = 'completed', result_type = $1, result = $2, updated_at = $3, completed_at = $3 \
         WHERE id = $4 AND status = 'running'",
    )
    .bind(result_type)
    .bind(result)
    .bind(now_ms)
    .bind(id)
    .execute(db)
    .await?;
    Ok(outcome.rows_affected() > 0)
}

/// Marks a running generation failed with a reason; `false` when it was deleted meanwhile.
pub async fn fail(db: &Db, id: &str, reason: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
    let outcome = sqlx::query(
        "UPDATE generations SET status = 'failed', error = $1, updated_at = $2, completed_at = $2 \
         WHERE id = $3 AND status = 'running'",
    )
    .bind(reason)
    .bind(now_ms)
    .bind(id)
    .execute(db)
    .await?;
    Ok(outcome.rows_affected() > 0)
}

/// Puts a running generation back in the queue, for a worker that stops before finishing it.
pub async fn requeue(db: &Db, id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE generations SET status = 'queued', updated_at = $1 WHERE id = $2 AND status = 'running'")
        .bind(now_ms)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Puts generations left `running` since before `stale_before_ms` (by a crashed
/// process) back in the queue, and returns their ids and owners.
pub async fn requeue_stale(
    db: &Db,
    stale_before_ms: i64,
    now_ms: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE generations SET status = 'queued', updated_at = $1 \
         WHERE status = 'running' AND updated_at < $2 RETURNING id, user_id",
    )
    .bind(now_ms)
    .bind(stale_before_ms)
    .fetch_all(db)
    .await
}

/// Inserts an already completed generation with a back-dated creation time, for demo data.
pub async fn insert_completed(
    db: &Db,
    new: &NewGeneration<'_>,
    result_type: &str,
    result: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO generations (id, user_id, project_id, model, prompt, status, result_type, result, request_hash, created_at, updated_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, 'completed', $6, $7, $8, $9, $9, $9)",
    )
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.project_id)
    .bind(new.model)
    .bind(new.prompt)
    .bind(result_type)
    .bind(result)
    .bind(new.request_hash)
    .bind(new.now_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Number of generations a user has.
pub async fn count_for_user(db: &Db, user_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM generations WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(db)
        .await
}
