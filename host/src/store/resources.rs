//! What a service owns outside its VM (tunnels, DNS records, cloud-init snippets and seeds),
//! recorded the moment each exists so teardown can find all of it.

use rusqlite::{Connection, params};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Tunnel,
    DnsRecord,
    Snippet,
    Seed,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Tunnel => "tunnel",
            ResourceKind::DnsRecord => "dns_record",
            ResourceKind::Snippet => "snippet",
            ResourceKind::Seed => "seed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub service_id: i64,
    pub kind: ResourceKind,
    /// The plugin or backend that created it and must remove it.
    pub provider: String,
    pub external_id: String,
    pub detail: serde_json::Value,
}

/// Records a resource; recording the same one twice is harmless (steps may run again).
pub fn record(conn: &Connection, resource: &Resource) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO service_resources (service_id, kind, provider, external_id, detail, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (service_id, kind, external_id) DO UPDATE SET detail = ?5",
        params![
            resource.service_id,
            resource.kind.as_str(),
            resource.provider,
            resource.external_id,
            resource.detail.to_string(),
            super::now()
        ],
    )?;
    Ok(())
}

/// The service's resources of `kind`, newest first (the order teardown removes them in).
pub fn of_kind(
    conn: &Connection,
    service_id: i64,
    kind: ResourceKind,
) -> rusqlite::Result<Vec<Resource>> {
    let mut statement = conn.prepare(
        "SELECT provider, external_id, detail FROM service_resources
         WHERE service_id = ?1 AND kind = ?2 ORDER BY created_at DESC, rowid DESC",
    )?;
    let rows = statement.query_map(params![service_id, kind.as_str()], |row| {
        let detail: String = row.get(2)?;
        Ok(Resource {
            service_id,
            kind,
            provider: row.get(0)?,
            external_id: row.get(1)?,
            detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}

pub fn forget(
    conn: &Connection,
    service_id: i64,
    kind: ResourceKind,
    external_id: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM service_resources WHERE service_id = ?1 AND kind = ?2 AND external_id = ?3",
        params![service_id, kind.as_str(), external_id],
    )?;
    Ok(())
}

/// The resource of `kind` with this external id, whichever service holds it.
pub fn find(
    conn: &Connection,
    kind: ResourceKind,
    external_id: &str,
) -> rusqlite::Result<Option<Resource>> {
    use rusqlite::OptionalExtension as _;
    conn.query_row(
        "SELECT service_id, provider, detail FROM service_resources WHERE kind = ?1 AND external_id = ?2",
        params![kind.as_str(), external_id],
        |row| {
            let detail: String = row.get(2)?;
            Ok(Resource {
                service_id: row.get(0)?,
                kind,
                provider: row.get(1)?,
                external_id: external_id.to_owned(),
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
        },
    )
    .optional()
}
