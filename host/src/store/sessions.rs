//! Browser sessions, keyed by the SHA-256 of the cookie value.

use super::users::User;
use super::{Db, StoreError, params};

pub async fn insert(
    db: &impl Db,
    id_hash: &[u8; 32],
    user_id: i64,
    expires_at: i64,
    client: Option<&str>,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, client)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id_hash, user_id, super::now(), expires_at, client],
    )
    .await?;
    Ok(())
}

/// The enabled user holding an unexpired session with this hash.
pub async fn find_user(db: &impl Db, id_hash: &[u8; 32]) -> Result<Option<User>, StoreError> {
    let row = db
        .query_opt(
            "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
            params![id_hash, super::now()],
        )
        .await?;
    match row {
        Some(row) => super::users::get(db, row.get(0)?).await,
        None => Ok(None),
    }
}

pub async fn delete(db: &impl Db, id_hash: &[u8; 32]) -> Result<(), StoreError> {
    db.execute("DELETE FROM sessions WHERE id_hash = ?1", params![id_hash])
        .await?;
    Ok(())
}

/// Ends every session of a user, e.g. when the password changes or the account is disabled.
pub async fn delete_for_user(db: &impl Db, user_id: i64) -> Result<u64, StoreError> {
    db.execute("DELETE FROM sessions WHERE user_id = ?1", params![user_id])
        .await
}

/// Ends every session of a user but the one with `keep_hash`: the one that changed the password.
pub async fn delete_others(
    db: &impl Db,
    user_id: i64,
    keep_hash: &[u8; 32],
) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND id_hash <> ?2",
        params![user_id, keep_hash],
    )
    .await
}

pub async fn purge_expired(db: &impl Db) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1",
        params![super::now()],
    )
    .await
}
