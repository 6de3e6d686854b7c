//! A customer's own operations on their VM: reinstall, password reset, snapshots. Each answers in
//! the customer's words; what Proxmox said goes to the log and, for jobs, to the operators' view.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ClientAddr, JsonBody, QueryParams, VisibleService};
use super::lifecycle::{accepted, operation_key};
use crate::auth::Identity;
use crate::lifecycle::backups::Backup;
use crate::lifecycle::catalogue::BackupSchedule;
use crate::lifecycle::job::{JobKind, SnapshotSpec};
use crate::lifecycle::reverse_dns::{ReverseDnsSpec, normalize_hostname};
use crate::lifecycle::self_service::{Graphs, SelfServiceError, Snapshot};
use crate::lifecycle::{Operation, OrderReceipt};
use crate::proxmox::{Timeframe, check_snapshot_name};
use crate::store::services::Service;
use crate::store::{catalogue, jobs};

impl From<SelfServiceError> for ApiError {
    fn from(err: SelfServiceError) -> Self {
        match err {
            SelfServiceError::Refused(reason) => ApiError::Conflict(reason),
            SelfServiceError::NoSuchSnapshot
            | SelfServiceError::NoSuchBackup
            | SelfServiceError::NoSuchAddress => ApiError::NotFound,
            SelfServiceError::Invalid(reason) => ApiError::Unprocessable(reason),
            SelfServiceError::Failed(err) => ApiError::Internal(err),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReinstallRequest {
    /// One of the templates the VM's plan offers.
    template: String,
    /// Keys from the owner's keychain to install for the VM's user.
    #[serde(default)]
    ssh_key_ids: Vec<i64>,
}

/// A reinstall under way, with the new password (shown this once; a repeated request with the
/// same `Idempotency-Key` gets the receipt without it).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReinstallAccepted {
    #[serde(flatten)]
    receipt: OrderReceipt,
    /// The user the password is for.
    username: String,
    password: Option<String>,
}

/// Replaces the VM's disk with a fresh copy of a template: everything on it is lost. The VM keeps
/// its name, addresses, tunnel and DNS; its user gets the chosen keys and a new password.
/// Progress streams on `/services/{id}/events`.
#[utoipa::path(post, path = "/vms/{id}/reinstall", tag = "vms", request_body = ReinstallRequest,
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this reinstall"),
    ),
    responses(
        (status = 202, description = "Accepted; the password is in this answer only", body = ReinstallAccepted),
        (status = 200, description = "The key had been seen: the same reinstall", body = ReinstallAccepted),
        (status = 409, description = "Not possible now, with the reason", body = super::openapi::ErrorBody),
    ))]
pub async fn reinstall(
    State(state): State<AppState>,
    VisibleService { me, service }: VisibleService,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ReinstallRequest>,
) -> ApiResult<(StatusCode, Json<ReinstallAccepted>)> {
    let ssh_keys =
        super::ssh_keys::chosen_lines(&state.store, service.owner_id, &body.ssh_key_ids).await?;
    let key = operation_key(&headers, &format!("reinstall:{}", service.id))?;
    if jobs::by_key(&state.store, &key).await?.is_none() {
        state
            .lifecycle
            .check_reinstall_template(&service, &body.template)
            .await?;
    }
    let password = crate::guest_password::generate();
    let operation = Operation::Reinstall {
        service: service.id,
        template: body.template,
        ssh_keys,
        password_hash: crate::guest_password::crypt_hash(&password),
    };
    let receipt = state.lifecycle.submit(&key, &me.actor(), operation).await?;
    let username = guest_user(&state, &service).await?;
    Ok((
        accepted(&receipt),
        Json(ReinstallAccepted {
            password: receipt.created.then_some(password),
            receipt,
            username,
        }),
    ))
}

/// The user cloud-init made on the VM at its order.
async fn guest_user(state: &AppState, service: &Service) -> ApiResult<String> {
    crate::lifecycle::self_service::provisioned_user(&state.store, service.id)
        .await?
        .ok_or_else(|| ApiError::Conflict("this VM was not built by an order here".into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// `root` (the default) or the user made at the VM's order.
    username: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NewPassword {
    username: String,
    /// Shown this once; it is not kept.
    password: String,
}

/// Sets a new password in the running VM through its QEMU guest agent. Without an answering
/// agent the reason comes back (409), and a reinstall is the way to a known password.
#[utoipa::path(post, path = "/vms/{id}/password", operation_id = "reset_vm_password", tag = "vms", request_body = PasswordRequest,
    params(("id" = i64, Path, description = "The VM's (service's) id")),
    responses(
        (status = 200, description = "Set; the password is in this answer only", body = NewPassword),
        (status = 409, description = "The VM is not running or its guest agent does not answer, with the reason", body = super::openapi::ErrorBody),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    VisibleService { me, service }: VisibleService,
    ClientAddr(client): ClientAddr,
    JsonBody(body): JsonBody<PasswordRequest>,
) -> ApiResult<Json<NewPassword>> {
    let username = body.username.unwrap_or_else(|| "root".into());
    if username != "root" && username != guest_user(&state, &service).await? {
        return Err(ApiError::BadRequest(
            "the password can be reset for root or the VM's own user".into(),
        ));
    }
    let password = state
        .lifecycle
        .reset_password(&service, &username, &me.actor(), &client.to_string())
        .await?;
    Ok(Json(NewPassword { username, password }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphsQuery {
    /// `hour` (the default; a point a minute), `day` (every 30 min) or `week` (every 3 h).
    #[param(value_type = Option<Timeframe>)]
    timeframe: Option<Timeframe>,
}

/// The VM's CPU, memory, network and disk use over the last hour, day or week.
#[utoipa::path(get, path = "/vms/{id}/graphs", operation_id = "vm_graphs", tag = "vms",
    params(("id" = i64, Path, description = "The VM's (service's) id"), GraphsQuery),
    responses((status = 200, description = "The series", body = Graphs)))]
pub async fn graphs(
    State(state): State<AppState>,
    VisibleService { service, .. }: VisibleService,
    QueryParams(query): QueryParams<GraphsQuery>,
) -> ApiResult<Json<Graphs>> {
    let timeframe = query.timeframe.unwrap_or(Timeframe::Hour);
    Ok(Json(state.lifecycle.graphs(&service, timeframe).await?))
}

/// A VM's snapshots and how many its plan allows.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Snapshots {
    snapshots: Vec<Snapshot>,
    max: u32,
}

/// The VM's snapshots, oldest first.
#[utoipa::path(get, path = "/vms/{id}/snapshots", operation_id = "list_snapshots", tag = "vms",
    params(("id" = i64, Path, description = "The VM's (service's) id")),
    responses((status = 200, description = "The snapshots", body = Snapshots)))]
pub async fn list_snapshots(
    State(state): State<AppState>,
    VisibleService { service, .. }: VisibleService,
) -> ApiResult<Json<Snapshots>> {
    let max = max_snapshots(&state, &service).await?;
    let snapshots = state.lifecycle.snapshots(&service).await?;
    Ok(Json(Snapshots { snapshots, max }))
}

async fn max_snapshots(state: &AppState, service: &Service) -> ApiResult<u32> {
    let plan = match &service.plan {
        Some(name) => catalogue::plan(&state.store, name).await?,
        None => None,
    };
    Ok(plan.map_or(0, |p| p.max_snapshots))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSnapshot {
    /// 2-40 letters, digits, `_` or `-`, starting with a letter.
    name: String,
    #[serde(default)]
    description: String,
}

/// Takes a snapshot of the VM's disks (not its memory), within the plan's maximum.
#[utoipa::path(post, path = "/vms/{id}/snapshots", operation_id = "take_snapshot", tag = "vms", request_body = NewSnapshot,
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this request"),
    ),
    responses(
        (status = 202, description = "Accepted", body = OrderReceipt),
        (status = 409, description = "Over the plan's maximum, a name taken, or the VM busy (a backup running), with the reason", body = super::openapi::ErrorBody),
    ))]
pub async fn take_snapshot(
    State(state): State<AppState>,
    VisibleService { me, service }: VisibleService,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewSnapshot>,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    check_snapshot_name(&body.name).map_err(ApiError::BadRequest)?;
    if body.description.chars().count() > 200 {
        return Err(ApiError::BadRequest(
            "a snapshot's description has at most 200 characters".into(),
        ));
    }
    let spec = SnapshotSpec {
        name: body.name,
        description: body.description,
    };
    snapshot_job(&state, &me, &service, &headers, JobKind::Snapshot, spec).await
}

/// Names the snapshot being rolled back to, so a click cannot roll back by accident.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The snapshot's name again.
    confirm: String,
}

/// Returns the VM's disks to a snapshot: everything written since is lost. A running VM runs
/// again afterwards.
#[utoipa::path(post, path = "/vms/{id}/snapshots/{name}/rollback", operation_id = "rollback_snapshot", tag = "vms", request_body = RollbackRequest,
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("name" = String, Path, description = "The snapshot"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this request"),
    ),
    responses(
        (status = 202, description = "Accepted", body = OrderReceipt),
        (status = 400, description = "`confirm` does not name the snapshot", body = super::openapi::ErrorBody),
    ))]
pub async fn rollback(
    State(state): State<AppState>,
    me: Identity,
    Path((id, name)): Path<(i64, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RollbackRequest>,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    if body.confirm != name {
        return Err(ApiError::BadRequest(
            "confirm the rollback by giving the snapshot's name as \"confirm\"".into(),
        ));
    }
    let service = VisibleService::load(&state, &me, id).await?;
    let spec = SnapshotSpec {
        name,
        description: String::new(),
    };
    snapshot_job(&state, &me, &service, &headers, JobKind::Rollback, spec).await
}

/// Removes a snapshot; the VM as it runs is not touched.
#[utoipa::path(delete, path = "/vms/{id}/snapshots/{name}", operation_id = "delete_snapshot", tag = "vms",
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("name" = String, Path, description = "The snapshot"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this request"),
    ),
    responses((status = 202, description = "Accepted", body = OrderReceipt)))]
pub async fn delete_snapshot(
    State(state): State<AppState>,
    me: Identity,
    Path((id, name)): Path<(i64, String)>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    let service = VisibleService::load(&state, &me, id).await?;
    let spec = SnapshotSpec {
        name,
        description: String::new(),
    };
    snapshot_job(
        &state,
        &me,
        &service,
        &headers,
        JobKind::DeleteSnapshot,
        spec,
    )
    .await
}

/// Checks the request against the VM as it is, then queues the job.
async fn snapshot_job(
    state: &AppState,
    me: &Identity,
    service: &Service,
    headers: &HeaderMap,
    kind: JobKind,
    snapshot: SnapshotSpec,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    check_snapshot_name(&snapshot.name).map_err(|_| ApiError::NotFound)?;
    let key = operation_key(
        headers,
        &format!("{}:{}:{}", kind.as_str(), service.id, snapshot.name),
    )?;
    // A repeated request is answered from its job, whatever the VM looks like since.
    if jobs::by_key(&state.store, &key).await?.is_none() {
        let max = max_snapshots(state, service).await?;
        state
            .lifecycle
            .check_snapshot_request(service, kind, &snapshot.name, max)
            .await?;
    }
    let operation = Operation::Snapshot {
        service: service.id,
        kind,
        snapshot,
    };
    let receipt = state.lifecycle.submit(&key, &me.actor(), operation).await?;
    Ok((accepted(&receipt), Json(receipt)))
}

/// A VM's backups and what its plan keeps.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Backups {
    /// Oldest first.
    backups: Vec<Backup>,
    /// How many are kept; a new one beyond this removes the oldest.
    kept: u32,
    schedule: BackupSchedule,
}

/// The VM's backups, with their size and age.
#[utoipa::path(get, path = "/vms/{id}/backups", operation_id = "list_backups", tag = "vms",
    params(("id" = i64, Path, description = "The VM's (service's) id")),
    responses(
        (status = 200, description = "The backups", body = Backups),
        (status = 409, description = "The VM's plan offers no backups", body = super::openapi::ErrorBody),
    ))]
pub async fn list_backups(
    State(state): State<AppState>,
    VisibleService { service, .. }: VisibleService,
) -> ApiResult<Json<Backups>> {
    let (backups, kept) = state.lifecycle.backups(&service).await?;
    let schedule = match &service.plan {
        Some(name) => catalogue::plan(&state.store, name).await?,
        None => None,
    }
    .map_or(BackupSchedule::None, |p| p.backup_schedule);
    Ok(Json(Backups {
        backups,
        kept,
        schedule,
    }))
}

/// Backs the VM up now (a running VM keeps running); the oldest backup beyond the plan's number
/// is removed afterwards.
#[utoipa::path(post, path = "/vms/{id}/backups", operation_id = "take_backup", tag = "vms",
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this request"),
    ),
    responses(
        (status = 202, description = "Accepted", body = OrderReceipt),
        (status = 409, description = "No backups on this plan, another operation running, or the VM busy, with the reason", body = super::openapi::ErrorBody),
    ))]
pub async fn take_backup(
    State(state): State<AppState>,
    VisibleService { me, service }: VisibleService,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    let key = operation_key(&headers, &format!("backup:{}", service.id))?;
    if jobs::by_key(&state.store, &key).await?.is_none() {
        state.lifecycle.check_backup_request(&service).await?;
    }
    let operation = Operation::Backup {
        service: service.id,
    };
    let receipt = state.lifecycle.submit(&key, &me.actor(), operation).await?;
    Ok((accepted(&receipt), Json(receipt)))
}

/// Names the VM being overwritten, so a click cannot restore by accident.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The VM's name.
    confirm: String,
}

/// Puts a backup over the VM: everything written since it was taken is lost. The VM is stopped,
/// restored and started again.
#[utoipa::path(post, path = "/vms/{id}/backups/{backup}/restore", operation_id = "restore_backup", tag = "vms", request_body = RestoreRequest,
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("backup" = String, Path, description = "The backup's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this request"),
    ),
    responses(
        (status = 202, description = "Accepted", body = OrderReceipt),
        (status = 400, description = "`confirm` does not name the VM", body = super::openapi::ErrorBody),
    ))]
pub async fn restore(
    State(state): State<AppState>,
    me: Identity,
    Path((id, backup)): Path<(i64, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<RestoreRequest>,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    let service = VisibleService::load(&state, &me, id).await?;
    if body.confirm != service.name {
        return Err(ApiError::BadRequest(
            "confirm the restore by giving the VM's name as \"confirm\"".into(),
        ));
    }
    let key = operation_key(&headers, &format!("restore:{id}:{backup}"))?;
    // A repeated request is answered from its job; the archive is looked up only for a new one.
    let operation = match jobs::by_key(&state.store, &key).await? {
        Some(job) => Operation::Restore {
            service: id,
            archive: job.data.archive.unwrap_or_default(),
        },
        None => Operation::Restore {
            service: id,
            archive: state.lifecycle.backup_archive(&service, &backup).await?,
        },
    };
    let receipt = state.lifecycle.submit(&key, &me.actor(), operation).await?;
    Ok((accepted(&receipt), Json(receipt)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReverseDnsRequest {
    /// A fully qualified host name that resolves back to the address (an A or AAAA record), or
    /// the VM's own name under the provider's zone.
    hostname: String,
}

/// Points the address's reverse DNS (its PTR record) at a host name.
#[utoipa::path(put, path = "/vms/{id}/addresses/{address}/reverse-dns", operation_id = "set_reverse_dns", tag = "vms", request_body = ReverseDnsRequest,
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("address" = String, Path, description = "One of the VM's addresses"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this request"),
    ),
    responses(
        (status = 202, description = "Accepted", body = OrderReceipt),
        (status = 404, description = "The VM holds no such address", body = super::openapi::ErrorBody),
        (status = 409, description = "Not possible for this address, or now, with the reason", body = super::openapi::ErrorBody),
        (status = 422, description = "The name is not a host name, or does not resolve back to the address", body = super::openapi::ErrorBody),
    ))]
pub async fn set_reverse_dns(
    State(state): State<AppState>,
    me: Identity,
    Path((id, address)): Path<(i64, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ReverseDnsRequest>,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    reverse_dns_job(&state, &me, id, &address, &headers, Some(&body.hostname)).await
}

/// Removes the address's reverse DNS (its PTR record).
#[utoipa::path(delete, path = "/vms/{id}/addresses/{address}/reverse-dns", operation_id = "remove_reverse_dns", tag = "vms",
    params(
        ("id" = i64, Path, description = "The VM's (service's) id"),
        ("address" = String, Path, description = "One of the VM's addresses"),
        ("Idempotency-Key" = Option<String>, Header, description = "1-200 characters naming this request"),
    ),
    responses(
        (status = 202, description = "Accepted", body = OrderReceipt),
        (status = 404, description = "The VM holds no such address", body = super::openapi::ErrorBody),
        (status = 409, description = "Not possible for this address, or now, with the reason", body = super::openapi::ErrorBody),
    ))]
pub async fn remove_reverse_dns(
    State(state): State<AppState>,
    me: Identity,
    Path((id, address)): Path<(i64, String)>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    reverse_dns_job(&state, &me, id, &address, &headers, None).await
}

/// Checks the request against the VM's addresses and the name's DNS, then queues the job.
async fn reverse_dns_job(
    state: &AppState,
    me: &Identity,
    id: i64,
    address: &str,
    headers: &HeaderMap,
    hostname: Option<&str>,
) -> ApiResult<(StatusCode, Json<OrderReceipt>)> {
    let service = VisibleService::load(state, me, id).await?;
    let address: std::net::IpAddr = address.parse().map_err(|_| ApiError::NotFound)?;
    let verb = if hostname.is_some() { "set" } else { "remove" };
    let key = operation_key(headers, &format!("reverse_dns:{verb}:{id}:{address}"))?;
    // A repeated request is answered from its job, whatever the name resolves to since; one
    // that reuses the key for another name is refused by `submit`.
    let hostname = match jobs::by_key(&state.store, &key).await? {
        Some(_) => hostname
            .map(normalize_hostname)
            .transpose()
            .map_err(ApiError::Unprocessable)?,
        None => {
            state
                .lifecycle
                .check_reverse_dns_request(&service, address, hostname)
                .await?
        }
    };
    let operation = Operation::ReverseDns {
        service: id,
        spec: ReverseDnsSpec { address, hostname },
    };
    let receipt = state.lifecycle.submit(&key, &me.actor(), operation).await?;
    Ok((accepted(&receipt), Json(receipt)))
}
