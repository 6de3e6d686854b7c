//! What a service owns outside its VM (tunnels, DNS records, cloud-init snippets and seeds),
//! recorded the moment each exists so teardown can find all of it.

use serde::Serialize;

use super::{Db, Row, StoreError, params};

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
pub async fn record(db: &impl Db, resource: &Resource) -> Result<(), StoreError> {
    db.execute(
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
    )
    .await?;
    Ok(())
}

fn detail(row: &Row, column: usize) -> Result<serde_json::Value, StoreError> {
    let text: String = row.get(column)?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// The service's resources of `kind`, newest first (the order teardown removes them in).
pub async fn of_kind(
    db: &impl Db,
    service_id: i64,
    kind: ResourceKind,
) -> Result<Vec<Resource>, StoreError> {
    // `rowid` orders resources recorded within one second; PostgreSQL's table has the column too.
    db.query_as(
        "SELECT provider, external_id, detail FROM service_resources
         WHERE service_id = ?1 AND kind = ?2 ORDER BY created_at DESC, rowid DESC",
        params![service_id, kind.as_str()],
        |row| {
            Ok(Resource {
                service_id,
                kind,
                provider: row.get(0)?,
                external_id: row.get(1)?,
                detail: detail(row, 2)?,
            })
        },
    )
    .await
}

pub async fn forget(
    db: &impl Db,
    service_id: i64,
    kind: ResourceKind,
    external_id: &str,
) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM service_resources WHERE service_id = ?1 AND kind = ?2 AND external_id = ?3",
        params![service_id, kind.as_str(), external_id],
    )
    .await?;
    Ok(())
}

/// The resource of `kind` with this external id, whichever service holds it.
pub async fn find(
    db: &impl Db,
    kind: ResourceKind,
    external_id: &str,
) -> Result<Option<Resource>, StoreError> {
    let row = db
        .query_opt(
            "SELECT service_id, provider, detail FROM service_resources
             WHERE kind = ?1 AND external_id = ?2",
            params![kind.as_str(), external_id],
        )
        .await?;
    row.map(|row| {
        Ok(Resource {
            service_id: row.get(0)?,
            kind,
            provider: row.get(1)?,
            external_id: external_id.to_owned(),
            detail: detail(&row, 2)?,
        })
    })
    .transpose()
}
