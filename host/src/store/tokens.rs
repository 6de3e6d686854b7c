//! API tokens for provider automation, keyed by the SHA-256 of the token.

use serde::Serialize;

use super::users::User;
use super::{Db, Row, StoreError, params};
use crate::auth::Scopes;

/// A token's metadata; the token itself is shown once at creation and never stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    #[schema(value_type = Vec<crate::auth::Scope>)]
    pub scopes: Scopes,
    pub created_at: i64,
    /// Unix seconds after which the token is refused; `None` never expires.
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// A token to create, for the account `user_id`.
pub struct NewToken<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
}

/// What a presented token turned out to be.
pub enum Presented {
    Valid { user: User, token: ApiToken },
    Expired,
    Unknown,
}

const COLUMNS: &str = "id, user_id, name, scopes, created_at, expires_at, last_used_at";

fn from_row(row: &Row) -> Result<ApiToken, StoreError> {
    let scopes: String = row.get(3)?;
    Ok(ApiToken {
        id: row.get(0)?,
        user_id: row.get(1)?,
        name: row.get(2)?,
        scopes: Scopes::from_text(&scopes)
            .map_err(|reason| StoreError::Decode { column: 3, reason })?,
        created_at: row.get(4)?,
        expires_at: row.get(5)?,
        last_used_at: row.get(6)?,
    })
}

/// A new token; a name the user already has fails with a unique violation.
pub async fn insert(
    db: &impl Db,
    token: &NewToken<'_>,
    token_hash: &[u8; 32],
) -> Result<ApiToken, StoreError> {
    let row = db
        .query_one(
            &format!(
                "INSERT INTO api_tokens (user_id, name, token_hash, scopes, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {COLUMNS}"
            ),
            params![
                token.user_id,
                token.name,
                token_hash,
                token.scopes.to_text(),
                token.expires_at,
                super::now()
            ],
        )
        .await?;
    from_row(&row)
}

/// The token with this hash and its enabled owner, noting the use; an expired token is told
/// apart so its holder learns why it stopped working, and its use is not noted.
pub async fn authenticate(db: &impl Db, token_hash: &[u8; 32]) -> Result<Presented, StoreError> {
    let now = super::now();
    let found = db
        .query_opt(
            &format!(
                "UPDATE api_tokens SET last_used_at = ?2 WHERE token_hash = ?1
                 AND (expires_at IS NULL OR expires_at > ?2)
                 AND user_id IN (SELECT id FROM users WHERE disabled = 0) RETURNING {COLUMNS}"
            ),
            params![token_hash, now],
        )
        .await?;
    let Some(found) = found else {
        let expired = db
            .query_opt(
                "SELECT 1 FROM api_tokens WHERE token_hash = ?1 AND expires_at <= ?2",
                params![token_hash, now],
            )
            .await?;
        return Ok(if expired.is_some() {
            Presented::Expired
        } else {
            Presented::Unknown
        });
    };
    let token = from_row(&found)?;
    Ok(match super::users::get(db, token.user_id).await? {
        Some(user) => Presented::Valid { user, token },
        None => Presented::Unknown,
    })
}

pub async fn list_for_user(db: &impl Db, user_id: i64) -> Result<Vec<ApiToken>, StoreError> {
    db.query_as(
        &format!("SELECT {COLUMNS} FROM api_tokens WHERE user_id = ?1 ORDER BY id"),
        params![user_id],
        from_row,
    )
    .await
}

pub async fn get(db: &impl Db, user_id: i64, id: i64) -> Result<Option<ApiToken>, StoreError> {
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1 AND user_id = ?2"),
            params![id, user_id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
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
