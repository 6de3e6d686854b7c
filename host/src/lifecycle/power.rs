//! Power actions on a customer's VM: start, stop, shutdown, reboot, for an active, provisioned
//! service, and only one that would do something to the VM as it is. Each is audited; Proxmox
//! errors go to the log, never to the caller.
//!
//! A suspension can land while a start is on its way or queued on the node: the suspend job finds
//! the VM stopped (or stops it), then the start runs it again. So every start or reboot is
//! followed by a guard that waits for the task to end, looks at the service again, and stops the
//! VM if the service is no longer active. The guard lives in the daemon, not in the request, so
//! a client that hangs up cannot cancel it; should the daemon die meanwhile, the reconciler
//! reports the suspended VM that runs.

use std::time::Duration;

use serde_json::json;

use super::Lifecycle;
use crate::audit;
use crate::proxmox::{Client, Upid};
use crate::service_state::PowerAction;
use crate::store::services::{self, Service};

/// How long the guard after a start waits for the start, and then for its own stop.
const GUARD_DEADLINE: Duration = Duration::from_secs(300);

/// Why a power action was not sent.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The service or its VM is not in a state for it, with the reason for the person asking.
    #[error("{0}")]
    Refused(String),
    /// Proxmox or the database failed; the details are for the log.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl Lifecycle {
    /// Sends `action` for `service`'s VM once Proxmox accepted the task, on behalf of `actor`
    /// (from `client_addr`).
    pub async fn power(
        &self,
        service: &Service,
        action: PowerAction,
        actor: &str,
        client_addr: &str,
    ) -> Result<(), PowerError> {
        let (node, vmid) = service
            .usable_vm()
            .map_err(|refusal| PowerError::Refused(refusal.reason.into()))?;
        let busy = super::self_service::busy_with(&self.inner.store, service.id)
            .await
            .map_err(anyhow::Error::from)?;
        if let Some(kind) = busy {
            return Err(PowerError::Refused(kind.busy_reason().into()));
        }
        let power = self
            .inner
            .inventory
            .power_state(&service.cluster, node, vmid)
            .await;
        // An action that would do nothing to the VM as it is now (a start of a running VM) is
        // refused; a state the cluster cannot tell leaves it to Proxmox to judge.
        action
            .check(power)
            .map_err(|reason| PowerError::Refused(reason.into()))?;
        let client = self
            .inner
            .inventory
            .client(&service.cluster)
            .ok_or_else(|| {
                anyhow::anyhow!("service names unknown cluster {:?}", service.cluster)
            })?;
        let upid = send(client, node, vmid, action).await?;
        // The reconciler expects the VM in the state its owner last chose.
        let stopped = matches!(action, PowerAction::Stop | PowerAction::Shutdown);
        let id = service.id;
        services::set_stopped_by_owner(&self.inner.store, id, stopped)
            .await
            .map_err(anyhow::Error::from)?;
        if matches!(action, PowerAction::Start | PowerAction::Reboot) {
            let guard = SuspensionGuard {
                lifecycle: self.clone(),
                client: client.clone(),
                service: id,
                node: node.to_owned(),
                vmid,
            };
            tokio::spawn(guard.after(upid));
        }
        audit::record(
            &self.inner.store,
            audit::Entry {
                actor,
                action: "vm.power",
                target: Some(&format!("service:{id}")),
                detail: json!({ "action": action.as_str() }),
                client: Some(client_addr),
            },
        )
        .await;
        Ok(())
    }
}

async fn send(
    client: &Client,
    node: &str,
    vmid: u32,
    action: PowerAction,
) -> Result<Upid, PowerError> {
    let result = match action {
        PowerAction::Start => client.start_vm(node, vmid).await,
        PowerAction::Stop => client.stop_vm(node, vmid).await,
        PowerAction::Shutdown => client.shutdown_vm(node, vmid).await,
        PowerAction::Reboot => client.reboot_vm(node, vmid).await,
    };
    result.map_err(|err| {
        PowerError::Failed(anyhow::anyhow!(
            "power {} of {}/{vmid}: {err}",
            action.as_str(),
            client.cluster()
        ))
    })
}

/// Keeps a suspended (or terminating) service's VM stopped after a start or reboot of it.
struct SuspensionGuard {
    lifecycle: Lifecycle,
    client: Client,
    service: i64,
    node: String,
    vmid: u32,
}

impl SuspensionGuard {
    /// Waits for the task `started` to end, then stops the VM if its service is no longer
    /// active. Only then is the order settled: a suspension marked before this look is seen
    /// here, and one marked after it finds the VM running and stops it itself.
    async fn after(self, started: Upid) {
        let deadline = tokio::time::Instant::now() + GUARD_DEADLINE;
        // A start that failed, or whose end cannot be learnt, may still have run the VM: look
        // at the service either way.
        if let Err(err) = self.client.wait_task(&started, deadline).await {
            tracing::debug!(service = self.service, error = %err, "power task did not end cleanly");
        }
        let id = self.service;
        let state = match services::get(&self.lifecycle.inner.store, id).await {
            Ok(Some(service)) => service.state,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(service = id, error = %err, "cannot read the service after a start");
                return;
            }
        };
        if state.check_in_use().is_ok() {
            return;
        }
        match self.stop(deadline).await {
            Ok(()) => {
                tracing::warn!(
                    service = id,
                    state = state.as_str(),
                    "a start raced a suspension; the VM was stopped again"
                );
                audit::record(
                    &self.lifecycle.inner.store,
                    audit::Entry {
                        actor: "system",
                        action: "vm.power.undone",
                        target: Some(&format!("service:{id}")),
                        detail: json!({ "state": state }),
                        client: None,
                    },
                )
                .await;
            }
            Err(err) => tracing::error!(
                service = id,
                state = state.as_str(),
                error = %err,
                "a start raced a suspension and the VM could not be stopped; it may be running"
            ),
        }
    }

    async fn stop(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(), crate::proxmox::ProxmoxError> {
        let stop = self.client.stop_vm(&self.node, self.vmid).await?;
        self.client.wait_task(&stop, deadline).await.map(|_| ())
    }
}
