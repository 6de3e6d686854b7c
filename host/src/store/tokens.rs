//! API tokens for provider automation, keyed by the SHA-256 of the token.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::users::User;

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

fn from_row(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: row.get(0)?,
        user_id: row.get(1)?,
        name: row.get(2)?,
        created_at: row.get(3)?,
        last_used_at: row.get(4)?,
    })
}

pub fn insert(
    conn: &Connection,
    user_id: i64,
    name: &str,
    token_hash: &[u8; 32],
) -> rusqlite::Result<ApiToken> {
    conn.query_row(
        &format!(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?1, ?2, ?3, ?4)
             RETURNING {COLUMNS}"
        ),
        params![user_id, name, token_hash.as_slice(), super::now()],
        from_row,
    )
}

/// The enabled user owning the token with this hash, and the token's id, noting the use.
pub fn authenticate_with_id(
    conn: &Connection,
    token_hash: &[u8; 32],
) -> rusqlite::Result<Option<(User, i64)>> {
    let found: Option<(i64, i64)> = conn
        .query_row(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE token_hash = ?1
             AND user_id IN (SELECT id FROM users WHERE NOT disabled) RETURNING user_id, id",
            params![token_hash.as_slice(), super::now()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((user_id, token_id)) = found else {
        return Ok(None);
    };
    Ok(super::users::get(conn, user_id)?.map(|user| (user, token_id)))
}

pub fn list_for_user(conn: &Connection, user_id: i64) -> rusqlite::Result<Vec<ApiToken>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE user_id = ?1 ORDER BY id"
    ))?;
    let rows = statement.query_map([user_id], from_row)?;
    rows.collect()
}

pub fn delete(conn: &Connection, user_id: i64, id: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "DELETE FROM api_tokens WHERE id = ?1 AND user_id = ?2",
        [id, user_id],
    )? > 0)
}
