//! Browser sessions, keyed by the SHA-256 of the cookie value.

use rusqlite::{Connection, OptionalExtension, params};

use super::users::User;

pub fn insert(
    conn: &Connection,
    id_hash: &[u8; 32],
    user_id: i64,
    expires_at: i64,
    client: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, client)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id_hash.as_slice(),
            user_id,
            super::now(),
            expires_at,
            client
        ],
    )?;
    Ok(())
}

/// The enabled user holding an unexpired session with this hash.
pub fn find_user(conn: &Connection, id_hash: &[u8; 32]) -> rusqlite::Result<Option<User>> {
    let user_id: Option<i64> = conn
        .query_row(
            "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND NOT u.disabled",
            params![id_hash.as_slice(), super::now()],
            |row| row.get(0),
        )
        .optional()?;
    match user_id {
        Some(id) => super::users::get(conn, id),
        None => Ok(None),
    }
}

pub fn delete(conn: &Connection, id_hash: &[u8; 32]) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE id_hash = ?1",
        [id_hash.as_slice()],
    )?;
    Ok(())
}

/// Ends every session of a user, e.g. when the password changes or the account is disabled.
pub fn delete_for_user(conn: &Connection, user_id: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])
}

pub fn purge_expired(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1",
        [super::now()],
    )
}
