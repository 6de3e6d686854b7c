//! The clusters configured, the nodes each last reported, and when: what an operator can still see of a cluster
//! that stopped answering, and since when a node has been down.

use std::collections::HashMap;

use serde::Serialize;

use super::{Db, Store, StoreError, params};

/// A node as last reported by its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KnownNode {
    pub cluster: String,
    pub node: String,
    /// The status in that report: `online`, `offline`, `unknown`.
    pub status: String,
    /// Unix seconds of the last report that listed the node.
    pub last_seen: i64,
    /// Unix seconds of the last report that had it online; `None` if none ever did.
    pub online_at: Option<i64>,
}

/// Gives each configured cluster its row, so services can reference it.
pub async fn register_clusters(store: &Store, names: &[&str]) -> Result<(), StoreError> {
    store
        .transaction(|tx| async move {
            for name in names {
                tx.execute(
                    "INSERT INTO clusters (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![name, super::now()],
                )
                .await?;
            }
            Ok(())
        })
        .await
}

/// Records what clusters answered: for each cluster, the `(node, status)` pairs it listed now.
pub async fn record(
    store: &Store,
    answers: &HashMap<String, Vec<(String, String)>>,
) -> Result<(), StoreError> {
    let now = super::now();
    store
        .transaction(|tx| async move {
            for (cluster, nodes) in answers {
                for (node, status) in nodes {
                    let online_at = (status == "online").then_some(now);
                    tx.execute(
                        "INSERT INTO nodes (cluster, name, status, last_seen, online_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (cluster, name) DO UPDATE SET status = ?3, last_seen = ?4,
                             online_at = coalesce(?5, nodes.online_at)",
                        params![cluster, node, status, now, online_at],
                    )
                    .await?;
                }
            }
            Ok(())
        })
        .await
}

/// Every node ever reported, by cluster and name.
pub async fn known(db: &impl Db) -> Result<Vec<KnownNode>, StoreError> {
    db.query_as(
        "SELECT cluster, name, status, last_seen, online_at FROM nodes ORDER BY cluster, name",
        params![],
        |row| {
            Ok(KnownNode {
                cluster: row.get(0)?,
                node: row.get(1)?,
                status: row.get(2)?,
                last_seen: row.get(3)?,
                online_at: row.get(4)?,
            })
        },
    )
    .await
}
