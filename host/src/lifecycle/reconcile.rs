//! The reconciler: compares what the database says about services with what the clusters
//! report, and keeps the last report of the differences (drift) for operators.
//!
//! It only reads. A VM missing for a live service, a VM carrying our tag that no service owns,
//! or a VM in the wrong power state is reported, never repaired: deciding between "the database
//! is wrong" and "the cluster is wrong" is an operator's call. Services with an unfinished job
//! are skipped, since they are expected to be in between states.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use super::Lifecycle;
use super::vm::{TAG, marked_service};
use crate::inventory::{Unreachable, VmView};
use crate::proxmox::ProxmoxError;
use crate::service_state::ServiceState;
use crate::store::jobs;
use crate::store::services::Service;

/// One difference between a service and its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// An active or suspended service whose VM is not on its cluster.
    MissingVm {
        service_id: i64,
        state: ServiceState,
        cluster: String,
        vmid: Option<u32>,
    },
    /// A VM with our tag (or a service marker) that belongs to no service.
    UnknownVm {
        cluster: String,
        node: String,
        vmid: u32,
        name: Option<String>,
        /// The service named by the VM's description marker, if it carries one.
        marker_service: Option<i64>,
    },
    /// The VM's power state is not what the service's state says it should be.
    PowerMismatch {
        service_id: i64,
        state: ServiceState,
        cluster: String,
        vmid: u32,
        expected: &'static str,
        actual: String,
    },
}

/// The outcome of one comparison.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// Unix seconds of the comparison.
    pub checked_at: i64,
    pub drift: Vec<Drift>,
    /// Clusters that did not answer: nothing on them was compared.
    pub unreachable: Vec<Unreachable>,
}

/// The latest report, shared with the API.
pub(super) type LastReport = watch::Sender<Option<Arc<DriftReport>>>;

impl Lifecycle {
    /// The last report, if a comparison has run.
    pub fn drift(&self) -> Option<Arc<DriftReport>> {
        self.inner.drift.borrow().clone()
    }

    /// Compares now, keeps the report as the last one and returns it.
    pub async fn reconcile(&self) -> Result<Arc<DriftReport>, crate::store::StoreError> {
        let (services, busy) = self
            .inner
            .store
            .transaction(|tx| async move {
                let services = crate::store::services::list(&tx, None).await?;
                let mut busy = HashSet::new();
                for service in &services {
                    if jobs::unfinished_for_service(&tx, service.id)
                        .await?
                        .is_some()
                    {
                        busy.insert(service.id);
                    }
                }
                Ok::<_, crate::store::StoreError>((services, busy))
            })
            .await?;
        self.remember_nodes().await;
        let gathered = self.inner.inventory.vms().await;
        let mut drift = compare(&services, &busy, &gathered.items, &gathered.unreachable);
        self.read_markers(&mut drift).await;
        let report = Arc::new(DriftReport {
            checked_at: crate::store::now(),
            drift,
            unreachable: gathered.unreachable,
        });
        if !report.drift.is_empty() {
            tracing::warn!(
                count = report.drift.len(),
                "the clusters differ from the services"
            );
        }
        self.inner.drift.send_replace(Some(report.clone()));
        Ok(report)
    }

    /// Records the nodes each cluster reports, so their last known state outlives an outage.
    async fn remember_nodes(&self) {
        let nodes = self.inner.inventory.nodes().await;
        let seen = crate::inventory::reported_nodes(&nodes.items);
        let recorded = crate::store::nodes::record(&self.inner.store, &seen).await;
        if let Err(err) = recorded {
            tracing::warn!(error = %err, "cannot record the clusters' nodes");
        }
    }

    /// For unknown VMs, reads their description for a service marker (which service built it).
    async fn read_markers(&self, drift: &mut [Drift]) {
        for item in drift.iter_mut() {
            let Drift::UnknownVm {
                cluster,
                node,
                vmid,
                marker_service,
                ..
            } = item
            else {
                continue;
            };
            let Some(client) = self.inner.inventory.client(cluster) else {
                continue;
            };
            match client.vm_config(node, *vmid).await {
                Ok(config) => {
                    *marker_service = config.get("description").and_then(marked_service);
                }
                Err(ProxmoxError::NotFound { .. }) => {}
                Err(err) => {
                    tracing::debug!(vmid, error = %err, "cannot read an unknown VM's description");
                }
            }
        }
    }
}

fn tagged(vm: &VmView) -> bool {
    vm.tags
        .as_deref()
        .is_some_and(|tags| tags.split([';', ',', ' ']).any(|t| t == TAG))
}

/// The drift between `services` and the VMs the reachable clusters reported.
fn compare(
    services: &[Service],
    busy: &HashSet<i64>,
    vms: &[VmView],
    unreachable: &[Unreachable],
) -> Vec<Drift> {
    let by_id: HashMap<(&str, u32), &VmView> = vms
        .iter()
        .map(|vm| ((vm.cluster.as_str(), vm.vmid), vm))
        .collect();
    let owned: HashSet<(&str, u32)> = services
        .iter()
        .filter_map(|s| Some((s.cluster.as_str(), s.vmid?)))
        .collect();
    let mut drift = Vec::new();
    for service in services {
        let live = service.state.holds_vm();
        let answered = !unreachable.iter().any(|u| u.cluster == service.cluster);
        if !live || !answered || busy.contains(&service.id) {
            continue;
        }
        let vm = service
            .vmid
            .and_then(|vmid| by_id.get(&(service.cluster.as_str(), vmid)));
        let Some(vm) = vm else {
            drift.push(Drift::MissingVm {
                service_id: service.id,
                state: service.state,
                cluster: service.cluster.clone(),
                vmid: service.vmid,
            });
            continue;
        };
        let actual = vm.status.clone().unwrap_or_default();
        let wanted = if service.state.vm_should_run(service.stopped_by_owner) {
            "running"
        } else {
            "stopped"
        };
        let expected = (actual != wanted).then_some(wanted);
        if let Some(expected) = expected {
            drift.push(Drift::PowerMismatch {
                service_id: service.id,
                state: service.state,
                cluster: service.cluster.clone(),
                vmid: vm.vmid,
                expected,
                actual,
            });
        }
    }
    for vm in vms {
        if tagged(vm) && !vm.template && !owned.contains(&(vm.cluster.as_str(), vm.vmid)) {
            drift.push(Drift::UnknownVm {
                cluster: vm.cluster.clone(),
                node: vm.node.clone(),
                vmid: vm.vmid,
                name: vm.name.clone(),
                marker_service: None,
            });
        }
    }
    drift
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(id: i64, state: ServiceState, vmid: Option<u32>) -> Service {
        Service {
            id,
            owner_id: 1,
            name: format!("s{id}"),
            cluster: "c".into(),
            node: Some("n".into()),
            vmid,
            plan: None,
            state,
            template: None,
            hostname: None,
            external_ref: None,
            created_at: 0,
            stopped_by_owner: false,
        }
    }

    fn vm(vmid: u32, status: &str, tags: Option<&str>) -> VmView {
        VmView {
            cluster: "c".into(),
            node: "n".into(),
            vmid,
            name: None,
            status: Some(status.into()),
            template: false,
            tags: tags.map(str::to_owned),
            cores: None,
            memory_bytes: None,
            disk_bytes: None,
        }
    }

    #[test]
    fn missing_unknown_and_mispowered_vms_are_reported_and_busy_gone_or_owner_stopped_are_not() {
        let services = [
            service(1, ServiceState::Active, Some(101)),
            service(2, ServiceState::Active, Some(102)),
            service(3, ServiceState::Suspended, Some(103)),
            service(4, ServiceState::Suspended, Some(104)),
            service(5, ServiceState::Terminated, None),
            service(6, ServiceState::Active, Some(106)),
            Service {
                stopped_by_owner: true,
                ..service(7, ServiceState::Active, Some(107))
            },
            Service {
                stopped_by_owner: true,
                ..service(8, ServiceState::Active, Some(108))
            },
        ];
        let vms = [
            vm(101, "running", Some("porthole")),
            vm(103, "running", Some("porthole")),
            vm(104, "stopped", Some("porthole")),
            vm(106, "stopped", Some("porthole")),
            vm(107, "stopped", Some("porthole")),
            vm(108, "running", Some("porthole")),
            vm(200, "running", Some("web;porthole")),
            vm(201, "running", Some("other")),
        ];
        let busy = HashSet::from([6]);
        let drift = compare(&services, &busy, &vms, &[]);
        assert_eq!(
            drift,
            vec![
                Drift::MissingVm {
                    service_id: 2,
                    state: ServiceState::Active,
                    cluster: "c".into(),
                    vmid: Some(102)
                },
                Drift::PowerMismatch {
                    service_id: 3,
                    state: ServiceState::Suspended,
                    cluster: "c".into(),
                    vmid: 103,
                    expected: "stopped",
                    actual: "running".into()
                },
                Drift::PowerMismatch {
                    service_id: 8,
                    state: ServiceState::Active,
                    cluster: "c".into(),
                    vmid: 108,
                    expected: "stopped",
                    actual: "running".into()
                },
                Drift::UnknownVm {
                    cluster: "c".into(),
                    node: "n".into(),
                    vmid: 200,
                    name: None,
                    marker_service: None
                },
            ]
        );
    }

    #[test]
    fn an_unreachable_cluster_reports_nothing_missing() {
        let services = [service(1, ServiceState::Active, Some(101))];
        let unreachable = [Unreachable {
            cluster: "c".into(),
            error: "timeout".into(),
        }];
        assert!(compare(&services, &HashSet::new(), &[], &unreachable).is_empty());
    }
}
