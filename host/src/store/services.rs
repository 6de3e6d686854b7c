//! Customers' VMs as Porthole knows them.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub cluster: String,
    pub node: Option<String>,
    pub vmid: Option<u32>,
    pub plan: Option<String>,
    pub state: String,
    pub created_at: i64,
}

const COLUMNS: &str = "id, owner_id, name, cluster, node, vmid, plan, state, created_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Service> {
    Ok(Service {
        id: row.get(0)?,
        owner_id: row.get(1)?,
        name: row.get(2)?,
        cluster: row.get(3)?,
        node: row.get(4)?,
        vmid: row.get(5)?,
        plan: row.get(6)?,
        state: row.get(7)?,
        created_at: row.get(8)?,
    })
}

/// A service that already exists on a cluster, e.g. one adopted by an operator or seeded by the
/// demo.
pub struct ExistingVm<'a> {
    pub owner_id: i64,
    pub name: &'a str,
    pub cluster: &'a str,
    pub node: &'a str,
    pub vmid: u32,
    pub plan: Option<&'a str>,
}

pub fn insert_active(conn: &Connection, vm: &ExistingVm<'_>) -> rusqlite::Result<Service> {
    let now = super::now();
    conn.query_row(
        &format!(
            "INSERT INTO services (owner_id, name, cluster, node, vmid, plan, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?7) RETURNING {COLUMNS}"
        ),
        params![vm.owner_id, vm.name, vm.cluster, vm.node, vm.vmid, vm.plan, now],
        from_row,
    )
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Service>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM services WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// All services, or only `owner`'s.
pub fn list(conn: &Connection, owner: Option<i64>) -> rusqlite::Result<Vec<Service>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM services WHERE ?1 IS NULL OR owner_id = ?1 ORDER BY id"
    ))?;
    let rows = statement.query_map([owner], from_row)?;
    rows.collect()
}
