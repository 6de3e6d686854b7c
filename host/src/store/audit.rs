//! The append-only audit log.

use serde::Serialize;

use super::{Db, Row, StoreError, params};

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

pub async fn record(db: &impl Db, entry: &Entry<'_>) -> Result<i64, StoreError> {
    db.query_one(
        "INSERT INTO audit_log (at, actor, action, target, detail, client)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        params![
            super::now(),
            entry.actor,
            entry.action,
            entry.target,
            entry.detail.to_string(),
            entry.client
        ],
    )
    .await?
    .get(0)
}

fn from_row(row: &Row) -> Result<Record, StoreError> {
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
pub async fn recent(
    db: &impl Db,
    action: Option<&str>,
    limit: u32,
) -> Result<Vec<Record>, StoreError> {
    // substr, not LIKE: a filter's `_` or `%` is text, not a wildcard.
    db.query_as(
        "SELECT id, at, actor, action, target, detail, client FROM audit_log
         WHERE ?1 IS NULL OR action = ?1 OR substr(action, 1, length(?1) + 1) = ?1 || '.'
         ORDER BY id DESC LIMIT ?2",
        params![action, limit],
        from_row,
    )
    .await
}
