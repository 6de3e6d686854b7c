//! What the relay writes down: a `console_sessions` row per session, and audit-log entries for
//! every open, close and refusal (DESIGN invariant 4). Writing a record never fails the session
//! it records: failures are logged, as in [`crate::audit`]. The rows' SQL is
//! [`crate::store::console`]'s.

use std::net::IpAddr;

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
    /// From the session's opening to its end.
    pub duration_secs: u64,
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
                "duration_secs": totals.duration_secs,
            }),
            client: Some(client),
        },
    )
    .await;
}
