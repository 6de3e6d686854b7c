//! Console tokens: what lets one browser open one console WebSocket, once.
//!
//! # Why random tokens in the database, not sealed ones
//! A token is 256 random bits (URL-safe base64); the database keeps only its SHA-256, with the
//! user, service and kind it grants and its expiry. Redeeming is one statement,
//! `UPDATE … SET used_at = now WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL
//! AND expires_at > now RETURNING …`, so exactly one redeemer ever wins, on this daemon or on any
//! other daemon behind the same load balancer that shares the database. A sealed (HMAC/AEAD)
//! token would validate without a lookup, but single use needs a shared replay table anyway, and
//! revocation ("this VM was suspended: its outstanding tokens die now") would need a second one;
//! with the row there already, both are a column. The digest makes a leaked database useless for
//! opening consoles, and a plain SHA-256 suffices because the input has 256 bits of entropy.
//!
//! Never touches Proxmox or WebSockets: this is a small grant table and its rules.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::auth::secret_token;

/// Which console a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleKind {
    /// The VM's display, over VNC (RFB).
    Vnc,
    /// The VM's display as a text terminal, over termproxy.
    Term,
}

impl ConsoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vnc => "vnc",
            Self::Term => "term",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "vnc" => Some(Self::Vnc),
            "term" => Some(Self::Term),
            _ => None,
        }
    }
}

/// What a token allows: this user, this service's console of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub user_id: i64,
    pub service_id: i64,
    pub kind: ConsoleKind,
}

/// A freshly minted token. The token itself exists only here and in the caller's answer.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a token opens nothing. Where the token is known, the grant names who tried, for the audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("a console token is required")]
    Missing,
    #[error("unknown console token")]
    Unknown,
    #[error("the console token has expired; request a new one")]
    Expired(Grant),
    #[error("the console token was already used; request a new one")]
    Replayed(Grant),
    #[error("the console token was revoked")]
    Revoked(Grant),
}

impl TokenRefusal {
    /// The audit log's name for this refusal.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Unknown => "unknown_token",
            Self::Expired(_) => "expired_token",
            Self::Replayed(_) => "replayed_token",
            Self::Revoked(_) => "revoked_token",
        }
    }

    pub fn grant(&self) -> Option<Grant> {
        match self {
            Self::Missing | Self::Unknown => None,
            Self::Expired(grant) | Self::Replayed(grant) | Self::Revoked(grant) => Some(*grant),
        }
    }
}

/// Spent and expired tokens are kept this long (seconds), so a late replay is still reported as
/// a replay rather than as an unknown token, then purged.
const KEEP_SPENT_SECS: i64 = 60 * 60;

/// Stores a new token for `grant`, valid for `ttl_secs` from `now`, and purges long-dead ones.
pub fn issue(
    conn: &Connection,
    grant: Grant,
    client: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> rusqlite::Result<IssuedToken> {
    let token = secret_token::generate();
    let expires_at = now + ttl_secs;
    conn.execute(
        "INSERT INTO console_tokens (token_hash, user_id, service_id, kind, client, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            secret_token::digest(&token).as_slice(),
            grant.user_id,
            grant.service_id,
            grant.kind.as_str(),
            client,
            now,
            expires_at
        ],
    )?;
    conn.execute(
        "DELETE FROM console_tokens WHERE expires_at < ?1",
        [now - KEEP_SPENT_SECS],
    )?;
    Ok(IssuedToken { token, expires_at })
}

/// Spends `token` if it is unused, unrevoked and unexpired at `now`: exactly one caller wins.
pub fn redeem(
    conn: &Connection,
    token: &str,
    now: i64,
) -> rusqlite::Result<Result<Grant, TokenRefusal>> {
    let hash = secret_token::digest(token);
    let spent = conn
        .query_row(
            "UPDATE console_tokens SET used_at = ?2
             WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2
             RETURNING user_id, service_id, kind",
            params![hash.as_slice(), now],
            grant_from_row,
        )
        .optional()?;
    if let Some(grant) = spent {
        return Ok(grant.ok_or(TokenRefusal::Unknown));
    }
    why_refused(conn, &hash, now)
}

/// The grant of a token that would still open a console, without spending it. Used to name the
/// user in the audit entry when a request is refused before the token is redeemed.
pub fn peek(conn: &Connection, token: &str, now: i64) -> rusqlite::Result<Option<Grant>> {
    let hash = secret_token::digest(token);
    let found = conn
        .query_row(
            "SELECT user_id, service_id, kind FROM console_tokens
             WHERE token_hash = ?1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?2",
            params![hash.as_slice(), now],
            grant_from_row,
        )
        .optional()?;
    Ok(found.flatten())
}

/// Revokes every outstanding token of a service; returns how many.
pub fn revoke_for_service(conn: &Connection, service_id: i64, now: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE console_tokens SET revoked_at = ?2
         WHERE service_id = ?1 AND used_at IS NULL AND revoked_at IS NULL",
        params![service_id, now],
    )
}

fn why_refused(
    conn: &Connection,
    hash: &[u8; 32],
    now: i64,
) -> rusqlite::Result<Result<Grant, TokenRefusal>> {
    let row = conn
        .query_row(
            "SELECT user_id, service_id, kind, used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at
             FROM console_tokens WHERE token_hash = ?1",
            [hash.as_slice()],
            |row| {
                Ok((
                    grant_from_row(row)?,
                    row.get::<_, bool>(3)?,
                    row.get::<_, bool>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()?;
    let refusal = match row {
        Some((Some(grant), true, _, _)) => TokenRefusal::Replayed(grant),
        Some((Some(grant), _, true, _)) => TokenRefusal::Revoked(grant),
        Some((Some(grant), _, _, expires_at)) if expires_at <= now => TokenRefusal::Expired(grant),
        _ => TokenRefusal::Unknown,
    };
    Ok(Err(refusal))
}

/// `None` for a kind this version does not know (a newer daemon's row).
fn grant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Grant>> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, Connection, Grant) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_connection(&dir.path().join("t.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, username, role, password_hash, created_at, updated_at)
               VALUES (1, 'alice', 'customer', 'x', 0, 0);
             INSERT INTO clusters (name, created_at) VALUES ('lab', 0);",
        )
        .unwrap();
        let web = crate::store::services::ExistingVm {
            owner_id: 1,
            name: "web",
            cluster: "lab",
            node: "pve1",
            vmid: 101,
            plan: None,
            stopped: false,
        };
        assert_eq!(
            crate::store::services::insert_active(&conn, &web)
                .unwrap()
                .id,
            1
        );
        let grant = Grant {
            user_id: 1,
            service_id: 1,
            kind: ConsoleKind::Vnc,
        };
        (dir, conn, grant)
    }

    #[test]
    fn a_token_opens_once_and_a_replay_is_named_as_such() {
        let (_dir, conn, grant) = database();
        let issued = issue(&conn, grant, None, 1000, 20).unwrap();
        assert_eq!(issued.expires_at, 1020);
        assert_eq!(redeem(&conn, &issued.token, 1001).unwrap(), Ok(grant));
        assert_eq!(
            redeem(&conn, &issued.token, 1002).unwrap(),
            Err(TokenRefusal::Replayed(grant))
        );
    }

    #[test]
    fn an_expired_token_is_refused_as_expired() {
        let (_dir, conn, grant) = database();
        let issued = issue(&conn, grant, None, 1000, 20).unwrap();
        assert_eq!(
            redeem(&conn, &issued.token, 1020).unwrap(),
            Err(TokenRefusal::Expired(grant))
        );
    }

    #[test]
    fn revoked_tokens_stop_working_and_unknown_ones_say_so() {
        let (_dir, conn, grant) = database();
        let issued = issue(&conn, grant, None, 1000, 20).unwrap();
        assert_eq!(peek(&conn, &issued.token, 1001).unwrap(), Some(grant));
        assert_eq!(
            revoke_for_service(&conn, grant.service_id, 1001).unwrap(),
            1
        );
        assert_eq!(peek(&conn, &issued.token, 1001).unwrap(), None);
        assert_eq!(
            redeem(&conn, &issued.token, 1002).unwrap(),
            Err(TokenRefusal::Revoked(grant))
        );
        assert_eq!(
            redeem(&conn, "not-a-token", 1002).unwrap(),
            Err(TokenRefusal::Unknown)
        );
    }

    #[test]
    fn tokens_are_stored_only_as_digests() {
        let (_dir, conn, grant) = database();
        let issued = issue(&conn, grant, None, 1000, 20).unwrap();
        let stored: Vec<u8> = conn
            .query_row("SELECT token_hash FROM console_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, secret_token::digest(&issued.token));
        assert!(!format!("{issued:?}").contains(&issued.token));
    }
}
