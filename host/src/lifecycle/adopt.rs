//! Adopting a VM that already runs on a cluster: a provider moving its customers to Porthole,
//! or the demo's seeded VMs. The VM becomes an active service of its owner, and it is marked as
//! that service's (description marker and tag), because every step that stops or destroys a VM
//! first checks that mark: a service whose VM lacks it could never be suspended or terminated.

use anyhow::{Context as _, bail};

use super::vm::{TAG, marked_service, marker};
use crate::proxmox::{Client, ProxmoxError, VmConfigUpdate, VmPowerState};
use crate::store::Store;
use crate::store::services::{self, ExistingVm, Service};

/// The VM to adopt and who owns it from now on.
pub struct Adoption {
    pub owner_id: i64,
    pub node: String,
    pub vmid: u32,
    pub plan: Option<String>,
}

/// Adopts the VM: refused for a template, a VM another service holds, or one that does not
/// exist. A VM found stopped stays stopped (its owner's choice, as far as anyone knows).
pub async fn adopt(store: &Store, client: &Client, vm: Adoption) -> anyhow::Result<Service> {
    let (node, vmid) = (vm.node.clone(), vm.vmid);
    let config = match client.vm_config(&node, vmid).await {
        Ok(config) => config,
        Err(ProxmoxError::NotFound { .. }) => {
            bail!(
                "cluster {:?} has no VM {vmid} on node {node:?}",
                client.cluster()
            )
        }
        Err(err) => return Err(err).context("while reading the VM's configuration"),
    };
    if config.get("template") == Some("1") {
        bail!("VM {vmid} is a template; only a VM can be adopted");
    }
    let description = config.get("description").unwrap_or_default().to_owned();
    if let Some(holder) = marked_service(&description) {
        bail!("VM {vmid} is already marked as service {holder}'s");
    }
    let running = client
        .vm_status(&node, vmid)
        .await
        .context("while reading the VM's power state")?
        .status
        == VmPowerState::Running;
    let name = config
        .get("name")
        .map_or_else(|| format!("vm-{vmid}"), str::to_owned);
    let cluster = client.cluster().to_owned();
    let service = services::insert_active(
        store,
        &ExistingVm {
            owner_id: vm.owner_id,
            name: &name,
            cluster: &cluster,
            node: &vm.node,
            vmid: vm.vmid,
            plan: vm.plan.as_deref(),
            stopped: !running,
        },
    )
    .await
    .with_context(|| format!("while recording VM {vmid} as a service"))?;
    let marked = mark(
        client,
        &node,
        vmid,
        &description,
        config.get("tags"),
        service.id,
    )
    .await;
    let Err(err) = marked else {
        return Ok(service);
    };
    // An answer lost after Proxmox applied the change leaves the VM marked: then the service
    // stands. Unmarked, it could never be suspended or terminated, and must not exist; its id
    // may be given again, so a marker naming it must not stay behind either.
    let id = service.id;
    let landed = client
        .vm_config(&node, vmid)
        .await
        .with_context(|| {
            format!(
                "VM {vmid} was recorded as service {id}, but whether it was marked as such could \
                 not be read: check its description before suspending or terminating it"
            )
        })?
        .get("description")
        .is_some_and(|d| super::vm::carries_marker(d, id));
    if landed {
        return Ok(service);
    }
    services::delete_adopted(store, id)
        .await
        .context("while forgetting a service whose VM could not be marked")?;
    Err(err).context(format!("while marking VM {vmid} as service {id}'s"))
}

/// Appends the service's marker to the VM's description and our tag to its tags, keeping what
/// the provider wrote there.
async fn mark(
    client: &Client,
    node: &str,
    vmid: u32,
    description: &str,
    tags: Option<&str>,
    service_id: i64,
) -> Result<(), ProxmoxError> {
    let description = match description.trim_end() {
        "" => marker(service_id),
        kept => format!("{kept}\n{}", marker(service_id)),
    };
    let mut tags: Vec<&str> = tags
        .unwrap_or_default()
        .split([';', ',', ' '])
        .filter(|t| !t.is_empty())
        .collect();
    if !tags.contains(&TAG) {
        tags.push(TAG);
    }
    let update = VmConfigUpdate::new().description(description).tags(tags);
    client.update_vm_config(node, vmid, &update).await
}
