//! Second factors: each account's TOTP secret (sealed), its recovery codes (hashed), and the
//! sign-ins waiting for a second factor. Every check-and-use is one statement, so a code raced
//! from two daemons is accepted once.

use super::{Db, StoreError, params};

/// An account's TOTP secret as stored: sealed, and whether enrolment finished.
pub struct TotpRow {
    pub sealed_secret: String,
    pub confirmed: bool,
}

pub async fn totp(db: &impl Db, user_id: i64) -> Result<Option<TotpRow>, StoreError> {
    let row = db
        .query_opt(
            "SELECT secret, CASE WHEN confirmed_at IS NULL THEN 0 ELSE 1 END
             FROM totp_secrets WHERE user_id = ?1",
            params![user_id],
        )
        .await?;
    row.map(|row| {
        Ok(TotpRow {
            sealed_secret: row.get(0)?,
            confirmed: row.get::<bool>(1)?,
        })
    })
    .transpose()
}

/// Starts (or starts again) enrolling a secret; a confirmed one is left alone (false).
pub async fn begin_totp(db: &impl Db, user_id: i64, sealed: &str) -> Result<bool, StoreError> {
    let changed = db
        .execute(
            "INSERT INTO totp_secrets (user_id, secret, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret,
                 created_at = excluded.created_at
             WHERE totp_secrets.confirmed_at IS NULL",
            params![user_id, sealed, super::now()],
        )
        .await?;
    Ok(changed > 0)
}

/// Accepts a code of time step `step` if no code of that step or a later one was accepted
/// before; `confirming` also finishes enrolment (and then only an unconfirmed secret matches).
pub async fn accept_totp_step(
    db: &impl Db,
    user_id: i64,
    step: i64,
    confirming: bool,
) -> Result<bool, StoreError> {
    let changed = if confirming {
        db.execute(
            "UPDATE totp_secrets SET last_step = ?2, confirmed_at = ?3
             WHERE user_id = ?1 AND confirmed_at IS NULL AND last_step < ?2",
            params![user_id, step, super::now()],
        )
        .await?
    } else {
        db.execute(
            "UPDATE totp_secrets SET last_step = ?2
             WHERE user_id = ?1 AND confirmed_at IS NOT NULL AND last_step < ?2",
            params![user_id, step],
        )
        .await?
    };
    Ok(changed > 0)
}

pub async fn delete_totp(db: &impl Db, user_id: i64) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM totp_secrets WHERE user_id = ?1",
            params![user_id],
        )
        .await?
        > 0)
}

/// Whether the account has a second factor that guards its sign-in.
pub async fn has_factor(db: &impl Db, user_id: i64) -> Result<bool, StoreError> {
    let row = db
        .query_opt(
            "SELECT 1 FROM totp_secrets WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
            params![user_id],
        )
        .await?;
    Ok(row.is_some())
}

/// Replaces the account's recovery codes with these (their hashes).
pub async fn replace_recovery_codes(
    db: &impl Db,
    user_id: i64,
    hashes: &[[u8; 32]],
) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        params![user_id],
    )
    .await?;
    for hash in hashes {
        db.execute(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)",
            params![user_id, hash],
        )
        .await?;
    }
    Ok(())
}

/// Spends the unused recovery code with this hash; false if there is none.
pub async fn use_recovery_code(
    db: &impl Db,
    user_id: i64,
    hash: &[u8; 32],
) -> Result<bool, StoreError> {
    let used = db
        .execute(
            "UPDATE recovery_codes SET used_at = ?3
             WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
            params![user_id, hash, super::now()],
        )
        .await?;
    Ok(used > 0)
}

pub async fn recovery_codes_left(db: &impl Db, user_id: i64) -> Result<i64, StoreError> {
    db.query_one(
        "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
        params![user_id],
    )
    .await?
    .get(0)
}

pub async fn delete_recovery_codes(db: &impl Db, user_id: i64) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM recovery_codes WHERE user_id = ?1",
        params![user_id],
    )
    .await?;
    Ok(())
}

pub async fn insert_challenge(
    db: &impl Db,
    id_hash: &[u8; 32],
    user_id: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO login_challenges (id_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
        params![id_hash, user_id, expires_at],
    )
    .await?;
    Ok(())
}

/// The account of a live challenge, counting this attempt at it; a challenge is good for
/// `max_attempts` attempts, after which the sign-in must start again with the password.
pub async fn attempt_challenge(
    db: &impl Db,
    id_hash: &[u8; 32],
    max_attempts: i64,
) -> Result<Option<i64>, StoreError> {
    let row = db
        .query_opt(
            "UPDATE login_challenges SET attempts = attempts + 1
             WHERE id_hash = ?1 AND expires_at > ?2 AND attempts < ?3 RETURNING user_id",
            params![id_hash, super::now(), max_attempts],
        )
        .await?;
    row.map(|row| row.get(0)).transpose()
}

pub async fn delete_challenge(db: &impl Db, id_hash: &[u8; 32]) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM login_challenges WHERE id_hash = ?1 OR expires_at <= ?2",
        params![id_hash, super::now()],
    )
    .await?;
    Ok(())
}
