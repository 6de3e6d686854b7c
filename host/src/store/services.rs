//! Customers' VMs as Porthole knows them.

use serde::Serialize;

use super::{Db, Row, StoreError, params};
use crate::service_state::{Refusal, ServiceState};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

fn from_row(row: &Row) -> Result<Service, StoreError> {
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

pub async fn insert_active(db: &impl Db, vm: &ExistingVm<'_>) -> Result<Service, StoreError> {
    let row = db
        .query_one(
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
                super::now(),
                vm.stopped,
                ServiceState::Active
            ],
        )
        .await?;
    from_row(&row)
}

/// Forgets a service adopted a moment ago whose VM could not be marked as its own; nothing else
/// refers to it yet.
pub async fn delete_adopted(db: &impl Db, id: i64) -> Result<(), StoreError> {
    db.execute("DELETE FROM services WHERE id = ?1", params![id])
        .await?;
    Ok(())
}

pub async fn get(db: &impl Db, id: i64) -> Result<Option<Service>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {COLUMNS} FROM services WHERE id = ?1"),
        params![id],
        from_row,
    )
    .await
}

/// All services, or only `owner`'s.
pub async fn list(db: &impl Db, owner: Option<i64>) -> Result<Vec<Service>, StoreError> {
    db.query_as(
        &format!("SELECT {COLUMNS} FROM services WHERE ?1 IS NULL OR owner_id = ?1 ORDER BY id"),
        params![owner],
        from_row,
    )
    .await
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

pub async fn insert_provisioning(
    db: &impl Db,
    service: &NewService<'_>,
) -> Result<Service, StoreError> {
    let row = db
        .query_one(
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
                super::now(),
                ServiceState::Provisioning
            ],
        )
        .await?;
    from_row(&row)
}

pub async fn by_external_ref(
    db: &impl Db,
    external_ref: &str,
) -> Result<Option<Service>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {COLUMNS} FROM services WHERE external_ref = ?1"),
        params![external_ref],
        from_row,
    )
    .await
}

/// Moves the service from state `from` to `to`; false when it was no longer in `from` (another
/// job changed it meanwhile), and nothing changed.
pub async fn set_state(
    db: &impl Db,
    id: i64,
    from: ServiceState,
    to: ServiceState,
) -> Result<bool, StoreError> {
    let changed = db
        .execute(
            "UPDATE services SET state = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?2",
            params![id, from, to, super::now()],
        )
        .await?;
    Ok(changed == 1)
}

/// Records whether the owner chose to have the VM off (a stop or shutdown) or on.
pub async fn set_stopped_by_owner(db: &impl Db, id: i64, stopped: bool) -> Result<(), StoreError> {
    db.execute(
        "UPDATE services SET stopped_by_owner = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, stopped, super::now()],
    )
    .await?;
    Ok(())
}

pub async fn set_node(db: &impl Db, id: i64, node: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE services SET node = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, node, super::now()],
    )
    .await?;
    Ok(())
}

/// Records (or with `None`, forgets) the VM id reserved for a service. A unique violation means
/// another service holds that id.
pub async fn set_vmid(db: &impl Db, id: i64, vmid: Option<u32>) -> Result<(), StoreError> {
    db.execute(
        "UPDATE services SET vmid = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, vmid, super::now()],
    )
    .await?;
    Ok(())
}

/// The highest VM id a service on `cluster` holds (whatever its state: a terminated service's
/// VM may not be gone yet).
pub async fn highest_vmid(db: &impl Db, cluster: &str) -> Result<Option<u32>, StoreError> {
    db.query_one(
        "SELECT max(vmid) FROM services WHERE cluster = ?1",
        params![cluster],
    )
    .await?
    .get(0)
}

pub async fn set_plan(db: &impl Db, id: i64, plan: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE services SET plan = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, plan, super::now()],
    )
    .await?;
    Ok(())
}

/// Records the template a reinstall put on the service's VM.
pub async fn set_template(db: &impl Db, id: i64, template: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE services SET template = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, template, super::now()],
    )
    .await?;
    Ok(())
}

/// The live service (not terminated, not failed) that holds `hostname`, if any.
pub async fn live_with_hostname(
    db: &impl Db,
    hostname: &str,
) -> Result<Option<Service>, StoreError> {
    db.query_opt_as(
        &format!(
            "SELECT {COLUMNS} FROM services WHERE hostname = ?1 AND state NOT IN (?2, ?3) LIMIT 1"
        ),
        params![hostname, ServiceState::ENDED[0], ServiceState::ENDED[1]],
        from_row,
    )
    .await
}

/// Services counting against a customer's quota: every one not terminated or failed.
pub async fn live_for_owner(db: &impl Db, owner: i64) -> Result<Vec<Service>, StoreError> {
    db.query_as(
        &format!("SELECT {COLUMNS} FROM services WHERE owner_id = ?1 AND state NOT IN (?2, ?3)"),
        params![owner, ServiceState::ENDED[0], ServiceState::ENDED[1]],
        from_row,
    )
    .await
}
