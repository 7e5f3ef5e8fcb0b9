//! Queries on `users`.

use sqlx::FromRow;
use velro_shared::api::User;

use super::{rfc3339, Db};

/// A user row, including the password hash that never leaves the server.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    /// The API view of this user.
    pub fn to_api(&self) -> User {
        User {
            id: self.id.clone(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

const COLUMNS: &str = "id, email, password_hash, display_name, created_at, updated_at";

/// A user to insert.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
    pub now_ms: i64,
}

/// Inserts a user; fails with a unique violation when the email is taken.
pub async fn insert(db: &Db, user: &NewUser<'_>) -> Result<UserRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, display_name, created_at, updated_at, last_active_at) \
         VALUES ($1, $2, $3, $4, $5, $5, $5) RETURNING {COLUMNS}"
    );
    sqlx::query_as(&sql)
        .bind(user.id)
        .bind(user.email)
        .bind(user.password_hash)
        .bind(user.display_name)
        .bind(user.now_ms)
        .fetch_one(db)
        .await
}

/// Finds a user by (lowercased) email.
pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
        .bind(email)
        .fetch_optional(db)
        .await
}

/// Finds a user by id.
pub async fn find_by_id(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Sets the display name; `None` when the user does not exist.
pub async fn update_display_name(
    db: &Db,
    id: &str,
    display_name: &str,
    now_ms: i64,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3 RETURNING {COLUMNS}"
    ))
    .bind(display_name)
    .bind(now_ms)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Records a login, which ranks the user in the warm-up's hot set.
pub async fn touch_last_active(db: &Db, id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET last_active_at = $1 WHERE id = $2")
        .bind(now_ms)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Replaces a user's password hash, used by `seed` to keep demo passwords in step.
pub async fn set_password_hash(
    db: &Db,
    id: &str,
    password_hash: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now_ms)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Ids of the most recently active users, newest first.
pub async fn most_recently_active(db: &Db, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM users ORDER BY last_active_at DESC LIMIT $1")
        .bind(limit)
        .fetch_all(db)
        .await
}
