//! `POST /api/v1/vms/{id}/power`: a customer (or an operator) starts, stops, shuts down or
//! reboots a VM. Ownership is checked like every VM endpoint, a suspended VM refuses, and each
//! action is audited. Proxmox errors go to the log, never to the caller.

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
use crate::store::services::{self, Service};

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
    send(&state, &service.cluster, &node, vmid, action).await?;
    let client = addr.to_string();
    audit::record(
        &state.store,
        audit::Entry {
            actor: &me.actor(),
            action: "vm.power",
            target: Some(&format!("service:{id}")),
            detail: json!({ "action": action.as_str() }),
            client: Some(&client),
        },
    )
    .await;
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

async fn send(
    state: &AppState,
    cluster: &str,
    node: &str,
    vmid: u32,
    action: PowerAction,
) -> ApiResult<()> {
    let client = state.inventory.client(cluster).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("service names unknown cluster {cluster:?}"))
    })?;
    let result = match action {
        PowerAction::Start => client.start_vm(node, vmid).await,
        PowerAction::Stop => client.stop_vm(node, vmid).await,
        PowerAction::Shutdown => client.shutdown_vm(node, vmid).await,
        PowerAction::Reboot => client.reboot_vm(node, vmid).await,
    };
    result.map(|_| ()).map_err(|err| {
        ApiError::Internal(anyhow::anyhow!(
            "power {} of {cluster}/{vmid}: {err}",
            action.as_str()
        ))
    })
}
