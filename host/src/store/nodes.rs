//! The nodes each cluster last reported, and when: what an operator can still see of a cluster
//! that stopped answering, and since when a node has been down.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::Serialize;

/// A node as last reported by its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Records what clusters answered: for each cluster, the `(node, status)` pairs it listed now.
pub fn record(
    conn: &Connection,
    answers: &HashMap<String, Vec<(String, String)>>,
) -> rusqlite::Result<()> {
    let now = super::now();
    let tx = conn.unchecked_transaction()?;
    for (cluster, nodes) in answers {
        for (node, status) in nodes {
            let online_at = (status == "online").then_some(now);
            tx.execute(
                "INSERT INTO nodes (cluster, name, status, last_seen, online_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (cluster, name) DO UPDATE SET status = ?3, last_seen = ?4,
                     online_at = coalesce(?5, online_at)",
                params![cluster, node, status, now, online_at],
            )?;
        }
    }
    tx.commit()
}

/// Every node ever reported, by cluster and name.
pub fn known(conn: &Connection) -> rusqlite::Result<Vec<KnownNode>> {
    conn.prepare(
        "SELECT cluster, name, status, last_seen, online_at FROM nodes ORDER BY cluster, name",
    )?
    .query_map([], |row| {
        Ok(KnownNode {
            cluster: row.get(0)?,
            node: row.get(1)?,
            status: row.get(2)?,
            last_seen: row.get(3)?,
            online_at: row.get(4)?,
        })
    })?
    .collect()
}
