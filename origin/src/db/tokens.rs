//! Queries on `refresh_tokens`. Tokens are looked up by their SHA-256 hash.

use super::Db;

/// A refresh token to store.
pub struct NewRefreshToken<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub family_id: &'a str,
    pub now_ms: i64,
    pub expires_at_ms: i64,
}

/// Stores a refresh token.
pub async fn insert(db: &Db, token: &NewRefreshToken<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.token_hash)
    .bind(token.user_id)
    .bind(token.family_id)
    .bind(token.now_ms)
    .bind(token.expires_at_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// What consuming a refresh token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Consumed {
    /// The token was valid and is now used up; the rotation continues this family.
    Valid { user_id: String, family_id: String },
    /// The token had been used before: a sign of theft, so its family is revoked.
    Reused,
    /// No such token, or it expired.
    Invalid,
}

/// Marks a token used, atomically, so two concurrent refreshes cannot both succeed.
pub async fn consume(db: &Db, token_hash: &str, now_ms: i64) -> Result<Consumed, sqlx::Error> {
    let claimed: Option<(String, String)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
         RETURNING user_id, family_id",
    )
    .bind(now_ms)
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    if let Some((user_id, family_id)) = claimed {
        return Ok(Consumed::Valid { user_id, family_id });
    }

    let used_family: Option<String> = sqlx::query_scalar(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await?;
    match used_family {
        Some(family_id) => {
            revoke_family(db, &family_id, now_ms).await?;
            Ok(Consumed::Reused)
        }
        None => Ok(Consumed::Invalid),
    }
}

/// Marks every unused token of a family as used.
pub async fn revoke_family(db: &Db, family_id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE family_id = $2 AND used_at IS NULL")
        .bind(now_ms)
        .bind(family_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Revokes the family of a token, if the token exists; logging out twice is not an error.
pub async fn revoke_by_token(db: &Db, token_hash: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    let family: Option<String> =
        sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(db)
            .await?;
    if let Some(family_id) = family {
        revoke_family(db, &family_id, now_ms).await?;
    }
    Ok(())
}
