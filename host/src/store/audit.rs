//! The append-only audit log.

use rusqlite::{Connection, Row, params};
use serde::Serialize;

/// One audit entry to write. `actor` is `user:<id>`, `token:<id>`, `plugin:<name>` or `system`.
pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: serde_json::Value,
    pub client: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub client: Option<String>,
}

pub fn record(conn: &Connection, entry: &Entry<'_>) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail, client)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            super::now(),
            entry.actor,
            entry.action,
            entry.target,
            entry.detail.to_string(),
            entry.client
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let detail: String = row.get(5)?;
    Ok(Record {
        id: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        target: row.get(4)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        client: row.get(6)?,
    })
}

/// The newest entries first, optionally only one action or one family of them: `console`
/// matches `console.open`, `console.refused` and the rest, as `console.open` matches itself.
pub fn recent(
    conn: &Connection,
    action: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<Record>> {
    // substr, not LIKE: a filter's `_` or `%` is text, not a wildcard.
    let mut statement = conn.prepare(
        "SELECT id, at, actor, action, target, detail, client FROM audit_log
         WHERE ?1 IS NULL OR action = ?1 OR substr(action, 1, length(?1) + 1) = ?1 || '.'
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![action, limit], from_row)?;
    rows.collect()
}
