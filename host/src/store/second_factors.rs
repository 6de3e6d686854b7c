//! Second factors: each account's TOTP secret (sealed), its recovery codes (hashed), and the
//! sign-ins waiting for a second factor. Every check-and-use is one statement, so a code raced
//! from two daemons is accepted once.

use serde::Serialize;

use super::{Db, Row, StoreError, params};

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
    Ok(count_factors(db, user_id).await? > 0)
}

/// How many second factors the account has: its authenticator app and each passkey.
pub async fn count_factors(db: &impl Db, user_id: i64) -> Result<i64, StoreError> {
    db.query_one(
        "SELECT (SELECT count(*) FROM totp_secrets WHERE user_id = ?1 AND confirmed_at IS NOT NULL)
              + (SELECT count(*) FROM passkeys WHERE user_id = ?1)",
        params![user_id],
    )
    .await?
    .get(0)
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

/// Deletes the account's recovery codes once it has no second factor left for them to stand
/// in for: a later factor then brings new ones, and no old code is left to be forgotten.
pub async fn forget_recovery_codes_if_no_factor(
    db: &impl Db,
    user_id: i64,
) -> Result<(), StoreError> {
    if count_factors(db, user_id).await? == 0 {
        db.execute(
            "DELETE FROM recovery_codes WHERE user_id = ?1",
            params![user_id],
        )
        .await?;
    }
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

/// The account of a live challenge, without counting an attempt.
pub async fn challenge_user(db: &impl Db, id_hash: &[u8; 32]) -> Result<Option<i64>, StoreError> {
    let row = db
        .query_opt(
            "SELECT user_id FROM login_challenges WHERE id_hash = ?1 AND expires_at > ?2",
            params![id_hash, super::now()],
        )
        .await?;
    row.map(|row| row.get(0)).transpose()
}

/// Ends a challenge its second factor completed; false if another request already did.
pub async fn take_challenge(db: &impl Db, id_hash: &[u8; 32]) -> Result<bool, StoreError> {
    let taken = db
        .execute(
            "DELETE FROM login_challenges WHERE id_hash = ?1",
            params![id_hash],
        )
        .await?;
    Ok(taken > 0)
}

/// Deletes challenges and passkey registrations that expired; returns how many.
pub async fn purge_expired(db: &impl Db) -> Result<u64, StoreError> {
    let now = super::now();
    let challenges = db
        .execute(
            "DELETE FROM login_challenges WHERE expires_at <= ?1",
            params![now],
        )
        .await?;
    let registrations = db
        .execute(
            "DELETE FROM passkey_registrations WHERE expires_at <= ?1",
            params![now],
        )
        .await?;
    Ok(challenges + registrations)
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PasskeyInfo {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A passkey with webauthn-rs's record of it (JSON).
pub struct StoredPasskey {
    pub info: PasskeyInfo,
    pub passkey: String,
}

fn passkey_from_row(row: &Row) -> Result<StoredPasskey, StoreError> {
    Ok(StoredPasskey {
        info: PasskeyInfo {
            id: row.get(0)?,
            name: row.get(1)?,
            created_at: row.get(2)?,
            last_used_at: row.get(3)?,
        },
        passkey: row.get(4)?,
    })
}

pub async fn passkeys(db: &impl Db, user_id: i64) -> Result<Vec<StoredPasskey>, StoreError> {
    db.query_as(
        "SELECT id, name, created_at, last_used_at, passkey FROM passkeys
         WHERE user_id = ?1 ORDER BY id",
        params![user_id],
        passkey_from_row,
    )
    .await
}

/// A new passkey; a name the account already uses fails with a unique violation.
pub async fn insert_passkey(
    db: &impl Db,
    user_id: i64,
    name: &str,
    credential_id: &str,
    passkey: &str,
) -> Result<PasskeyInfo, StoreError> {
    let row = db
        .query_one(
            "INSERT INTO passkeys (user_id, name, credential_id, passkey, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id, name, created_at, last_used_at, passkey",
            params![user_id, name, credential_id, passkey, super::now()],
        )
        .await?;
    Ok(passkey_from_row(&row)?.info)
}

/// Records a sign-in with the passkey `credential_id`, and its record as it now is (the
/// authenticator's counter moves on).
pub async fn passkey_used(
    db: &impl Db,
    user_id: i64,
    credential_id: &str,
    passkey: &str,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE passkeys SET passkey = ?3, last_used_at = ?4
         WHERE user_id = ?1 AND credential_id = ?2",
        params![user_id, credential_id, passkey, super::now()],
    )
    .await?;
    Ok(())
}

pub async fn delete_passkey(db: &impl Db, user_id: i64, id: i64) -> Result<bool, StoreError> {
    Ok(db
        .execute(
            "DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2",
            params![id, user_id],
        )
        .await?
        > 0)
}

/// Keeps the state of a registration ceremony until `expires_at`, replacing an earlier one.
pub async fn put_registration(
    db: &impl Db,
    user_id: i64,
    name: &str,
    state: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO passkey_registrations (user_id, name, state, expires_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, state = excluded.state,
             expires_at = excluded.expires_at",
        params![user_id, name, state, expires_at],
    )
    .await?;
    Ok(())
}

/// Takes the account's live registration ceremony (its name and state): it can finish once.
pub async fn take_registration(
    db: &impl Db,
    user_id: i64,
) -> Result<Option<(String, String)>, StoreError> {
    let row = db
        .query_opt(
            "DELETE FROM passkey_registrations WHERE user_id = ?1 AND expires_at > ?2
             RETURNING name, state",
            params![user_id, super::now()],
        )
        .await?;
    row.map(|row| Ok((row.get(0)?, row.get(1)?))).transpose()
}

/// Keeps a sign-in's passkey ceremony state with its challenge.
pub async fn set_challenge_passkey(
    db: &impl Db,
    id_hash: &[u8; 32],
    state: &str,
) -> Result<bool, StoreError> {
    let set = db
        .execute(
            "UPDATE login_challenges SET passkey_state = ?2 WHERE id_hash = ?1 AND expires_at > ?3",
            params![id_hash, state, super::now()],
        )
        .await?;
    Ok(set > 0)
}

/// The passkey ceremony state kept with a live challenge.
pub async fn challenge_passkey(
    db: &impl Db,
    id_hash: &[u8; 32],
) -> Result<Option<String>, StoreError> {
    let row = db
        .query_opt(
            "SELECT passkey_state FROM login_challenges WHERE id_hash = ?1 AND expires_at > ?2",
            params![id_hash, super::now()],
        )
        .await?;
    Ok(row
        .map(|row| row.get::<Option<String>>(0))
        .transpose()?
        .flatten())
}
