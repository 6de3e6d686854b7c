//! Status, nodes and VMs. Operators see the clusters as they are; a customer sees only their own
//! services, and never a node name, address or Proxmox id.

use crate::lifecycle::addresses::PoolUse;
use crate::lifecycle::job::JobKind;
use crate::lifecycle::reverse_dns::VmAddress;
use crate::lifecycle::self_service::busy_with;
use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Admin, VisibleService};
use crate::auth::Identity;
use crate::inventory::{ClusterStatus, NodeView, Unreachable, VmView};
use crate::lifecycle::access::{Services, SshAccess};
use crate::proxmox::VmPowerState;
use crate::service_state::{ServiceState, VmActions};
use crate::store::nodes::KnownNode;
use crate::store::services::{self, Service};

/// This daemon and whether each cluster answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DaemonStatus {
    version: &'static str,
    uptime_secs: u64,
    clusters: Vec<ClusterStatus>,
}

#[utoipa::path(get, path = "/status", tag = "inventory",
    responses((status = 200, description = "Version, uptime and the clusters' reachability", body = DaemonStatus)))]
pub async fn status(State(state): State<AppState>, _: Admin) -> Json<DaemonStatus> {
    Json(DaemonStatus {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        clusters: state.inventory.status().await,
    })
}

/// The nodes of the clusters that answered, and for those that did not, what they last reported.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NodeList {
    nodes: Vec<NodeView>,
    unreachable: Vec<Unreachable>,
    last_known: Vec<KnownNode>,
}

/// The nodes of every cluster that answered; for one that did not, what it last reported.
#[utoipa::path(get, path = "/nodes", tag = "inventory",
    responses((status = 200, description = "The clusters' nodes", body = NodeList)))]
pub async fn nodes(State(state): State<AppState>, _: Admin) -> ApiResult<Json<NodeList>> {
    let gathered = state.inventory.nodes().await;
    let seen = crate::inventory::reported_nodes(&gathered.items);
    // Remembering is a side effect of looking: if it fails, the answer is still worth giving.
    if let Err(err) = crate::store::nodes::record(&state.store, &seen).await {
        tracing::warn!(error = %err, "cannot record the clusters' nodes");
    }
    let known = crate::store::nodes::known(&state.store).await?;
    let last_known: Vec<_> = known
        .into_iter()
        .filter(|n| gathered.unreachable.iter().any(|u| u.cluster == n.cluster))
        .collect();
    Ok(Json(NodeList {
        nodes: gathered.items,
        unreachable: gathered.unreachable,
        last_known,
    }))
}

/// A customer's VM: our service, with the power state the cluster reports.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerVm {
    pub id: i64,
    pub name: String,
    pub state: ServiceState,
    pub plan: Option<String>,
    /// `running`, `stopped`, or `unknown` when the cluster cannot be asked.
    pub power: String,
    pub cores: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
    /// How to reach it over SSH, once its tunnel gives it a public name.
    pub ssh: Option<SshAccess>,
    /// Its public addresses (IPv4 and IPv6), drawn at its order, with their reverse DNS.
    pub addresses: Vec<VmAddress>,
    /// The template its disk was last installed from.
    pub template: Option<String>,
    /// What its owner may do with it now.
    pub actions: VmActions,
}

/// An operator's view of a VM: what the cluster reports, with our service when there is one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperatorVm {
    #[serde(flatten)]
    pub vm: VmView,
    pub service: Option<Service>,
    pub ssh: Option<SshAccess>,
}

/// Operators get every VM on the clusters; a customer, their own VMs.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VmList {
    Operator(OperatorVmList),
    Customer(CustomerVmList),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorVmList {
    vms: Vec<OperatorVm>,
    unreachable: Vec<Unreachable>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CustomerVmList {
    vms: Vec<CustomerVm>,
}

#[utoipa::path(get, path = "/vms", tag = "vms",
    responses((status = 200, description = "Operators: every VM on the clusters, with its service. Customers: their own VMs, with no Proxmox detail", body = VmList)))]
pub async fn vms(State(state): State<AppState>, me: Identity) -> ApiResult<Json<VmList>> {
    if me.is_admin() {
        let gathered = state.inventory.vms().await;
        let services = services::list(&state.store, None).await?;
        let mut access = state.lifecycle.ssh_access(Services::All).await?;
        let vms: Vec<OperatorVm> = gathered
            .items
            .into_iter()
            .map(|vm| {
                let service = services
                    .iter()
                    .find(|s| s.cluster == vm.cluster && s.vmid == Some(vm.vmid))
                    .cloned();
                let ssh = service.as_ref().and_then(|s| access.remove(&s.id));
                OperatorVm { vm, service, ssh }
            })
            .collect();
        return Ok(Json(VmList::Operator(OperatorVmList {
            vms,
            unreachable: gathered.unreachable,
        })));
    }
    let owner = me.user.id;
    let services = services::list(&state.store, Some(owner)).await?;
    let mut access = state.lifecycle.ssh_access(Services::OwnedBy(owner)).await?;
    let (live, _) = live_vms(&state, &services).await;
    // Which cluster failed is an operator's concern; `power: unknown` tells the customer enough.
    let mut vms = Vec::with_capacity(services.len());
    for service in &services {
        let held = Kept::of(&state, service.id).await?;
        vms.push(customer_vm(
            service,
            access.remove(&service.id),
            &live,
            held,
        ));
    }
    Ok(Json(VmList::Customer(CustomerVmList { vms })))
}

/// One VM: operators get the service, the cluster's view and the actions; its owner gets the
/// customer's view.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // One per answer, moved straight into its JSON.
pub enum VmDetail {
    Operator(OperatorVmDetail),
    Customer(CustomerVm),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OperatorVmDetail {
    service: Service,
    vm: Option<VmView>,
    ssh: Option<SshAccess>,
    addresses: Vec<VmAddress>,
    actions: VmActions,
}

#[utoipa::path(get, path = "/vms/{id}", tag = "vms",
    params(("id" = i64, Path, description = "The VM's (service's) id")),
    responses((status = 200, description = "The VM", body = VmDetail)))]
pub async fn vm(
    State(state): State<AppState>,
    VisibleService { me, service }: VisibleService,
) -> ApiResult<Json<VmDetail>> {
    let id = service.id;
    let ssh = state
        .lifecycle
        .ssh_access(Services::One(id))
        .await?
        .remove(&id);
    let (live, _) = live_vms(&state, std::slice::from_ref(&service)).await;
    if me.is_admin() {
        let vm = live
            .get(&(service.cluster.clone(), service.vmid.unwrap_or_default()))
            .cloned();
        let held = Kept::of(&state, id).await?;
        let actions = actions(&service, vm.as_ref(), held.busy);
        return Ok(Json(VmDetail::Operator(OperatorVmDetail {
            service,
            vm,
            ssh,
            addresses: held.addresses,
            actions,
        })));
    }
    let held = Kept::of(&state, id).await?;
    Ok(Json(VmDetail::Customer(customer_vm(
        &service, ssh, &live, held,
    ))))
}

type LiveVms = HashMap<(String, u32), VmView>;

/// The cluster's view of these services' VMs, one query per cluster involved.
async fn live_vms(state: &AppState, services: &[Service]) -> (LiveVms, Vec<Unreachable>) {
    let mut clusters: Vec<&str> = services.iter().map(|s| s.cluster.as_str()).collect();
    clusters.sort_unstable();
    clusters.dedup();
    let mut live = HashMap::new();
    let mut unreachable = Vec::new();
    for cluster in clusters {
        match state.inventory.vms_of(cluster).await {
            Ok(vms) => live.extend(
                vms.into_iter()
                    .map(|(vmid, vm)| ((cluster.to_owned(), vmid), vm)),
            ),
            Err(err) => {
                tracing::warn!(cluster, error = %err, "cannot read VM states");
                unreachable.push(Unreachable {
                    cluster: cluster.to_owned(),
                    error: err.to_string(),
                });
            }
        }
    }
    (live, unreachable)
}

/// What the store knows of a service's VM besides the cluster's view.
struct Kept {
    busy: Option<JobKind>,
    addresses: Vec<VmAddress>,
}

impl Kept {
    async fn of(state: &AppState, service_id: i64) -> ApiResult<Self> {
        Ok(Self {
            busy: busy_with(&state.store, service_id).await?,
            addresses: state.lifecycle.addresses_of(service_id).await?,
        })
    }
}

fn customer_vm(
    service: &Service,
    ssh: Option<SshAccess>,
    live: &LiveVms,
    held: Kept,
) -> CustomerVm {
    let vm = service
        .vmid
        .and_then(|vmid| live.get(&(service.cluster.clone(), vmid)));
    CustomerVm {
        id: service.id,
        name: service.name.clone(),
        state: service.state,
        plan: service.plan.clone(),
        power: vm
            .and_then(|vm| vm.status.clone())
            .unwrap_or_else(|| "unknown".into()),
        cores: vm.and_then(|vm| vm.cores),
        memory_bytes: vm.and_then(|vm| vm.memory_bytes),
        disk_bytes: vm.and_then(|vm| vm.disk_bytes),
        ssh,
        addresses: held.addresses,
        template: service.template.clone(),
        actions: actions(service, vm, held.busy),
    }
}

/// What the owner may do with the service's VM, as the cluster last reported it, while the
/// customer's operation `busy` (if any) runs.
fn actions(service: &Service, vm: Option<&VmView>, busy: Option<JobKind>) -> VmActions {
    let power = vm
        .and_then(|vm| vm.status.as_deref())
        .map_or(VmPowerState::Unknown, VmPowerState::from_status);
    VmActions::of(service.usable_vm().map(drop), power).while_busy(busy)
}

/// The address pools and how much of each is in use.
#[utoipa::path(get, path = "/ip-pools", operation_id = "list_ip_pools", tag = "vms",
    responses((status = 200, description = "The pools", body = Vec<PoolUse>)))]
pub async fn ip_pools(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Vec<PoolUse>>> {
    Ok(Json(state.lifecycle.pool_use().await?))
}
