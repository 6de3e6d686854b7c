//! The console relay's tables: single-use console tokens (`console_tokens`, kept by their
//! SHA-256 only) and a record of every console session (`console_sessions`); and the states of
//! the services whose consoles a daemon relays, which its watcher polls.
//!
//! The rules (minting, hashing, what a refusal means) are [`crate::console`]'s; this is their SQL.

use std::collections::BTreeSet;

use super::{Db, Dialect, Row, StoreError, params};
use crate::console::records::{SessionRecord, Totals};
use crate::console::{
    CapacityRefusal, CloseReason, ConsoleKind, Grant, LiveSessionView, TokenRefusal,
};
use crate::service_state::ServiceState;

/// Stores a new token, by its digest, for `grant` until `expires_at`.
pub async fn insert_token(
    db: &impl Db,
    token_hash: &[u8; 32],
    grant: Grant,
    client: Option<&str>,
    created_at: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO console_tokens (token_hash, user_id, service_id, kind, client, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token_hash,
            grant.user_id,
            grant.service_id,
            grant.kind.as_str(),
            client,
            created_at,
            expires_at
        ],
    )
    .await?;
    Ok(())
}

/// Deletes the tokens, spent or not, that expired before `expired_before`; returns how many.
pub async fn purge_tokens(db: &impl Db, expired_before: i64) -> Result<u64, StoreError> {
    db.execute(
        "DELETE FROM console_tokens WHERE expires_at < ?1",
        params![expired_before],
    )
    .await
}

/// Spends the token with digest `token_hash` if it is unused, unrevoked and unexpired at `now`:
/// exactly one caller wins. The spending is a single `UPDATE … RETURNING` whose `WHERE` checks
/// `used_at IS NULL`, so of two concurrent redeemers (on this daemon, or on another sharing the
/// database) the second finds the row already spent: on PostgreSQL it waits for the first's row
/// lock and then evaluates its condition against the updated row. Do not split it into a
/// `SELECT` and an `UPDATE`.
pub async fn redeem_token(
    db: &impl Db,
    token_hash: &[u8; 32],
    now: i64,
) -> Result<Result<Grant, TokenRefusal>, StoreError> {
    let spent = db
        .query_opt(
            "UPDATE console_tokens SET used_at = ?2
             WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2
             RETURNING user_id, service_id, kind",
            params![token_hash, now],
        )
        .await?;
    if let Some(row) = spent {
        return Ok(grant_from_row(&row)?.ok_or(TokenRefusal::Unknown));
    }
    why_refused(db, token_hash, now).await
}

/// Why the token with digest `token_hash` could not be spent at `now`.
async fn why_refused(
    db: &impl Db,
    token_hash: &[u8; 32],
    now: i64,
) -> Result<Result<Grant, TokenRefusal>, StoreError> {
    // `used_at` and `revoked_at` themselves rather than `… IS NOT NULL`: that is a boolean in
    // PostgreSQL, not an integer.
    let row = db
        .query_opt(
            "SELECT user_id, service_id, kind, used_at, revoked_at, expires_at
             FROM console_tokens WHERE token_hash = ?1",
            params![token_hash],
        )
        .await?;
    let row = match &row {
        Some(row) => Some((
            grant_from_row(row)?,
            row.get::<Option<i64>>(3)?.is_some(),
            row.get::<Option<i64>>(4)?.is_some(),
            row.get::<i64>(5)?,
        )),
        None => None,
    };
    let refusal = match row {
        Some((Some(grant), true, _, _)) => TokenRefusal::Replayed(grant),
        Some((Some(grant), _, true, _)) => TokenRefusal::Revoked(grant),
        Some((Some(grant), _, _, expires_at)) if expires_at <= now => TokenRefusal::Expired(grant),
        _ => TokenRefusal::Unknown,
    };
    Ok(Err(refusal))
}

/// The grant of the token with digest `token_hash` if it would still open a console at `now`,
/// without spending it.
pub async fn live_token(
    db: &impl Db,
    token_hash: &[u8; 32],
    now: i64,
) -> Result<Option<Grant>, StoreError> {
    let found = db
        .query_opt(
            "SELECT user_id, service_id, kind FROM console_tokens
             WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2",
            params![token_hash, now],
        )
        .await?;
    Ok(found.as_ref().map(grant_from_row).transpose()?.flatten())
}

/// Revokes every outstanding token of a service at `now`; returns how many.
pub async fn revoke_tokens_for_service(
    db: &impl Db,
    service_id: i64,
    now: i64,
) -> Result<u64, StoreError> {
    db.execute(
        "UPDATE console_tokens SET revoked_at = ?2
         WHERE service_id = ?1 AND used_at IS NULL AND revoked_at IS NULL",
        params![service_id, now],
    )
    .await
}

/// `None` for a kind this version does not know (a newer daemon's row).
fn grant_from_row(row: &Row) -> Result<Option<Grant>, StoreError> {
    let kind: String = row.get(2)?;
    let Some(kind) = ConsoleKind::parse(&kind) else {
        return Ok(None);
    };
    Ok(Some(Grant {
        user_id: row.get(0)?,
        service_id: row.get(1)?,
        kind,
    }))
}

/// The session caps, as the relay's limits give them.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub per_user: usize,
    pub total: usize,
}

/// Whether `user_id` may open one more session under `caps`, counting the live sessions of
/// every daemon sharing the database.
pub async fn room_for(
    db: &impl Db,
    user_id: i64,
    caps: Caps,
) -> Result<Result<(), CapacityRefusal>, StoreError> {
    let row = db
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE user_id = ?1) FROM console_sessions
             WHERE ended_at IS NULL AND alive_until > unixepoch()",
            params![user_id],
        )
        .await?;
    let count = |n: usize| -> Result<usize, StoreError> {
        Ok(usize::try_from(row.get::<i64>(n)?).unwrap_or(0))
    };
    Ok(if count(0)? >= caps.total {
        Err(CapacityRefusal::Total(caps.total))
    } else if count(1)? >= caps.per_user {
        Err(CapacityRefusal::PerUser(caps.per_user))
    } else {
        Ok(())
    })
}

/// Records a session that starts if it fits under `caps`, alive for `alive_secs`; returns its
/// row id. Run it in a transaction: the count and the insert must see the same sessions, which
/// on PostgreSQL's serializable isolation means two daemons admitting the last place at once
/// cannot both succeed.
pub async fn admit_session(
    db: &impl Db,
    grant: Grant,
    client: &str,
    caps: Caps,
    alive_secs: i64,
) -> Result<Result<i64, CapacityRefusal>, StoreError> {
    if let Err(full) = room_for(db, grant.user_id, caps).await? {
        return Ok(Err(full));
    }
    let id = db
        .query_one(
            "INSERT INTO console_sessions (user_id, service_id, kind, client, started_at, alive_until)
             VALUES (?1, ?2, ?3, ?4, ?5, unixepoch() + ?6) RETURNING id",
            params![
                grant.user_id,
                grant.service_id,
                grant.kind.as_str(),
                client,
                super::now(),
                alive_secs
            ],
        )
        .await?
        .get(0)?;
    Ok(Ok(id))
}

/// A live session's byte counts, as its daemon last saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Relayed {
    pub id: i64,
    pub bytes_to_vm: u64,
    pub bytes_to_browser: u64,
}

/// Keeps the live sessions `relayed` counting for `alive_secs` more and records their byte
/// counts; returns the ids of those an operator asked (on any daemon) to close.
pub async fn keep_alive(
    db: &impl Db,
    relayed: &[Relayed],
    alive_secs: i64,
) -> Result<Vec<i64>, StoreError> {
    let triples: Vec<[i64; 3]> = relayed
        .iter()
        .map(|r| {
            [
                r.id,
                saturating(r.bytes_to_vm),
                saturating(r.bytes_to_browser),
            ]
        })
        .collect();
    let list = super::json_text(&triples)?;
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "UPDATE console_sessions SET alive_until = unixepoch() + ?2,
                 bytes_to_vm = json_extract(j.value, '$[1]'),
                 bytes_to_browser = json_extract(j.value, '$[2]')
             FROM json_each(?1) AS j
             WHERE console_sessions.id = json_extract(j.value, '$[0]') AND ended_at IS NULL
             RETURNING console_sessions.id, close_requested"
        }
        Dialect::Postgres => {
            "UPDATE console_sessions SET alive_until = unixepoch() + ?2,
                 bytes_to_vm = CAST(j.value->>1 AS BIGINT),
                 bytes_to_browser = CAST(j.value->>2 AS BIGINT)
             FROM json_array_elements(CAST(CAST(?1 AS TEXT) AS JSON)) AS j(value)
             WHERE console_sessions.id = CAST(j.value->>0 AS BIGINT) AND ended_at IS NULL
             RETURNING console_sessions.id, close_requested"
        }
    };
    let renewed = db
        .query_as(sql, params![list, alive_secs], |row| {
            Ok((row.get::<i64>(0)?, row.get::<i64>(1)? != 0))
        })
        .await?;
    Ok(renewed
        .into_iter()
        .filter_map(|(id, close)| close.then_some(id))
        .collect())
}

/// Asks the daemon relaying live session `id` to close it; false if no such session is live.
pub async fn request_close(db: &impl Db, id: i64) -> Result<bool, StoreError> {
    let changed = db
        .execute(
            "UPDATE console_sessions SET close_requested = 1
             WHERE id = ?1 AND ended_at IS NULL AND alive_until > unixepoch()",
            params![id],
        )
        .await?;
    Ok(changed > 0)
}

/// The live sessions of every daemon, oldest first.
pub async fn live_sessions(db: &impl Db) -> Result<Vec<LiveSessionView>, StoreError> {
    db.query_as(
        "SELECT id, user_id, service_id, kind, started_at, coalesce(bytes_to_vm, 0),
                coalesce(bytes_to_browser, 0)
         FROM console_sessions WHERE ended_at IS NULL AND alive_until > unixepoch() ORDER BY id",
        params![],
        |row| {
            let kind: String = row.get(3)?;
            Ok(LiveSessionView {
                id: row.get(0)?,
                user_id: row.get(1)?,
                service_id: row.get(2)?,
                kind: ConsoleKind::parse(&kind).ok_or_else(|| StoreError::Decode {
                    column: 3,
                    reason: format!("unknown console kind {kind:?}"),
                })?,
                started_at: row.get(4)?,
                bytes_to_vm: u64::try_from(row.get::<i64>(5)?).unwrap_or(0),
                bytes_to_browser: u64::try_from(row.get::<i64>(6)?).unwrap_or(0),
            })
        },
    )
    .await
}

fn saturating(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// Removes the record of an admitted session that never opened (its upgrade failed, or a check
/// after admission refused it): it was no session.
pub async fn discard_session(db: &impl Db, id: i64) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM console_sessions WHERE id = ?1 AND ended_at IS NULL",
        params![id],
    )
    .await?;
    Ok(())
}

/// Records how a session ended, with its totals (byte counts beyond `i64::MAX` are kept as
/// that).
pub async fn finish_session(
    db: &impl Db,
    id: i64,
    ended_at: i64,
    totals: Totals,
    reason: &CloseReason,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE console_sessions SET ended_at = ?2, bytes_to_vm = ?3, bytes_to_browser = ?4,
         close_code = ?5, close_reason = ?6 WHERE id = ?1",
        params![
            id,
            ended_at,
            saturating(totals.bytes_to_vm),
            saturating(totals.bytes_to_browser),
            reason.code(),
            reason.label()
        ],
    )
    .await?;
    Ok(())
}

/// Sessions of one service, newest first.
pub async fn sessions_for_service(
    db: &impl Db,
    service_id: i64,
) -> Result<Vec<SessionRecord>, StoreError> {
    db.query_as(
        "SELECT id, user_id, service_id, kind, client, started_at, ended_at, bytes_to_vm,
                bytes_to_browser, close_code, close_reason
         FROM console_sessions WHERE service_id = ?1 ORDER BY id DESC",
        params![service_id],
        |row| {
            Ok(SessionRecord {
                id: row.get(0)?,
                user_id: row.get(1)?,
                service_id: row.get(2)?,
                kind: row.get(3)?,
                client: row.get(4)?,
                started_at: row.get(5)?,
                ended_at: row.get(6)?,
                bytes_to_vm: row.get(7)?,
                bytes_to_browser: row.get(8)?,
                close_code: row.get(9)?,
                close_reason: row.get(10)?,
            })
        },
    )
    .await
}

/// The states of those of `services` that exist, by id. One statement whatever the number of
/// services: their ids travel as one JSON array, which each engine unpacks its own way.
pub async fn service_states(
    db: &impl Db,
    services: &BTreeSet<i64>,
) -> Result<Vec<(i64, ServiceState)>, StoreError> {
    let ids = super::json_text(services)?;
    let sql = match db.dialect() {
        Dialect::Sqlite => {
            "SELECT id, state FROM services WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id"
        }
        // The parameter is cast to text first, so that it binds as the text it is.
        Dialect::Postgres => {
            "SELECT id, state FROM services
             WHERE id IN (SELECT CAST(value AS BIGINT)
                          FROM json_array_elements_text(CAST(CAST(?1 AS TEXT) AS JSON)))
             ORDER BY id"
        }
    };
    db.query_as(sql, params![ids], |row| Ok((row.get(0)?, row.get(1)?)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both_backends;

    const CAPS: Caps = Caps {
        per_user: 1,
        total: 10,
    };

    fn grant(user_id: i64) -> Grant {
        Grant {
            user_id,
            service_id: 10,
            kind: ConsoleKind::Term,
        }
    }

    on_both_backends! {
        async fn a_session_whose_daemon_stopped_renewing_it_stops_counting(store: Store) -> anyhow::Result<()> {
            let alive = admit_session(&store, grant(1), "192.0.2.1", CAPS, 60).await??;
            let lapsing = admit_session(&store, grant(2), "192.0.2.1", CAPS, 1).await??;
            assert_eq!(
                room_for(&store, 1, CAPS).await?,
                Err(CapacityRefusal::PerUser(1))
            );
            // Whole seconds in the database's clock: two of them pass any `alive_until` of 1 s.
            tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
            let relayed = Relayed { id: alive, bytes_to_vm: 5, bytes_to_browser: 7 };
            assert_eq!(keep_alive(&store, &[relayed], 60).await?, Vec::<i64>::new());
            assert_eq!(
                room_for(&store, 1, CAPS).await?,
                Err(CapacityRefusal::PerUser(1)),
                "renewed"
            );
            assert_eq!(room_for(&store, 2, CAPS).await?, Ok(()), "lapsed");
            let live = live_sessions(&store).await?;
            assert_eq!(live.len(), 1);
            assert_eq!((live[0].id, live[0].bytes_to_vm, live[0].bytes_to_browser), (alive, 5, 7));
            assert!(!request_close(&store, lapsing).await?, "a lapsed session is not live");
            assert!(request_close(&store, alive).await?);
            let relayed = Relayed { id: alive, bytes_to_vm: 6, bytes_to_browser: 8 };
            assert_eq!(keep_alive(&store, &[relayed], 60).await?, [alive]);
            Ok(())
        }
    }
}
