//! Queries on `models`, the public catalogue of generation models.

use sqlx::FromRow;
use velro_shared::api::Model;

use super::Db;

#[derive(FromRow)]
struct ModelRow {
    id: String,
    name: String,
    description: String,
    output_type: String,
    max_prompt_chars: i64,
}

/// Lists the catalogue in display order.
pub async fn list(db: &Db) -> Result<Vec<Model>, sqlx::Error> {
    let rows: Vec<ModelRow> = sqlx::query_as(
        "SELECT id, name, description, output_type, max_prompt_chars FROM models ORDER BY position, id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Model {
            id: row.id,
            name: row.name,
            description: row.description,
            output_type: row.output_type,
            max_prompt_chars: u32::try_from(row.max_prompt_chars).unwrap_or(u32::MAX),
        })
        .collect())
}

/// Whether the catalogue has a model with this id.
pub async fn exists(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM models WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}
