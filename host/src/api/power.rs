//! `POST /api/v1/vms/{id}/power`: a customer (or an operator) starts, stops, shuts down or
//! reboots a VM they may use; the rules and the sequence are the lifecycle's
//! ([`crate::lifecycle::power`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody, VisibleService};
use crate::lifecycle::power::PowerError;
use crate::service_state::PowerAction;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    action: PowerAction,
}

/// A power action accepted by the cluster.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PowerAccepted {
    id: i64,
    action: PowerAction,
}

/// Asks the cluster for the action and answers 202 once Proxmox accepted the task.
#[utoipa::path(post, path = "/vms/{id}/power", tag = "vms", request_body = PowerRequest,
    params(("id" = i64, Path, description = "The VM's (service's) id")),
    responses(
        (status = 202, description = "Accepted by the cluster", body = PowerAccepted),
        (status = 409, description = "Not possible now (e.g. starting a running VM), with the reason", body = super::openapi::ErrorBody),
    ))]
pub async fn power(
    State(state): State<AppState>,
    VisibleService { me, service }: VisibleService,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody<PowerRequest>,
) -> ApiResult<(StatusCode, Json<PowerAccepted>)> {
    let action = body.action;
    state
        .lifecycle
        .power(&service, action, &me.actor(), &addr.to_string())
        .await
        .map_err(|err| match err {
            PowerError::Refused(reason) => ApiError::Conflict(reason),
            PowerError::Failed(err) => ApiError::Internal(err),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PowerAccepted {
            id: service.id,
            action,
        }),
    ))
}
