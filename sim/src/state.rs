//! Everything a running simulator shares between the API server, the control API, tasks and the
//! Rust handle. Each part has its own mutex, held only for short synchronous sections.

use crate::SimConfig;
use crate::auth::{Accounts, AuthKind};
use crate::cluster::{Cluster, VmSeed};
use crate::error::ApiError;
use crate::faults::{Fault, FaultTable};
use crate::schema::Schema;
use crate::tasks::TaskTable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One request the API server answered (or dropped: `status` 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// The full request path, e.g. `/api2/json/nodes/pve1/qemu`.
    pub path: String,
    /// Query, body and path parameters merged, as the endpoint saw them.
    pub params: BTreeMap<String, String>,
    pub auth: AuthKind,
    pub status: u16,
}

pub struct SimState {
    pub config: SimConfig,
    pub schema: Schema,
    pub accounts: Accounts,
    pub cluster: Mutex<Cluster>,
    pub tasks: Mutex<TaskTable>,
    pub consoles: crate::console::Consoles,
    /// vzdump's `/var/run/vzdump.lock`, one per node: a node runs one backup job at a time.
    vzdump_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    faults: Mutex<FaultTable>,
    requests: Mutex<Vec<RecordedRequest>>,
    clock_offset: Mutex<Duration>,
    pub booted: Instant,
}

/// Locks a mutex, shrugging off poisoning: a panicked test thread must not wedge the others.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    pub fn new(config: SimConfig) -> anyhow::Result<Self> {
        let mut cluster = Cluster::new(&config.nodes, &config.offline_nodes);
        let templates = if config.templates {
            Cluster::default_templates(&config.nodes)
        } else {
            Vec::new()
        };
        for seed in templates.iter().chain(&config.vms) {
            cluster.add(seed)?;
        }
        Ok(Self {
            schema: Schema::embedded()?,
            accounts: Accounts::generate(config.ticket_lifetime),
            cluster: Mutex::new(cluster),
            tasks: Mutex::default(),
            consoles: crate::console::Consoles::default(),
            vzdump_locks: Mutex::default(),
            faults: Mutex::default(),
            requests: Mutex::default(),
            clock_offset: Mutex::default(),
            booted: Instant::now(),
            config,
        })
    }

    /// Unix seconds on the simulator's clock (real time plus `advance_clock`).
    pub fn now(&self) -> u64 {
        self.clock().as_secs()
    }

    /// Time since the Unix epoch on the simulator's clock, for deadlines finer than a second.
    pub fn clock(&self) -> Duration {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        real + *lock(&self.clock_offset)
    }

    pub fn vzdump_lock(&self, node: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.vzdump_locks)
            .entry(node.to_owned())
            .or_default()
            .clone()
    }

    pub fn advance_clock(&self, by: Duration) {
        *lock(&self.clock_offset) += by;
    }

    pub fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub fn inject(&self, fault: Fault) -> Result<(), regex::Error> {
        lock(&self.faults).inject(fault)
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    pub fn take_fault(&self, method: &str, path: &str, task: bool) -> Option<crate::FaultKind> {
        lock(&self.faults).take(method, path, task)
    }

    pub fn add_vm(&self, seed: &VmSeed) -> Result<(), ApiError> {
        lock(&self.cluster).add(seed)
    }

    pub fn vm_config(&self, node: &str, vmid: u32) -> Option<BTreeMap<String, String>> {
        lock(&self.cluster)
            .vm(node, vmid)
            .ok()
            .map(|vm| vm.config.clone())
    }

    /// Sets (or with `None`, removes) one key of a VM's configuration, as an operator editing
    /// the VM by hand would; false when there is no such VM.
    pub fn set_vm_config(&self, node: &str, vmid: u32, key: &str, value: Option<&str>) -> bool {
        let mut cluster = lock(&self.cluster);
        let Ok(vm) = cluster.vm_mut(node, vmid) else {
            return false;
        };
        match value {
            Some(value) => vm.config.insert(key.to_owned(), value.to_owned()),
            None => vm.config.remove(key),
        };
        true
    }

    pub fn vm_status(&self, vmid: u32) -> Option<String> {
        let cluster = lock(&self.cluster);
        let vm = cluster.vms.get(&vmid)?;
        serde_json::to_value(vm.power)
            .ok()?
            .as_str()
            .map(str::to_owned)
    }

    /// The guest agent of a VM as the control API shows it: `{"up": bool, "passwords":
    /// {user: password}, "crypted": {user: bool}}`; `None` when there is no such VM.
    pub fn agent_json(&self, vmid: u32) -> Option<serde_json::Value> {
        let cluster = lock(&self.cluster);
        let agent = &cluster.vms.get(&vmid)?.agent;
        let passwords: BTreeMap<&String, &String> =
            agent.passwords.iter().map(|(u, (p, _))| (u, p)).collect();
        let crypted: BTreeMap<&String, bool> =
            agent.passwords.iter().map(|(u, (_, c))| (u, *c)).collect();
        Some(serde_json::json!({ "up": agent.up, "passwords": passwords, "crypted": crypted }))
    }

    /// Starts or stops the agent inside a VM's guest; false when there is no such VM.
    pub fn set_agent_up(&self, vmid: u32, up: bool) -> bool {
        let mut cluster = lock(&self.cluster);
        let Some(vm) = cluster.vms.get_mut(&vmid) else {
            return false;
        };
        vm.agent.up = up;
        true
    }

    pub fn state_json(&self) -> serde_json::Value {
        serde_json::to_value(&*lock(&self.cluster)).unwrap_or_default()
    }
}
