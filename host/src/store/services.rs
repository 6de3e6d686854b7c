//! Customers' VMs as Porthole knows them.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::service_state::{Refusal, ServiceState};

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub id: i64,
    pub owner_id: i64,
    pub name: String,
    pub cluster: String,
    pub node: Option<String>,
    pub vmid: Option<u32>,
    pub plan: Option<String>,
    pub state: ServiceState,
    pub template: Option<String>,
    pub hostname: Option<String>,
    /// The billing system's reference for this service.
    pub external_ref: Option<String>,
    pub created_at: i64,
    /// The owner's last power action on an active service was a stop or shutdown.
    pub stopped_by_owner: bool,
}

impl Service {
    /// The node and id of the VM its owner may power and open consoles on now: an active,
    /// provisioned service's; otherwise why not.
    pub fn usable_vm(&self) -> Result<(&str, u32), Refusal> {
        self.state.check_in_use()?;
        match (self.node.as_deref(), self.vmid) {
            (Some(node), Some(vmid)) => Ok((node, vmid)),
            _ => Err(Refusal::NOT_PROVISIONED),
        }
    }
}

const COLUMNS: &str = "id, owner_id, name, cluster, node, vmid, plan, state, template, hostname, external_ref, created_at, stopped_by_owner";

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
        template: row.get(8)?,
        hostname: row.get(9)?,
        external_ref: row.get(10)?,
        created_at: row.get(11)?,
        stopped_by_owner: row.get(12)?,
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
    /// The VM is off by its owner's choice.
    pub stopped: bool,
}

pub fn insert_active(conn: &Connection, vm: &ExistingVm<'_>) -> rusqlite::Result<Service> {
    let now = super::now();
    conn.query_row(
        &format!(
            "INSERT INTO services (owner_id, name, cluster, node, vmid, plan, state, created_at,
                 updated_at, stopped_by_owner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?9, ?7, ?7, ?8) RETURNING {COLUMNS}"
        ),
        params![
            vm.owner_id,
            vm.name,
            vm.cluster,
            vm.node,
            vm.vmid,
            vm.plan,
            now,
            vm.stopped,
            ServiceState::Active
        ],
        from_row,
    )
}

/// Forgets a service adopted a moment ago whose VM could not be marked as its own; nothing else
/// refers to it yet.
pub fn delete_adopted(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM services WHERE id = ?1", [id])?;
    Ok(())
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

/// A service ordered but not yet built.
pub struct NewService<'a> {
    pub owner_id: i64,
    pub name: &'a str,
    pub cluster: &'a str,
    pub plan: &'a str,
    pub template: &'a str,
    pub hostname: &'a str,
    pub external_ref: Option<&'a str>,
}

pub fn insert_provisioning(
    conn: &Connection,
    service: &NewService<'_>,
) -> rusqlite::Result<Service> {
    let now = super::now();
    conn.query_row(
        &format!(
            "INSERT INTO services (owner_id, name, cluster, plan, template, hostname, external_ref, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9, ?8, ?8) RETURNING {COLUMNS}"
        ),
        params![
            service.owner_id,
            service.name,
            service.cluster,
            service.plan,
            service.template,
            service.hostname,
            service.external_ref,
            now,
            ServiceState::Provisioning
        ],
        from_row,
    )
}

pub fn by_external_ref(conn: &Connection, external_ref: &str) -> rusqlite::Result<Option<Service>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM services WHERE external_ref = ?1"),
        [external_ref],
        from_row,
    )
    .optional()
}

/// Moves the service from state `from` to `to`; false when it was no longer in `from` (another
/// job changed it meanwhile), and nothing changed.
pub fn set_state(
    conn: &Connection,
    id: i64,
    from: ServiceState,
    to: ServiceState,
) -> rusqlite::Result<bool> {
    let changed = conn.execute(
        "UPDATE services SET state = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?2",
        params![id, from, to, super::now()],
    )?;
    Ok(changed == 1)
}

/// Records whether the owner chose to have the VM off (a stop or shutdown) or on.
pub fn set_stopped_by_owner(conn: &Connection, id: i64, stopped: bool) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE services SET stopped_by_owner = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, stopped, super::now()],
    )?;
    Ok(())
}

pub fn set_node(conn: &Connection, id: i64, node: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE services SET node = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, node, super::now()],
    )?;
    Ok(())
}

/// Records (or with `None`, forgets) the VM id reserved for a service. A UNIQUE violation means
/// another service holds that id.
pub fn set_vmid(conn: &Connection, id: i64, vmid: Option<u32>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE services SET vmid = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, vmid, super::now()],
    )?;
    Ok(())
}

pub fn set_plan(conn: &Connection, id: i64, plan: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE services SET plan = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, plan, super::now()],
    )?;
    Ok(())
}

/// The live service (not terminated, not failed) that holds `hostname`, if any.
pub fn live_with_hostname(conn: &Connection, hostname: &str) -> rusqlite::Result<Option<Service>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM services WHERE hostname = ?1 AND state NOT IN (?2, ?3) LIMIT 1"
        ),
        params![hostname, ServiceState::ENDED[0], ServiceState::ENDED[1]],
        from_row,
    )
    .optional()
}

/// Services counting against a customer's quota: every one not terminated or failed.
pub fn live_for_owner(conn: &Connection, owner: i64) -> rusqlite::Result<Vec<Service>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM services WHERE owner_id = ?1 AND state NOT IN (?2, ?3)"
    ))?;
    let rows = statement.query_map(
        params![owner, ServiceState::ENDED[0], ServiceState::ENDED[1]],
        from_row,
    )?;
    rows.collect()
}
