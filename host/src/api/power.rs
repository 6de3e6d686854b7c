//! `POST /api/v1/vms/{id}/power`: a customer (or an operator) starts, stops, shuts down or
//! reboots a VM. Ownership is checked like every VM endpoint, a suspended VM refuses, and each
//! action is audited. Proxmox errors go to the log, never to the caller.
//!
//! A suspension can land while a start is on its way to Proxmox: the suspend job stops the VM,
//! then the late start runs it again. So a start or reboot looks at the service once more after
//! Proxmox took it, and if the service is no longer active it stops the VM itself and refuses.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody};
use crate::audit;
use crate::auth::Identity;
use crate::proxmox::{Client, Upid};
use crate::store::services::{self, Service};

/// How long a start that raced a suspension may take before the VM is stopped again.
const UNDO_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    Start,
    Stop,
    Shutdown,
    Reboot,
}

impl PowerAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Shutdown => "shutdown",
            Self::Reboot => "reboot",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    action: PowerAction,
}

/// Asks the cluster for the action and answers 202 once Proxmox accepted the task.
pub async fn power(
    State(state): State<AppState>,
    me: Identity,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<PowerRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let service = state.store.call(move |c| services::get(c, id)).await?;
    // Another customer's VM and a missing one answer alike.
    let service = service
        .filter(|s| me.is_admin() || s.owner_id == me.user.id)
        .ok_or(ApiError::NotFound)?;
    let (node, vmid) = powerable(&service)?;
    let action = body.action;
    let client = cluster_client(&state, &service.cluster)?;
    let upid = send(client, &node, vmid, action).await?;
    let undone = match action {
        PowerAction::Start | PowerAction::Reboot => {
            undo_if_suspended(&state, client, service.id, (&node, vmid), &upid).await?
        }
        PowerAction::Stop | PowerAction::Shutdown => false,
    };
    let client_addr = addr.to_string();
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "vm.power",
            target: Some(&format!("service:{id}")),
            detail: json!({ "action": action.as_str(), "undone": undone }),
            client: Some(&client_addr),
        },
    )
    .await;
    if undone {
        return Err(ApiError::Conflict(
            "the VM was suspended meanwhile and is stopped".into(),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "action": action.as_str() })),
    ))
}

/// Only an active, provisioned service has power buttons.
fn powerable(service: &Service) -> ApiResult<(String, u32)> {
    match service.state.as_str() {
        "active" => {}
        "suspended" => return Err(ApiError::Conflict("the VM is suspended".into())),
        _ => return Err(ApiError::Conflict("the VM is not active".into())),
    }
    match (&service.node, service.vmid) {
        (Some(node), Some(vmid)) => Ok((node.clone(), vmid)),
        _ => Err(ApiError::Conflict("the VM is not provisioned yet".into())),
    }
}

fn cluster_client<'a>(state: &'a AppState, cluster: &str) -> ApiResult<&'a Client> {
    state.inventory.client(cluster).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("service names unknown cluster {cluster:?}"))
    })
}

async fn send(client: &Client, node: &str, vmid: u32, action: PowerAction) -> ApiResult<Upid> {
    let result = match action {
        PowerAction::Start => client.start_vm(node, vmid).await,
        PowerAction::Stop => client.stop_vm(node, vmid).await,
        PowerAction::Shutdown => client.shutdown_vm(node, vmid).await,
        PowerAction::Reboot => client.reboot_vm(node, vmid).await,
    };
    result.map_err(|err| {
        ApiError::Internal(anyhow::anyhow!(
            "power {} of {}/{vmid}: {err}",
            action.as_str(),
            client.cluster()
        ))
    })
}

/// Stops the VM again if its service stopped being active while the start was on its way.
/// Waits for the start first: Proxmox runs a VM's tasks one at a time, but not necessarily in
/// the order they were asked for.
async fn undo_if_suspended(
    state: &AppState,
    client: &Client,
    id: i64,
    (node, vmid): (&str, u32),
    started: &Upid,
) -> ApiResult<bool> {
    let now = state.store.call(move |c| services::get(c, id)).await?;
    if now.is_some_and(|s| s.state == "active") {
        return Ok(false);
    }
    let deadline = tokio::time::Instant::now() + UNDO_DEADLINE;
    let undo = async {
        // A start that failed leaves nothing to undo, but the stop below is harmless either way.
        let _ = client.wait_task(started, deadline).await;
        let stop = client.stop_vm(node, vmid).await?;
        client.wait_task(&stop, deadline).await
    };
    undo.await.map_err(|err| {
        ApiError::Internal(anyhow::anyhow!(
            "stopping {}/{vmid} after a start raced its suspension: {err}",
            client.cluster()
        ))
    })?;
    tracing::warn!(
        service = id,
        "a start raced a suspension; the VM was stopped again"
    );
    Ok(true)
}
