//! The steps that act on Proxmox: placement, VM id, clone, configuration, power, destruction,
//! and the service state changes that go with them.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::json;

use super::catalogue::{Plan, Template};
use super::job::{Job, JobData, JobKind};
use super::placement::{self, Placement};
use super::steps::Step;
use super::{Lifecycle, OrderSpec, StepError};
use crate::config::DeliveryKind;
use crate::proxmox::{
    Client, CloneRequest, ProxmoxError, ResourceKind, Upid, VmConfig, VmConfigUpdate, VmPowerState,
};
use crate::service_state::ServiceState;
use crate::store::services::{self, Service};
use crate::store::{catalogue, jobs};

/// The tag every VM of ours carries, so operators and the reconciler can tell them apart.
pub(super) const TAG: &str = "porthole";

/// The marker in a VM's description that says which service it belongs to. Nothing is stopped
/// or destroyed without it.
pub fn marker(service_id: i64) -> String {
    format!("porthole-service:{service_id}")
}

/// The service a description's marker names, if it carries one.
pub(super) fn marked_service(description: &str) -> Option<i64> {
    description
        .split_whitespace()
        .find_map(|word| word.strip_prefix("porthole-service:"))
        .and_then(|id| id.parse().ok())
}

/// True when `description` carries exactly this service's marker: `porthole-service:1` must not
/// match the description of service 12's VM.
pub fn carries_marker(description: &str, service_id: i64) -> bool {
    let marker = marker(service_id);
    description.split_whitespace().any(|token| token == marker)
}

/// What a service's recorded VM id holds on the cluster.
enum Holder {
    /// This service's VM, on this node.
    Ours(String, u32),
    /// No VM: none was ever created, or it is gone.
    Nothing,
    /// A VM without this service's marker: never ours to touch.
    Stranger(u32),
}

/// The disk a plan's size applies to.
const SYSTEM_DISK: &str = "scsi0";

/// Everything a step needs about its job.
pub(super) struct StepContext<'a> {
    pub(super) lifecycle: &'a Lifecycle,
    pub(super) job: &'a Job,
    pub(super) service: Service,
    pub(super) client: Client,
}

pub(super) async fn run(
    lifecycle: &Lifecycle,
    job: &Job,
    data: &mut JobData,
) -> Result<(), StepError> {
    let service_id = job.service_id;
    let service = services::get(&lifecycle.inner.store, service_id)
        .await?
        .ok_or_else(|| StepError::Permanent(format!("service {service_id} no longer exists")))?;
    let client = lifecycle
        .inner
        .inventory
        .client(&service.cluster)
        .cloned()
        .ok_or_else(|| {
            StepError::Permanent(format!("cluster {:?} is not configured", service.cluster))
        })?;
    let cx = StepContext {
        lifecycle,
        job,
        service,
        client,
    };
    match job.step {
        Step::Place => cx.place(data).await,
        Step::ReserveVmid => cx.reserve_vmid().await,
        Step::Clone => cx.clone_template(data).await,
        Step::Configure => cx.configure(data).await,
        Step::StartVm => cx.start(data).await,
        Step::WaitRunning => cx.wait_running().await,
        Step::StopVm => cx.stop(data).await,
        Step::DestroyVm => cx.destroy(data).await,
        Step::Reconfigure => cx.reconfigure(data).await,
        Step::RestartForPlan => cx.restart_for_plan(data).await,
        Step::MarkActive => cx.mark(ServiceState::Active).await,
        Step::MarkSuspended => cx.mark(ServiceState::Suspended).await,
        Step::MarkTerminating => cx.mark(ServiceState::Terminating).await,
        Step::MarkTerminated => cx.mark(ServiceState::Terminated).await,
        Step::MarkFailed => cx.mark(ServiceState::Failed).await,
        Step::CheckTemplate => cx.check_template(data).await,
        Step::MarkReinstalled => cx.mark_reinstalled(data).await,
        Step::TakeSnapshot => cx.take_snapshot(data).await,
        Step::RollbackSnapshot => cx.rollback_snapshot(data).await,
        Step::DeleteSnapshot => cx.delete_snapshot(data).await,
        Step::TakeBackup => cx.take_backup(data).await,
        Step::PruneBackups => cx.prune_backups(data).await,
        Step::PrepareRestore => cx.prepare_restore().await,
        Step::RestoreBackup => cx.restore_backup(data).await,
        Step::RemoveBackups => cx.remove_backups(data).await,
        Step::SetReverseDns => cx.set_reverse_dns(data).await,
        Step::RemoveReverseDns => cx.remove_reverse_dns().await,
        Step::Tunnel
        | Step::Dns
        | Step::CloudInit
        | Step::RemoveDns
        | Step::RemoveTunnel
        | Step::RemoveCloudInit => super::extras::run(lifecycle, job, &cx.service, data).await,
        Step::Done => Ok(()),
    }
}

impl StepContext<'_> {
    pub(super) fn order(&self, data: &JobData) -> Result<OrderSpec, StepError> {
        data.order
            .clone()
            .ok_or_else(|| StepError::Permanent("the job carries no order".into()))
    }

    pub(super) fn node(&self) -> Result<String, StepError> {
        self.service
            .node
            .clone()
            .ok_or_else(|| StepError::Permanent("the service has no node yet".into()))
    }

    pub(super) async fn plan(&self, name: &str) -> Result<Plan, StepError> {
        catalogue::plan(&self.lifecycle.inner.store, name)
            .await?
            .ok_or_else(|| StepError::Permanent(format!("plan {name:?} no longer exists")))
    }

    pub(super) async fn template(&self, name: &str) -> Result<Template, StepError> {
        catalogue::template(&self.lifecycle.inner.store, name)
            .await?
            .ok_or_else(|| StepError::Permanent(format!("template {name:?} no longer exists")))
    }

    /// Records a started task before waiting on it, so a resumed step waits on the same task.
    async fn remember_task(&self, data: &mut JobData, upid: &Upid) -> Result<(), StepError> {
        data.upid = Some(upid.as_str().to_owned());
        jobs::save_data(&self.lifecycle.inner.store, self.job.id, data).await?;
        Ok(())
    }

    /// Remembers a task just started, waits for it, and forgets it once it is done.
    pub(super) async fn follow_task(
        &self,
        data: &mut JobData,
        upid: &Upid,
    ) -> Result<(), StepError> {
        self.remember_task(data, upid).await?;
        self.wait(upid).await?;
        data.upid = None;
        Ok(())
    }

    /// Waits for the task a previous attempt started, if any; true when there was one.
    pub(super) async fn finish_remembered_task(
        &self,
        data: &mut JobData,
    ) -> Result<bool, StepError> {
        let Some(text) = data.upid.clone() else {
            return Ok(false);
        };
        let upid: Upid = text
            .parse()
            .map_err(|err| StepError::Permanent(format!("stored task id: {err}")))?;
        self.wait(&upid).await?;
        data.upid = None;
        Ok(true)
    }

    async fn wait(&self, upid: &Upid) -> Result<(), StepError> {
        let deadline = tokio::time::Instant::from_std(
            Instant::now() + self.lifecycle.inner.settings.task_deadline,
        );
        self.client.wait_task(upid, deadline).await?;
        Ok(())
    }

    /// A node of the plan's group with room for it (see [`placement`]).
    async fn place(&self, data: &JobData) -> Result<(), StepError> {
        let order = self.order(data)?;
        let plan = self.plan(&order.plan).await?;
        let template = self.template(&order.template).await?;
        let nodes = self
            .client
            .cluster_resources(Some(ResourceKind::Node))
            .await?;
        let leaves_its_node = plan.nodes.iter().any(|n| *n != template.node);
        let site = placement::TemplateSite {
            node: &template.node,
            on_shared_storage: leaves_its_node && self.on_shared_storage(&template).await?,
        };
        let needed = plan.memory_mib * 1024 * 1024;
        let node_name = match placement::choose(&plan.nodes, &site, &nodes, needed) {
            Placement::Node(name) => name,
            Placement::NoRoomYet(why) => return Err(StepError::Transient(why)),
            Placement::Impossible(why) => return Err(StepError::Permanent(why)),
        };
        services::set_node(&self.lifecycle.inner.store, self.service.id, &node_name).await?;
        Ok(())
    }

    /// Whether every volume of the template is on storage that all nodes share.
    pub(super) async fn on_shared_storage(&self, template: &Template) -> Result<bool, StepError> {
        Ok(on_shared_storage(&self.client, template).await?)
    }

    async fn reserve_vmid(&self) -> Result<(), StepError> {
        if self.service.vmid.is_some() {
            return Ok(());
        }
        self.take_new_vmid().await.map(|_| ())
    }

    /// Asks the cluster for a free id and records it. Proxmox's next free id is the same for
    /// every provision that asks before the first of them clones, so with many at once (several
    /// daemons' workers) each takes the first id after those already reserved here, and the
    /// services table's UNIQUE index decides between two that pick the same one: the loser
    /// looks again at once. Beyond the cluster's own answer an id is not known to be free, so
    /// those that a VM holds anywhere in the cluster are skipped; one created outside Porthole
    /// after this look is found at the clone, which takes a fresh id.
    async fn take_new_vmid(&self) -> Result<u32, StepError> {
        const TRIES: usize = 64;
        let store = &self.lifecycle.inner.store;
        let free = self.client.next_vmid().await?;
        // Read only once an id past the cluster's answer is wanted: usually none is.
        let mut held: Option<BTreeSet<u32>> = None;
        for _ in 0..TRIES {
            let mut vmid = match services::highest_vmid(store, &self.service.cluster).await? {
                Some(highest) if highest >= free => highest.saturating_add(1),
                _ => free,
            };
            if vmid != free {
                let held = match &mut held {
                    Some(held) => held,
                    None => held.insert(self.held_vmids().await?),
                };
                while held.contains(&vmid) {
                    vmid = vmid.saturating_add(1);
                }
            }
            match services::set_vmid(store, self.service.id, Some(vmid)).await {
                Err(err) if err.is_unique_violation() => continue,
                other => return Ok(other.map(|()| vmid)?),
            }
        }
        Err(StepError::Transient(format!(
            "{TRIES} VM ids in a row were taken by other services at the same moment"
        )))
    }

    /// The ids of every VM in the cluster.
    async fn held_vmids(&self) -> Result<BTreeSet<u32>, StepError> {
        let vms = self
            .client
            .cluster_resources(Some(ResourceKind::Vm))
            .await?;
        Ok(vms.into_iter().filter_map(|vm| vm.vmid).collect())
    }

    /// A full clone named and marked for the service. Re-entrant: a clone already started (by
    /// this job before a crash) is waited for, not repeated; an id taken meanwhile by a VM that
    /// is not ours is replaced by a fresh one.
    async fn clone_template(&self, data: &mut JobData) -> Result<(), StepError> {
        if self.finish_remembered_task(data).await? {
            return Ok(());
        }
        let order = self.order(data)?;
        let template = self.template(&order.template).await?;
        let node = self.node()?;
        let mut vmid = self
            .service
            .vmid
            .ok_or_else(|| StepError::Permanent("no VM id reserved".into()))?;
        match self.client.vm_config(&node, vmid).await {
            Ok(config) => match self.judge(node.clone(), vmid, &config)? {
                Holder::Ours(..) => return Ok(()),
                Holder::Nothing | Holder::Stranger(_) => vmid = self.take_new_vmid().await?,
            },
            Err(ProxmoxError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        let mut request = CloneRequest::new(vmid);
        request.name = Some(order.hostname.clone());
        request.full = Some(true);
        request.description = Some(marker(self.service.id));
        // Placement chose another node only for a template on shared storage.
        request.target = (node != template.node).then(|| node.clone());
        let cloned = self
            .client
            .clone_vm(&template.node, template.vmid, &request)
            .await;
        let upid = match cloned {
            Ok(upid) => upid,
            Err(err @ ProxmoxError::Conflict { .. }) => {
                return Err(self.id_taken(&node, vmid, err).await);
            }
            Err(err) => return Err(err.into()),
        };
        self.follow_task(data, &upid).await?;
        Ok(())
    }

    /// The clone of `vmid` was refused as a conflict: VM ids are unique in the whole cluster,
    /// and a VM on another node than the service's may hold it. Then the service takes a fresh
    /// id for the step's next attempt.
    async fn id_taken(&self, node: &str, vmid: u32, conflict: ProxmoxError) -> StepError {
        match self.holder_elsewhere(node, vmid).await {
            Ok(Holder::Stranger(_)) => match self.take_new_vmid().await {
                Ok(fresh) => StepError::Transient(format!(
                    "VM id {vmid} is held by a VM on another node; the next attempt takes {fresh}"
                )),
                Err(err) => err,
            },
            Ok(_) => conflict.into(),
            Err(err) => err,
        }
    }

    fn is_ours(&self, config: &VmConfig) -> bool {
        config
            .get("description")
            .is_some_and(|d| carries_marker(d, self.service.id))
    }

    /// What the service's recorded VM id holds now, wherever in the cluster it is.
    async fn holder(&self) -> Result<Holder, StepError> {
        let (Some(node), Some(vmid)) = (self.service.node.clone(), self.service.vmid) else {
            return Ok(Holder::Nothing);
        };
        match self.client.vm_config(&node, vmid).await {
            Ok(config) => self.judge(node, vmid, &config),
            Err(ProxmoxError::NotFound { .. }) => self.holder_elsewhere(&node, vmid).await,
            Err(err) => Err(err.into()),
        }
    }

    /// A VM cloned to another node lives on the template's node until its copy is done, and an
    /// operator may migrate one: the cluster says where the id is now.
    async fn holder_elsewhere(&self, expected: &str, vmid: u32) -> Result<Holder, StepError> {
        let resources = self
            .client
            .cluster_resources(Some(ResourceKind::Vm))
            .await?;
        let elsewhere = resources
            .into_iter()
            .find(|r| r.vmid == Some(vmid) && r.node.as_deref() != Some(expected))
            .and_then(|r| r.node);
        let Some(node) = elsewhere else {
            return Ok(Holder::Nothing);
        };
        match self.client.vm_config(&node, vmid).await {
            Ok(config) => self.judge(node, vmid, &config),
            Err(ProxmoxError::NotFound { .. }) => Ok(Holder::Nothing),
            Err(err) => Err(err.into()),
        }
    }

    /// Whose VM `vmid` on `node`, with `config`, is; a VM still being cloned is waited for.
    fn judge(&self, node: String, vmid: u32, config: &VmConfig) -> Result<Holder, StepError> {
        if config.get("lock") == Some("clone") {
            return Err(StepError::Transient(format!(
                "VM {vmid} is still being cloned"
            )));
        }
        if self.is_ours(config) {
            return Ok(Holder::Ours(node, vmid));
        }
        tracing::warn!(
            service = self.service.id,
            vmid,
            "VM id is held by a VM that is not this service's; leaving it alone"
        );
        Ok(Holder::Stranger(vmid))
    }

    /// The service's VM, for a step that acts on it; `None` when there is none to act on. A VM
    /// that is not the service's is left alone either way, but only a provision's rollback takes
    /// that as "nothing to undo" (its id was taken before its clone ran): any other job was
    /// promised this service's VM, and parks with the reason rather than report what it did not
    /// do.
    pub(super) async fn owned_vm(&self) -> Result<Option<(String, u32)>, StepError> {
        match self.holder().await? {
            Holder::Ours(node, vmid) => Ok(Some((node, vmid))),
            Holder::Nothing => Ok(None),
            Holder::Stranger(_) if self.job.kind == JobKind::Provision => Ok(None),
            Holder::Stranger(vmid) => Err(StepError::Permanent(format!(
                "VM {vmid} is not this service's: its description lacks {:?}; \
                 nothing was done to it",
                marker(self.service.id)
            ))),
        }
    }

    async fn configure(&self, data: &mut JobData) -> Result<(), StepError> {
        if self.finish_remembered_task(data).await? {
            return Ok(());
        }
        let order = self.order(data)?;
        let plan = self.plan(&order.plan).await?;
        let node = self.node()?;
        let vmid = self
            .service
            .vmid
            .ok_or_else(|| StepError::Permanent("no VM id reserved".into()))?;
        let mut update = VmConfigUpdate::new()
            .cores(plan.cores)
            .memory_mib(plan.memory_mib)
            .name(order.hostname.clone())
            .tags([TAG])
            .description(marker(self.service.id))
            .ipconfig(0, self.ipconfig().await?);
        // A snippet replaces the user-data Proxmox would build from ciuser and sshkeys (its
        // `cicustom user=` wins), so they are sent only where they take effect.
        let delivery = self.lifecycle.inner.provisioning.cloud_init.delivery;
        if delivery != DeliveryKind::Snippets {
            update = update.ciuser(order.username.clone());
            if !order.ssh_keys.is_empty() {
                update = update.sshkeys(order.ssh_keys.iter().map(String::as_str));
            }
        }
        self.client.update_vm_config(&node, vmid, &update).await?;
        self.grow_disk(data, &node, vmid, plan.disk_gib).await
    }

    /// `ipconfig0` for the addresses the service drew at its order (DHCP without any).
    async fn ipconfig(&self) -> Result<String, StepError> {
        let store = &self.lifecycle.inner.store;
        let held = crate::store::addresses::held(store, self.service.id).await?;
        Ok(super::addresses::ipconfig(
            &self.lifecycle.inner.pools,
            &held,
        ))
    }

    /// Resizes the system disk up to the plan's size; never shrinks (Proxmox refuses to).
    async fn grow_disk(
        &self,
        data: &mut JobData,
        node: &str,
        vmid: u32,
        gib: u64,
    ) -> Result<(), StepError> {
        let config = self.client.vm_config(node, vmid).await?;
        let current = config.get(SYSTEM_DISK).and_then(disk_size_gib).unwrap_or(0);
        if current >= gib {
            return Ok(());
        }
        let upid = self
            .client
            .resize_disk(node, vmid, SYSTEM_DISK, &format!("{gib}G"))
            .await?;
        self.follow_task(data, &upid).await?;
        Ok(())
    }

    async fn start(&self, data: &mut JobData) -> Result<(), StepError> {
        if self.finish_remembered_task(data).await? {
            return Ok(());
        }
        // Provisioned or unsuspended, the VM is meant to run whatever its owner chose before.
        services::set_stopped_by_owner(&self.lifecycle.inner.store, self.service.id, false).await?;
        let Some((node, vmid)) = self.owned_vm().await? else {
            return Err(StepError::Permanent(
                "the service's VM does not exist".into(),
            ));
        };
        if self.client.vm_status(&node, vmid).await?.status == VmPowerState::Running {
            return Ok(());
        }
        let upid = self.client.start_vm(&node, vmid).await?;
        self.follow_task(data, &upid).await?;
        Ok(())
    }

    async fn wait_running(&self) -> Result<(), StepError> {
        let node = self.node()?;
        let vmid = self
            .service
            .vmid
            .ok_or_else(|| StepError::Permanent("no VM id reserved".into()))?;
        match self.client.vm_status(&node, vmid).await?.status {
            VmPowerState::Running => {
                self.lifecycle.seed_vm_running(self.service.id).await?;
                Ok(())
            }
            other => Err(StepError::Transient(format!(
                "VM {vmid} is {other:?}, not yet running"
            ))),
        }
    }

    async fn stop(&self, data: &mut JobData) -> Result<(), StepError> {
        if self.finish_remembered_task(data).await? {
            return Ok(());
        }
        let Some((node, vmid)) = self.owned_vm().await? else {
            return Ok(());
        };
        let stopped = match self.client.vm_status(&node, vmid).await {
            Ok(status) => status.status == VmPowerState::Stopped,
            // Stopping a stopped VM is harmless, so a status that cannot be read (a rollback
            // after the status call itself kept failing) is no reason to wait.
            Err(err) if err.is_transient() => false,
            Err(err) => return Err(err.into()),
        };
        if stopped {
            return Ok(());
        }
        let upid = self.client.stop_vm(&node, vmid).await?;
        self.follow_task(data, &upid).await?;
        Ok(())
    }

    async fn destroy(&self, data: &mut JobData) -> Result<(), StepError> {
        if self.finish_remembered_task(data).await? {
            return self.forget_vmid().await;
        }
        let Some((node, vmid)) = self.owned_vm().await? else {
            return self.forget_vmid().await;
        };
        let upid = match self.client.delete_vm(&node, vmid).await {
            Ok(upid) => upid,
            // Gone between the look and the delete: what we wanted.
            Err(ProxmoxError::NotFound { .. }) => return self.forget_vmid().await,
            Err(err) => return Err(err.into()),
        };
        self.follow_task(data, &upid).await?;
        self.audit("vm.destroyed", json!({ "vmid": vmid })).await;
        self.forget_vmid().await
    }

    /// The id is free for the cluster again; forget it so another service may hold it. A
    /// reinstall keeps it: its clone takes the same id back.
    async fn forget_vmid(&self) -> Result<(), StepError> {
        if self.job.kind == JobKind::Reinstall {
            return Ok(());
        }
        services::set_vmid(&self.lifecycle.inner.store, self.service.id, None).await?;
        Ok(())
    }

    async fn reconfigure(&self, data: &mut JobData) -> Result<(), StepError> {
        let plan_name = data
            .new_plan
            .clone()
            .ok_or_else(|| StepError::Permanent("no new plan".into()))?;
        // A resize remembered from before a crash or a time-out is the last of the changes:
        // once it is done, only recording the plan is left.
        if !self.finish_remembered_task(data).await? {
            let plan = self.plan(&plan_name).await?;
            let Some((node, vmid)) = self.owned_vm().await? else {
                return Err(StepError::Permanent(
                    "the service's VM does not exist".into(),
                ));
            };
            let update = VmConfigUpdate::new()
                .cores(plan.cores)
                .memory_mib(plan.memory_mib);
            self.client.update_vm_config(&node, vmid, &update).await?;
            self.grow_disk(data, &node, vmid, plan.disk_gib).await?;
        }
        let (id, from) = (self.service.id, self.service.plan.clone());
        services::set_plan(&self.lifecycle.inner.store, id, &plan_name).await?;
        self.audit(
            "service.plan_changed",
            json!({ "from": from, "to": plan_name }),
        )
        .await;
        Ok(())
    }

    /// Reboots the VM if it runs with the new plan's cores or memory still pending: a customer
    /// who paid for more expects to have it, not at some later reboot.
    async fn restart_for_plan(&self, data: &mut JobData) -> Result<(), StepError> {
        if self.finish_remembered_task(data).await? {
            self.audit("service.restarted", json!({ "why": "plan change" }))
                .await;
            return Ok(());
        }
        let Some((node, vmid)) = self.owned_vm().await? else {
            return Err(StepError::Permanent(
                "the service's VM does not exist".into(),
            ));
        };
        if self.client.vm_status(&node, vmid).await?.status != VmPowerState::Running {
            return Ok(());
        }
        let pending = self.client.vm_pending(&node, vmid).await?;
        let waiting = pending
            .iter()
            .any(|c| c.waits_for_restart() && matches!(c.key.as_str(), "cores" | "memory"));
        if !waiting {
            return Ok(());
        }
        let upid = self.client.reboot_vm(&node, vmid).await?;
        self.follow_task(data, &upid).await?;
        self.audit("service.restarted", json!({ "why": "plan change" }))
            .await;
        Ok(())
    }

    /// Moves the service to `state`, if the state it is in may become that one; a state that
    /// revokes consoles closes its live consoles and tokens after the change, so a token redeemed
    /// meanwhile meets the new state. A service already there (the step runs again, or it ended
    /// before its termination ran) is left as it is.
    async fn mark(&self, state: ServiceState) -> Result<(), StepError> {
        let (id, from) = (self.service.id, self.service.state);
        if !from.is_already(state) {
            if !from.may_become(state) {
                return Err(StepError::Permanent(format!(
                    "the service is {from}; it cannot become {state}"
                )));
            }
            let moved = services::set_state(&self.lifecycle.inner.store, id, from, state).await?;
            if !moved {
                // Read again at the next attempt, and judged then.
                return Err(StepError::Transient(format!(
                    "the service left {from} while this job wanted it {state}"
                )));
            }
        }
        if let Some(why) = state.revocation() {
            self.lifecycle.inner.console.revoke(id, why).await;
        }
        if state.is_ended() {
            crate::store::addresses::release(&self.lifecycle.inner.store, id).await?;
        }
        self.audit(&format!("service.{state}"), json!({})).await;
        Ok(())
    }

    pub(super) async fn audit(&self, action: &str, detail: serde_json::Value) {
        crate::audit::record(
            &self.lifecycle.inner.store,
            crate::audit::Entry {
                actor: &self.job.actor,
                action,
                target: Some(&format!("service:{}", self.service.id)),
                detail,
                client: None,
            },
        )
        .await;
    }
}

/// Whether every volume of `template` is on storage that all nodes share, so it can be cloned to
/// any node.
pub(super) async fn on_shared_storage(
    client: &Client,
    template: &Template,
) -> Result<bool, ProxmoxError> {
    let config = client.vm_config(&template.node, template.vmid).await?;
    let storages = client
        .cluster_resources(Some(ResourceKind::Storage))
        .await?;
    let shared = |name: &String| {
        storages.iter().any(|s| {
            s.node.as_deref() == Some(template.node.as_str())
                && s.storage.as_ref() == Some(name)
                && s.extra.get("shared").and_then(serde_json::Value::as_u64) == Some(1)
        })
    };
    Ok(config.volume_storages().iter().all(shared))
}

/// Why `template` cannot be cloned onto `node` of `cluster`, if it cannot: it is on another
/// cluster, or on another node with local storage.
pub(super) async fn template_misfit(
    client: &Client,
    template: &Template,
    cluster: &str,
    node: &str,
) -> Result<Option<String>, ProxmoxError> {
    if template.cluster != cluster {
        return Ok(Some(format!(
            "template {:?} is on cluster {:?}, the VM on {cluster:?}",
            template.name, template.cluster
        )));
    }
    if template.node != node && !on_shared_storage(client, template).await? {
        return Ok(Some(format!(
            "template {:?} is on node {} with local storage; the VM is on {node}",
            template.name, template.node
        )));
    }
    Ok(None)
}

/// The size in GiB of a disk line like `local-lvm:vm-100-disk-0,size=32G`.
fn disk_size_gib(line: &str) -> Option<u64> {
    let size = line
        .split(',')
        .find_map(|part| part.strip_prefix("size="))?;
    let (number, unit) = size.split_at(
        size.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(size.len()),
    );
    let value: f64 = number.parse().ok()?;
    let gib = match unit {
        "T" => value * 1024.0,
        "G" | "" => value,
        "M" => value / 1024.0,
        "K" => value / (1024.0 * 1024.0),
        _ => return None,
    };
    Some(gib.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_matches_its_own_service_only() {
        assert!(carries_marker("porthole-service:1", 1));
        assert!(carries_marker(
            "built by porthole\nporthole-service:12\n",
            12
        ));
        assert!(!carries_marker("porthole-service:12", 1));
        assert!(!carries_marker("porthole-service:1x", 1));
    }

    #[test]
    fn markers_name_their_service() {
        assert_eq!(marked_service("built by porthole-service:42 ok"), Some(42));
        assert_eq!(marked_service("porthole-service:x"), None);
        assert_eq!(marked_service("nothing"), None);
    }

    #[test]
    fn disk_sizes_are_read_in_gib() {
        assert_eq!(disk_size_gib("local-lvm:vm-100-disk-0,size=32G"), Some(32));
        assert_eq!(
            disk_size_gib("local-lvm:vm-100-disk-0,iothread=1,size=1T"),
            Some(1024)
        );
        assert_eq!(disk_size_gib("local-lvm:vm-100-disk-0,size=512M"), Some(1));
        assert_eq!(disk_size_gib("local-lvm:vm-100-disk-0"), None);
    }
}
