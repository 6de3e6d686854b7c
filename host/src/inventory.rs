//! What exists on the configured clusters: reachability, nodes and VMs, read through each
//! cluster's Proxmox client. Clusters are queried concurrently, and one unreachable cluster
//! never hides the others: its failure is reported beside their answers.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::config::ResolvedCluster;
use crate::proxmox::{self, Client, ClusterResource, ProxmoxError, ResourceKind, VmPowerState};

/// One client per configured cluster. Clones share the clients' connections and logins.
#[derive(Clone)]
pub struct Inventory {
    clusters: Vec<(String, Client)>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    pub name: String,
    pub reachable: bool,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// A cluster that did not answer, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unreachable {
    pub cluster: String,
    pub error: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub cluster: String,
    pub node: String,
    pub status: String,
    pub cores: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub uptime_secs: Option<u64>,
}

/// A VM as the cluster reports it (operators' view).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VmView {
    pub cluster: String,
    pub node: String,
    pub vmid: u32,
    pub name: Option<String>,
    pub status: Option<String>,
    pub template: bool,
    pub tags: Option<String>,
    pub cores: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
}

/// Answers gathered from every cluster that answered, and the ones that did not.
#[derive(Debug, Serialize)]
pub struct Gathered<T> {
    pub items: Vec<T>,
    pub unreachable: Vec<Unreachable>,
}

/// Each cluster's `(node, status)` pairs in `nodes`, as the node store records them.
pub fn reported_nodes(nodes: &[NodeView]) -> HashMap<String, Vec<(String, String)>> {
    let mut by_cluster: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for node in nodes {
        by_cluster
            .entry(node.cluster.clone())
            .or_default()
            .push((node.node.clone(), node.status.clone()));
    }
    by_cluster
}

/// How long a status probe may take before the cluster counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

impl Inventory {
    pub fn from_config(clusters: &[ResolvedCluster]) -> anyhow::Result<Self> {
        let clusters = clusters
            .iter()
            .map(|cluster| {
                let client = Client::new(client_settings(cluster)).map_err(|err| {
                    anyhow::anyhow!(
                        "cluster {:?}: cannot set up its client: {err}",
                        cluster.name
                    )
                })?;
                Ok((cluster.name.clone(), client))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { clusters })
    }

    pub fn client(&self, cluster: &str) -> Option<&Client> {
        self.clusters
            .iter()
            .find(|(name, _)| name == cluster)
            .map(|(_, client)| client)
    }

    /// The power state of VM `vmid` on `node` of `cluster`; `Unknown` when the cluster cannot
    /// tell now (what is then asked of the VM finds out, and says so).
    pub async fn power_state(&self, cluster: &str, node: &str, vmid: u32) -> VmPowerState {
        let Some(client) = self.client(cluster) else {
            return VmPowerState::Unknown;
        };
        match client.vm_status(node, vmid).await {
            Ok(status) => status.status,
            Err(err) => {
                tracing::debug!(cluster, vmid, error = %err, "cannot read a VM's power state");
                VmPowerState::Unknown
            }
        }
    }

    pub async fn status(&self) -> Vec<ClusterStatus> {
        join_all(self.clusters.iter().map(|(name, client)| async move {
            match tokio::time::timeout(PROBE_TIMEOUT, client.version()).await {
                Ok(Ok(version)) => ClusterStatus {
                    name: name.clone(),
                    reachable: true,
                    version: Some(version.version),
                    error: None,
                },
                Ok(Err(err)) => unreachable_status(name, err.to_string()),
                Err(_) => unreachable_status(name, "no answer within 10 s".into()),
            }
        }))
        .await
    }

    pub async fn nodes(&self) -> Gathered<NodeView> {
        self.gather(|name, client| async move {
            let nodes = client.nodes().await?;
            Ok(nodes
                .into_iter()
                .map(|node| NodeView {
                    cluster: name.to_owned(),
                    node: node.node,
                    status: node.status,
                    cores: node.maxcpu,
                    memory_bytes: node.maxmem,
                    memory_used_bytes: node.mem,
                    uptime_secs: node.uptime,
                })
                .collect())
        })
        .await
    }

    pub async fn vms(&self) -> Gathered<VmView> {
        self.gather(|name, client| async move {
            let resources = client.cluster_resources(Some(ResourceKind::Vm)).await?;
            Ok(resources
                .into_iter()
                .filter_map(|r| vm_view(name, r))
                .collect())
        })
        .await
    }

    /// VMs of one cluster keyed by vmid, for joining with our services.
    pub async fn vms_of(&self, cluster: &str) -> Result<HashMap<u32, VmView>, ProxmoxError> {
        let Some(client) = self.client(cluster) else {
            return Ok(HashMap::new());
        };
        let resources = client.cluster_resources(Some(ResourceKind::Vm)).await?;
        Ok(resources
            .into_iter()
            .filter_map(|r| vm_view(cluster, r))
            .map(|vm| (vm.vmid, vm))
            .collect())
    }

    async fn gather<'a, T, F, Fut>(&'a self, query: F) -> Gathered<T>
    where
        F: Fn(&'a str, &'a Client) -> Fut,
        Fut: Future<Output = Result<Vec<T>, ProxmoxError>>,
    {
        let answers = join_all(
            self.clusters
                .iter()
                .map(|(name, client)| query(name.as_str(), client)),
        )
        .await;
        let mut gathered = Gathered {
            items: Vec::new(),
            unreachable: Vec::new(),
        };
        for ((name, _), answer) in self.clusters.iter().zip(answers) {
            match answer {
                Ok(items) => gathered.items.extend(items),
                Err(err) => {
                    tracing::warn!(cluster = name, error = %err, "cluster did not answer");
                    gathered.unreachable.push(Unreachable {
                        cluster: name.clone(),
                        error: err.to_string(),
                    });
                }
            }
        }
        gathered
    }
}

fn unreachable_status(name: &str, error: String) -> ClusterStatus {
    ClusterStatus {
        name: name.to_owned(),
        reachable: false,
        version: None,
        error: Some(error),
    }
}

fn vm_view(cluster: &str, resource: ClusterResource) -> Option<VmView> {
    if resource.kind != "qemu" {
        return None;
    }
    Some(VmView {
        cluster: cluster.to_owned(),
        node: resource.node?,
        vmid: resource.vmid?,
        name: resource.name,
        status: resource.status,
        template: resource.template.unwrap_or(false),
        tags: resource.tags,
        cores: resource.maxcpu,
        memory_bytes: resource.maxmem,
        disk_bytes: resource.maxdisk,
    })
}

fn client_settings(cluster: &ResolvedCluster) -> proxmox::ClientSettings {
    proxmox::ClientSettings::new(
        cluster.name.clone(),
        cluster.api_urls.clone(),
        proxmox::Credentials::ApiToken {
            token_id: cluster.token_id.clone(),
            secret: cluster.token_secret.expose().to_owned(),
        },
        cluster.trust.clone(),
    )
}
