//! What the relay writes down: a `console_sessions` row per session, and audit-log entries for
//! every open, close and refusal (DESIGN invariant 4). Writing a record never fails the session
//! it records: failures are logged, as in [`crate::audit`].

use std::net::IpAddr;

use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::json;

use super::close::CloseReason;
use super::tokens::{ConsoleKind, Grant};
use crate::audit;
use crate::store::Store;

/// A finished or running session as the table holds it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    pub id: i64,
    pub user_id: i64,
    pub service_id: i64,
    pub kind: String,
    pub client: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub bytes_to_vm: i64,
    pub bytes_to_browser: i64,
    pub close_code: Option<i64>,
    pub close_reason: Option<String>,
}

/// Totals of a session when it ends.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub bytes_to_vm: u64,
    pub bytes_to_browser: u64,
}

pub fn insert(
    conn: &Connection,
    grant: Grant,
    client: &str,
    started_at: i64,
) -> rusqlite::Result<i64> {
    conn.query_row(
        "INSERT INTO console_sessions (user_id, service_id, kind, client, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![
            grant.user_id,
            grant.service_id,
            grant.kind.as_str(),
            client,
            started_at
        ],
        |row| row.get(0),
    )
}

pub fn finish(
    conn: &Connection,
    id: i64,
    ended_at: i64,
    totals: Totals,
    reason: &CloseReason,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE console_sessions SET ended_at = ?2, bytes_to_vm = ?3, bytes_to_browser = ?4,
         close_code = ?5, close_reason = ?6 WHERE id = ?1",
        params![
            id,
            ended_at,
            i64::try_from(totals.bytes_to_vm).unwrap_or(i64::MAX),
            i64::try_from(totals.bytes_to_browser).unwrap_or(i64::MAX),
            reason.code(),
            reason.label()
        ],
    )?;
    Ok(())
}

/// Sessions of one service, newest first.
pub fn for_service(conn: &Connection, service_id: i64) -> rusqlite::Result<Vec<SessionRecord>> {
    let mut statement = conn.prepare(
        "SELECT id, user_id, service_id, kind, client, started_at, ended_at, bytes_to_vm,
                bytes_to_browser, close_code, close_reason
         FROM console_sessions WHERE service_id = ?1 ORDER BY id DESC",
    )?;
    let rows = statement.query_map([service_id], |row| {
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
    })?;
    rows.collect()
}

/// Who was refused what, and why: before a session exists (token, origin, ownership, state,
/// limits), there is no session row, only this entry.
pub struct Refusal<'a> {
    /// The user, when known (the caller, or the grant of the token they presented).
    pub user_id: Option<i64>,
    pub service_id: Option<i64>,
    pub kind: Option<ConsoleKind>,
    /// Short stable label, e.g. `replayed_token`, `wrong_origin`, `suspended`.
    pub reason: &'a str,
    pub client: IpAddr,
}

pub async fn audit_refusal(store: &Store, refusal: Refusal<'_>) {
    let actor = refusal
        .user_id
        .map_or_else(|| "anonymous".to_owned(), |id| format!("user:{id}"));
    let target = refusal.service_id.map(|id| format!("service:{id}"));
    let client = refusal.client.to_string();
    tracing::info!(reason = refusal.reason, %actor, "console refused");
    audit::record(
        store,
        audit::Entry {
            actor: &actor,
            action: "console.refused",
            target: target.as_deref(),
            detail: json!({
                "reason": refusal.reason,
                "kind": refusal.kind.map(ConsoleKind::as_str),
            }),
            client: Some(&client),
        },
    )
    .await;
}

pub async fn audit_open(store: &Store, session_id: i64, grant: Grant, client: &str) {
    audit::record(
        store,
        audit::Entry {
            actor: &format!("user:{}", grant.user_id),
            action: "console.open",
            target: Some(&format!("service:{}", grant.service_id)),
            detail: json!({ "session": session_id, "kind": grant.kind.as_str() }),
            client: Some(client),
        },
    )
    .await;
}

pub async fn audit_close(
    store: &Store,
    session_id: i64,
    grant: Grant,
    client: &str,
    totals: Totals,
    reason: &CloseReason,
) {
    audit::record(
        store,
        audit::Entry {
            actor: &format!("user:{}", grant.user_id),
            action: "console.close",
            target: Some(&format!("service:{}", grant.service_id)),
            detail: json!({
                "session": session_id,
                "kind": grant.kind.as_str(),
                "reason": reason.label(),
                "code": reason.code(),
                "detail": reason.detail(),
                "bytes_to_vm": totals.bytes_to_vm,
                "bytes_to_browser": totals.bytes_to_browser,
            }),
            client: Some(client),
        },
    )
    .await;
}
