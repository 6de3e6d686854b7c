//! What a customer does to their own VM beyond power: reinstall it from a template, reset a
//! password through the guest agent, and take, roll back and remove snapshots.
//!
//! Reinstalls and snapshot changes are jobs (their steps: `steps::REINSTALL` and the snapshot
//! sequences), queued through [`Lifecycle::submit`] like every other operation, so they survive
//! a crash and stream their progress. What the customer reads back never names a node, a
//! storage or a task.

use serde::Serialize;
use serde_json::json;

use super::job::{JobData, JobKind, SnapshotSpec};
use super::vm::{StepContext, template_misfit};
use super::{Lifecycle, StepError};
use crate::proxmox::{Client, ProxmoxError, RrdRow, Timeframe, VmPowerState};
use crate::store::services::{self, Service};
use crate::store::{Db, catalogue, jobs};

/// A snapshot as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub name: String,
    pub description: String,
    /// Unix seconds.
    pub taken_at: Option<u64>,
    /// Whether the VM as it runs now descends from this snapshot last (a rollback's target
    /// shows what rolling back would return to).
    pub current: bool,
}

/// A VM's use over a timeframe, one point per Proxmox step; a missing value is a gap.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Graphs {
    pub timeframe: Timeframe,
    /// Seconds between points (Proxmox's resolution for the timeframe).
    pub step_secs: u64,
    pub points: Vec<GraphPoint>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GraphPoint {
    /// Unix seconds at the end of the step.
    pub time: u64,
    /// Percent of the VM's cores (100 = all of them busy).
    pub cpu: Option<f64>,
    /// Bytes in use, and the VM's memory size.
    pub memory: Option<f64>,
    pub memory_max: Option<f64>,
    /// Bytes per second.
    pub net_in: Option<f64>,
    pub net_out: Option<f64>,
    pub disk_read: Option<f64>,
    pub disk_write: Option<f64>,
}

impl From<RrdRow> for GraphPoint {
    fn from(row: RrdRow) -> Self {
        Self {
            time: row.time,
            cpu: row.cpu.map(|fraction| fraction * 100.0),
            memory: row.mem,
            memory_max: row.maxmem,
            net_in: row.netin,
            net_out: row.netout,
            disk_read: row.diskread,
            disk_write: row.diskwrite,
        }
    }
}

/// Why a self-service request was refused, for the person asking.
#[derive(Debug, thiserror::Error)]
pub enum SelfServiceError {
    #[error("{0}")]
    Refused(String),
    #[error("no such snapshot")]
    NoSuchSnapshot,
    #[error("no such backup")]
    NoSuchBackup,
    #[error("the VM holds no such address")]
    NoSuchAddress,
    /// The request itself is unusable, with the reason.
    #[error("{0}")]
    Invalid(String),
    /// Proxmox or the database failed; the details are for the log.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<ProxmoxError> for SelfServiceError {
    fn from(err: ProxmoxError) -> Self {
        Self::Failed(err.into())
    }
}

impl From<crate::store::StoreError> for SelfServiceError {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Failed(err.into())
    }
}

/// Why the guest agent could not set a password: the customer is offered a reinstall instead.
pub const AGENT_UNAVAILABLE: &str = "the VM's guest agent does not answer, so its password \
     cannot be set from outside; start the VM and install qemu-guest-agent, or reinstall it";

impl Lifecycle {
    pub(super) fn vm_client(
        &self,
        service: &Service,
    ) -> Result<(Client, String, u32), SelfServiceError> {
        let (node, vmid) = service
            .usable_vm()
            .map_err(|refusal| SelfServiceError::Refused(refusal.reason.into()))?;
        let client = self
            .inner
            .inventory
            .client(&service.cluster)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("cluster {:?} is not configured", service.cluster))?;
        Ok((client, node.to_owned(), vmid))
    }

    /// The VM's CPU, memory, network and disk use over `timeframe`, oldest first.
    pub async fn graphs(
        &self,
        service: &Service,
        timeframe: Timeframe,
    ) -> Result<Graphs, SelfServiceError> {
        let (client, node, vmid) = self.vm_client(service)?;
        let rows = client.rrddata(&node, vmid, timeframe).await?;
        let mut points: Vec<GraphPoint> = rows.into_iter().map(GraphPoint::from).collect();
        points.sort_by_key(|p| p.time);
        Ok(Graphs {
            timeframe,
            step_secs: timeframe.step_secs(),
            points,
        })
    }

    /// The VM's snapshots, oldest first.
    pub async fn snapshots(&self, service: &Service) -> Result<Vec<Snapshot>, SelfServiceError> {
        let (client, node, vmid) = self.vm_client(service)?;
        let listed = client.snapshots(&node, vmid).await?;
        let head = listed
            .iter()
            .find(|s| s.is_current())
            .and_then(|s| s.parent.clone());
        let mut snapshots: Vec<Snapshot> = listed
            .into_iter()
            .filter(|s| !s.is_current())
            .map(|s| Snapshot {
                current: head.as_deref() == Some(s.name.as_str()),
                name: s.name,
                description: s.description.unwrap_or_default(),
                taken_at: s.snaptime,
            })
            .collect();
        snapshots.sort_by_key(|s| s.taken_at);
        Ok(snapshots)
    }

    /// Checks a snapshot request against the VM as it is now: its plan's maximum for a new one,
    /// the snapshot's existence for the others, and no Proxmox lock (a backup running).
    pub async fn check_snapshot_request(
        &self,
        service: &Service,
        kind: JobKind,
        name: &str,
        max_snapshots: u32,
    ) -> Result<(), SelfServiceError> {
        if has_unfinished_job(&self.inner.store, service.id).await? {
            return Err(SelfServiceError::Refused(IN_PROGRESS.into()));
        }
        self.check_unlocked(service).await?;
        let existing = self.snapshots(service).await?;
        let exists = existing.iter().any(|s| s.name == name);
        match kind {
            JobKind::Snapshot if exists => Err(SelfServiceError::Refused(format!(
                "a snapshot named {name:?} exists already"
            ))),
            JobKind::Snapshot if max_snapshots == 0 => Err(SelfServiceError::Refused(
                "this VM's plan offers no snapshots".into(),
            )),
            JobKind::Snapshot if existing.len() >= max_snapshots as usize => {
                Err(SelfServiceError::Refused(format!(
                    "this VM's plan keeps at most {max_snapshots} snapshot(s); remove one first"
                )))
            }
            JobKind::Snapshot => Ok(()),
            _ if !exists => Err(SelfServiceError::NoSuchSnapshot),
            _ => Ok(()),
        }
    }

    /// Refuses a reinstall from `template` before it is queued when the template cannot be
    /// cloned onto the VM's node (the job would only fail at its first step).
    pub async fn check_reinstall_template(
        &self,
        service: &Service,
        template: &str,
    ) -> Result<(), SelfServiceError> {
        let (client, node, _) = self.vm_client(service)?;
        let plan = match &service.plan {
            Some(name) => catalogue::plan(&self.inner.store, name).await?,
            None => None,
        };
        let offered = plan.is_some_and(|p| p.templates.iter().any(|t| t == template));
        let template = catalogue::template(&self.inner.store, template).await?;
        // What the plan does not offer is refused when the reinstall is queued, naming the plan.
        let (true, Some(template)) = (offered, template) else {
            return Ok(());
        };
        match template_misfit(&client, &template, &service.cluster, &node).await? {
            Some(why) => {
                tracing::info!(service = service.id, why, "reinstall template refused");
                Err(SelfServiceError::Refused(format!(
                    "template {:?} cannot be installed on this VM's server; choose another",
                    template.name
                )))
            }
            None => Ok(()),
        }
    }

    /// Refuses while Proxmox holds a lock on the VM (a backup someone else started, say).
    pub(super) async fn check_unlocked(&self, service: &Service) -> Result<(), SelfServiceError> {
        let (client, node, vmid) = self.vm_client(service)?;
        let config = client.vm_config(&node, vmid).await?;
        match config.get("lock") {
            Some(lock) => Err(SelfServiceError::Refused(busy_reason(lock))),
            None => Ok(()),
        }
    }

    /// Sets `username`'s password in the running guest through the QEMU guest agent, and returns
    /// the new password (shown to the customer once; only its hash reaches Proxmox).
    pub async fn reset_password(
        &self,
        service: &Service,
        username: &str,
        actor: &str,
        client_addr: &str,
    ) -> Result<String, SelfServiceError> {
        let (client, node, vmid) = self.vm_client(service)?;
        self.check_not_busy(service.id).await?;
        if client.vm_status(&node, vmid).await?.status != VmPowerState::Running {
            return Err(SelfServiceError::Refused(
                "the VM is not running; start it to reset its password, or reinstall it".into(),
            ));
        }
        if let Err(err) = client.agent_ping(&node, vmid).await {
            tracing::info!(service = service.id, error = %err, "guest agent did not answer");
            return Err(SelfServiceError::Refused(AGENT_UNAVAILABLE.into()));
        }
        let password = crate::guest_password::generate();
        let hash = crate::guest_password::crypt_hash(&password);
        client
            .agent_set_password_hash(&node, vmid, username, &hash)
            .await
            .map_err(|err| {
                tracing::warn!(service = service.id, error = %err, "set-user-password failed");
                SelfServiceError::Refused(format!(
                    "the guest agent could not set {username:?}'s password; does the user exist?"
                ))
            })?;
        crate::audit::record(
            &self.inner.store,
            crate::audit::Entry {
                actor,
                action: "vm.password_reset",
                target: Some(&format!("service:{}", service.id)),
                detail: json!({ "username": username }),
                client: Some(client_addr),
            },
        )
        .await;
        Ok(password)
    }

    /// Refuses while one of the customer's operations on the VM is unfinished.
    pub async fn check_not_busy(&self, service_id: i64) -> Result<(), SelfServiceError> {
        match busy_with(&self.inner.store, service_id).await? {
            Some(kind) => Err(SelfServiceError::Refused(kind.busy_reason().into())),
            None => Ok(()),
        }
    }
}

/// Why a customer's operation waits for the one before it.
pub const IN_PROGRESS: &str =
    "another operation on this VM is in progress; try again when it is done";

/// Whether any job of the service is unfinished: a customer's operations on their VM run one at
/// a time, and never beside a billing operation.
pub async fn has_unfinished_job(
    db: &impl Db,
    service_id: i64,
) -> Result<bool, crate::store::StoreError> {
    let jobs = jobs::for_service(db, service_id).await?;
    Ok(jobs.iter().any(|j| !j.state.is_finished()))
}

/// The user the service's order had cloud-init make, if an order here built it.
pub async fn provisioned_user(
    db: &impl Db,
    service_id: i64,
) -> Result<Option<String>, crate::store::StoreError> {
    let provision = jobs::for_service(db, service_id)
        .await?
        .into_iter()
        .find(|j| j.kind == JobKind::Provision);
    Ok(provision.and_then(|j| j.data.order).map(|o| o.username))
}

/// The customer's operation under way on the VM, if one is: power waits for it, and a console
/// too when it replaces the disk.
pub async fn busy_with(
    db: &impl Db,
    service_id: i64,
) -> Result<Option<JobKind>, crate::store::StoreError> {
    let jobs = jobs::for_service(db, service_id).await?;
    Ok(jobs
        .into_iter()
        .filter(|j| !j.state.is_finished() && j.kind.is_self_service())
        .map(|j| j.kind)
        .next())
}

/// A Proxmox lock in words for the customer.
fn busy_reason(lock: &str) -> String {
    let what = match lock {
        "backup" => "a backup of it is running",
        "snapshot" | "snapshot-delete" => "a snapshot of it is being taken or removed",
        "rollback" => "it is being rolled back",
        "clone" | "create" => "it is being created",
        _ => "an operation on it is running",
    };
    format!("the VM is busy: {what}; try again when it is done")
}

impl StepContext<'_> {
    fn snapshot(data: &JobData) -> Result<SnapshotSpec, StepError> {
        data.snapshot
            .clone()
            .ok_or_else(|| StepError::Permanent("the job names no snapshot".into()))
    }

    /// The VM the job acts on; a self-service job on a VM that is gone has nothing to do.
    pub(super) async fn vm(&self) -> Result<(String, u32), StepError> {
        self.owned_vm()
            .await?
            .ok_or_else(|| StepError::Permanent("the service's VM does not exist".into()))
    }

    /// Whether the VM holds the snapshot now.
    async fn has_snapshot(&self, node: &str, vmid: u32, name: &str) -> Result<bool, StepError> {
        let listed = self.client.snapshots(node, vmid).await?;
        Ok(listed.iter().any(|s| !s.is_current() && s.name == name))
    }

    /// The template must be clonable onto the VM's node (its own, or on shared storage), or the
    /// reinstall would destroy a VM it cannot replace.
    pub(super) async fn check_template(&self, data: &JobData) -> Result<(), StepError> {
        let order = self.order(data)?;
        let template = self.template(&order.template).await?;
        let node = self.node()?;
        match template_misfit(&self.client, &template, &self.service.cluster, &node).await? {
            Some(why) => Err(StepError::Permanent(why)),
            None => Ok(()),
        }
    }

    pub(super) async fn mark_reinstalled(&self, data: &JobData) -> Result<(), StepError> {
        let order = self.order(data)?;
        let store = &self.lifecycle.inner.store;
        services::set_template(store, self.service.id, &order.template).await?;
        self.audit(
            "service.reinstalled",
            json!({ "template": order.template, "ssh_keys": order.ssh_keys.len() }),
        )
        .await;
        Ok(())
    }

    /// Takes the snapshot, unless an earlier attempt already did (its task finished, or the
    /// snapshot is there).
    pub(super) async fn take_snapshot(&self, data: &mut JobData) -> Result<(), StepError> {
        let spec = Self::snapshot(data)?;
        if !self.finish_remembered_task(data).await? {
            let (node, vmid) = self.vm().await?;
            if !self.has_snapshot(&node, vmid, &spec.name).await? {
                let upid = self
                    .client
                    .create_snapshot(&node, vmid, &spec.name, &spec.description)
                    .await?;
                self.follow_task(data, &upid).await?;
            }
        }
        self.audit("vm.snapshot_taken", json!({ "name": spec.name }))
            .await;
        Ok(())
    }

    /// Rolls back to the snapshot and runs the VM again if it ran before. A rollback that ran is
    /// not repeated: the remembered task is waited for instead.
    pub(super) async fn rollback_snapshot(&self, data: &mut JobData) -> Result<(), StepError> {
        let spec = Self::snapshot(data)?;
        if !self.finish_remembered_task(data).await? {
            let (node, vmid) = self.vm().await?;
            if !self.has_snapshot(&node, vmid, &spec.name).await? {
                return Err(StepError::Permanent(format!(
                    "snapshot {:?} no longer exists",
                    spec.name
                )));
            }
            let running = self.client.vm_status(&node, vmid).await?.status == VmPowerState::Running
                && !self.service.stopped_by_owner;
            let upid = self
                .client
                .rollback_snapshot(&node, vmid, &spec.name, running)
                .await?;
            self.follow_task(data, &upid).await?;
        }
        self.audit("vm.snapshot_rolled_back", json!({ "name": spec.name }))
            .await;
        Ok(())
    }

    pub(super) async fn delete_snapshot(&self, data: &mut JobData) -> Result<(), StepError> {
        let spec = Self::snapshot(data)?;
        if !self.finish_remembered_task(data).await? {
            let (node, vmid) = self.vm().await?;
            if self.has_snapshot(&node, vmid, &spec.name).await? {
                let upid = self.client.delete_snapshot(&node, vmid, &spec.name).await?;
                self.follow_task(data, &upid).await?;
            }
        }
        self.audit("vm.snapshot_removed", json!({ "name": spec.name }))
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_explained_without_proxmox_words() {
        assert!(busy_reason("backup").contains("backup of it is running"));
        assert!(!busy_reason("snapshot-delete").contains("snapshot-delete"));
    }
}
