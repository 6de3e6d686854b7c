//! API tokens for provider automation, keyed by the SHA-256 of the token.

use serde::Serialize;

use super::users::User;
use super::{Db, Row, StoreError, params};

/// A token's metadata; the token itself is shown once at creation and never stored.
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, name, created_at, last_used_at";

fn from_row(row: &Row) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: row.get(0)?,
        user_id: row.get(1)?,
        name: row.get(2)?,
        created_at: row.get(3)?,
        last_used_at: row.get(4)?,
    })
}

/// A new token; a name the user already has fails with a unique violation.
pub async fn insert(
    db: &impl Db,
    user_id: i64,
    name: &str,
    token_hash: &[u8; 32],
) -> Result<ApiToken, StoreError> {
    let row = db
        .query_one(
            &format!(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4) RETURNING {COLUMNS}"
            ),
            params![user_id, name, token_hash, super::now()],
        )
        .await?;
    from_row(&row)
}

/// The enabled user owning the token with this hash, and the token's id, noting the use.
pub async fn authenticate_with_id(
    db: &impl Db,
    token_hash: &[u8; 32],
) -> Result<Option<(User, i64)>, StoreError> {
    let found = db
        .query_opt(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE token_hash = ?1
             AND user_id IN (SELECT id FROM users WHERE disabled = 0) RETURNING user_id, id",
            params![token_hash, super::now()],
        )
        .await?;
    let Some(found) = found else {
        return Ok(None);
    };
    let token_id: i64 = found.get(1)?;
    Ok(super::users::get(db, found.get(0)?)
        .await?
        .map(|user| (user, token_id)))
}

pub async fn list_for_user(db: &impl Db, user_id: i64) -> Result<Vec<ApiToken>, StoreError> {
    db.query_as(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = ?1 ORDER BY id"),
        params![user_id],
        from_row,
    )
    .await
}

pub async fn delete(db: &impl Db, user_id: i64, id: i64) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM api_tokens WHERE id = ?1 AND user_id = ?2",
            params![id, user_id],
        )
        .await?
        > 0)
}
