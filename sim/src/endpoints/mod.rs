//! The PVE endpoints the simulator serves. Each handler gets a request that already passed
//! routing, authentication and schema validation, and does what the real handler does to the
//! cluster state: read it, change it, or start a task that changes it later.

mod agent;
mod backup;
mod qemu;
mod restore;
mod rrd;
mod snapshot;
mod storage;

use crate::auth::Identity;
use crate::cluster::{Cluster, PowerState};
use crate::error::ApiError;
use crate::faults::FaultKind;
use crate::state::{SimState, lock};
use crate::tasks::{Task, upid_node};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A validated API call.
pub struct Call<'a> {
    pub state: &'a Arc<SimState>,
    pub method: &'a str,
    /// The path under `/api2/json`, which task faults are matched against.
    pub api_path: &'a str,
    pub params: &'a BTreeMap<String, String>,
    /// `None` only for endpoints open to the world (`POST /access/ticket`).
    pub identity: Option<Identity>,
}

impl Call<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.param(name).and_then(crate::schema::parse_boolean)
    }

    fn node(&self) -> &str {
        self.param("node").unwrap_or_default()
    }

    /// A validated integer parameter (the schema already checked its type and range).
    fn number(&self, name: &str) -> Result<u32, ApiError> {
        let value = self.param(name).unwrap_or_default();
        value
            .trim_start_matches('+')
            .parse()
            .map_err(|_| ApiError::param(name, format!("invalid value '{value}'")))
    }

    fn user(&self) -> &str {
        self.identity
            .as_ref()
            .map(|i| i.user.as_str())
            .unwrap_or("root@pam")
    }

    fn cluster(&self) -> std::sync::MutexGuard<'_, Cluster> {
        lock(&self.state.cluster)
    }

    /// Registers a running task and returns its UPID, with the task fault (`task_fail`,
    /// `task_stuck`) injected for this request, if any.
    fn start_task(&self, kind: &str, id: &str) -> (String, Option<FaultKind>) {
        let fault = self.state.take_fault(self.method, self.api_path, true);
        let mut tasks = lock(&self.state.tasks);
        let pid = tasks.next_pid();
        let pstart = self.state.booted.elapsed().as_millis() as u64 / 10 + 1000;
        let task = Task::new(
            self.node(),
            kind,
            id,
            self.user(),
            pid,
            pstart,
            self.state.now(),
        );
        let upid = task.upid.clone();
        tasks.insert(task);
        (upid, fault)
    }

    /// Starts a worker task and returns its UPID. After `duration` the task runs `finish` on the
    /// cluster, passing `Err` when a `task_fail` fault applies so `finish` can undo what the
    /// request did up front (e.g. remove a half-made clone). A `task_stuck` fault leaves it
    /// running for ever.
    fn spawn_task<F>(&self, kind: &str, id: &str, duration: Duration, finish: F) -> String
    where
        F: FnOnce(&mut Cluster, Result<(), String>) -> Result<(), String> + Send + 'static,
    {
        self.spawn_logged_task(kind, id, duration, move |cluster, injected, _| {
            finish(cluster, injected)
        })
    }

    /// `spawn_task` for a worker that writes lines to its task log as it goes.
    fn spawn_logged_task<F>(&self, kind: &str, id: &str, duration: Duration, finish: F) -> String
    where
        F: FnOnce(&mut Cluster, Result<(), String>, &mut Vec<String>) -> Result<(), String>
            + Send
            + 'static,
    {
        let (upid, fault) = self.start_task(kind, id);
        let (state, task_upid) = (self.state.clone(), upid.clone());
        tokio::spawn(async move {
            let injected = match fault {
                Some(FaultKind::TaskStuck {}) => return,
                Some(FaultKind::TaskFail { message }) => Err(message),
                _ => Ok(()),
            };
            tokio::time::sleep(duration).await;
            let mut log = Vec::new();
            let result = finish(&mut lock(&state.cluster), injected, &mut log);
            end_task(&state, &task_upid, log, result);
        });
        upid
    }

    /// A task that fails as soon as it starts, as a worker whose first check dies does.
    fn failed_task(&self, kind: &str, id: &str, message: String) -> String {
        self.spawn_task(kind, id, Duration::ZERO, move |_, _| Err(message))
    }
}

/// Appends lines to a task's log.
pub fn log_task(state: &SimState, upid: &str, lines: impl IntoIterator<Item = String>) {
    if let Some(task) = lock(&state.tasks).get_mut(upid) {
        task.log.extend(lines);
    }
}

/// Ends a task: `log` goes to its log, then PVE's last line (`TASK OK`, `TASK WARNINGS: n` for
/// `WARN:` lines, or `TASK ERROR: …`) and the exit status.
pub fn end_task(state: &SimState, upid: &str, log: Vec<String>, result: Result<(), String>) {
    if let Some(task) = lock(&state.tasks).get_mut(upid) {
        task.log.extend(log);
        task.finish(result);
    }
}

pub fn dispatch(template: &str, call: Call<'_>) -> Result<Value, ApiError> {
    match (call.method, template) {
        ("POST", "/access/ticket") => access_ticket(&call),
        ("GET", "/version") => Ok(version()),
        ("GET", "/cluster/resources") => Ok(cluster_resources(&call.cluster(), call.param("type"))),
        ("GET", "/cluster/nextid") => next_id(&call),
        ("GET", "/nodes") => Ok(nodes(&call)),
        ("GET", "/nodes/{node}/status") => Ok(node_status(&call)),
        ("GET", "/nodes/{node}/storage") => Ok(node_storage(&call)),
        ("GET", "/nodes/{node}/storage/{storage}/content") => storage::content(&call),
        ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}") => {
            storage::delete_volume(&call)
        }
        ("POST", "/nodes/{node}/vzdump") => backup::vzdump(&call),
        ("POST", "/nodes/{node}/qemu") => restore::create_or_restore(&call),
        ("GET", "/nodes/{node}/tasks/{upid}/status") => task_status(&call),
        ("GET", "/nodes/{node}/tasks/{upid}/log") => task_log(&call),
        ("POST", "/nodes/{node}/qemu/{vmid}/vncproxy") => crate::console::vncproxy(&call),
        ("POST", "/nodes/{node}/qemu/{vmid}/termproxy") => crate::console::termproxy(&call),
        ("GET", "/nodes/{node}/qemu/{vmid}/vncwebsocket") => crate::console::vncwebsocket(&call),
        ("GET", "/nodes/{node}/qemu/{vmid}/snapshot") => snapshot::list(&call),
        ("POST", "/nodes/{node}/qemu/{vmid}/snapshot") => snapshot::create(&call),
        ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}") => Ok(snapshot::index()),
        ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}") => snapshot::delete(&call),
        ("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback") => {
            snapshot::rollback(&call)
        }
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping") => agent::ping(&call),
        ("POST", "/nodes/{node}/qemu/{vmid}/agent/set-user-password") => {
            agent::set_user_password(&call)
        }
        ("GET", "/nodes/{node}/qemu/{vmid}/rrddata") => rrd::rrddata(&call),
        _ => qemu::dispatch(template, &call),
    }
}

fn access_ticket(call: &Call<'_>) -> Result<Value, ApiError> {
    let accounts = &call.state.accounts;
    let now = call.state.now();
    let username = call.param("username").unwrap_or_default();
    let user = accounts.login(
        username,
        call.param("realm"),
        call.param("password").unwrap_or_default(),
        now,
    )?;
    Ok(json!({
        "username": user,
        "ticket": accounts.issue_ticket(&user, now),
        "CSRFPreventionToken": accounts.issue_csrf(&user, now),
        "cap": {
            "vms": { "VM.PowerMgmt": 1, "VM.Config.Disk": 1, "VM.Config.CPU": 1, "VM.Config.Memory": 1,
                     "VM.Config.Network": 1, "VM.Config.Cloudinit": 1, "VM.Config.Options": 1,
                     "VM.Clone": 1, "VM.Allocate": 1, "VM.Audit": 1, "VM.Console": 1,
                     "VM.Backup": 1, "VM.Snapshot": 1, "VM.Snapshot.Rollback": 1, "VM.Monitor": 1 },
            "storage": { "Datastore.AllocateSpace": 1, "Datastore.Audit": 1 },
            "nodes": { "Sys.Audit": 1 },
            "access": {}, "dc": {}, "sdn": {},
        },
    }))
}

fn version() -> Value {
    json!({ "version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d", "console": "html5" })
}

/// `GET /cluster/resources`, optionally filtered by `type` (vm, storage, node, sdn).
fn cluster_resources(cluster: &Cluster, filter: Option<&str>) -> Value {
    let wants = |t: &str| filter.is_none_or(|f| f == t);
    let mut items = Vec::new();
    if wants("vm") {
        items.extend(cluster.vms.values().map(qemu::resource));
    }
    for node in &cluster.nodes {
        if wants("node") {
            items.push(node_resource(cluster, &node.name));
        }
        if wants("storage") {
            items.extend(
                cluster
                    .storages
                    .iter()
                    .map(|s| storage_resource(cluster, &node.name, &s.storage)),
            );
        }
        if wants("sdn") {
            let status = if node.online { "ok" } else { "unknown" };
            items.push(
                json!({ "id": format!("sdn/{}/localnetwork", node.name), "type": "sdn",
                               "sdn": "localnetwork", "node": node.name, "status": status }),
            );
        }
    }
    Value::Array(items)
}

fn node_resource(cluster: &Cluster, name: &str) -> Value {
    let Some(node) = cluster.node(name) else {
        return Value::Null;
    };
    let running = cluster
        .vms
        .values()
        .filter(|vm| vm.node == name && vm.power == PowerState::Running);
    let mem: u64 = (2u64 << 30) + running.map(|vm| vm.maxmem() / 4).sum::<u64>();
    if !node.online {
        return json!({ "id": format!("node/{name}"), "type": "node", "node": name, "status": "offline" });
    }
    json!({
        "id": format!("node/{name}"), "type": "node", "node": name, "status": "online",
        "maxcpu": node.maxcpu, "maxmem": node.maxmem, "mem": mem, "cpu": 0.03,
        "maxdisk": 100u64 << 30, "disk": 12u64 << 30, "uptime": node_uptime(), "level": "",
    })
}

fn storage_resource(cluster: &Cluster, node: &str, storage: &str) -> Value {
    let Some(s) = cluster.storage(storage) else {
        return Value::Null;
    };
    let online = cluster.node(node).is_some_and(|n| n.online);
    json!({
        "id": format!("storage/{node}/{storage}"), "type": "storage", "node": node,
        "storage": storage, "content": s.content, "plugintype": s.plugintype,
        "shared": u8::from(s.shared), "status": if online { "available" } else { "unknown" },
        "disk": storage_used(cluster, node, storage), "maxdisk": s.maxdisk,
    })
}

/// Bytes allocated on a node's storage by the VMs' disks and the backups.
fn storage_used(cluster: &Cluster, node: &str, storage: &str) -> u64 {
    let prefix = format!("{storage}:");
    let backups: u64 = storage::visible_backups(cluster, node, storage)
        .iter()
        .map(|b| b.size)
        .sum();
    let disks: u64 = cluster
        .vms
        .values()
        .filter(|vm| vm.node == node)
        .flat_map(|vm| {
            vm.config
                .iter()
                .filter(|(k, _)| crate::cluster::is_disk_key(k))
                .map(|(_, v)| v)
        })
        .filter(|drive| drive.starts_with(&prefix))
        .filter_map(|drive| crate::cluster::disk_size(drive))
        .sum();
    disks + backups
}

/// A plausible host uptime: nodes have been up for a day when the simulator starts.
fn node_uptime() -> u64 {
    86_400
}

fn next_id(call: &Call<'_>) -> Result<Value, ApiError> {
    let cluster = call.cluster();
    match call.param("vmid") {
        Some(_) => {
            let vmid = call.number("vmid")?;
            if cluster.vms.contains_key(&vmid) {
                return Err(ApiError::param("vmid", format!("VM {vmid} already exists")));
            }
            Ok(json!(vmid.to_string()))
        }
        // PVE answers the id as a string although the schema says integer.
        None => Ok(json!(cluster.next_free_vmid().to_string())),
    }
}

fn nodes(call: &Call<'_>) -> Value {
    let cluster = call.cluster();
    let items = cluster
        .nodes
        .iter()
        .map(|n| node_resource(&cluster, &n.name))
        .collect();
    Value::Array(items)
}

fn node_status(call: &Call<'_>) -> Value {
    let cluster = call.cluster();
    let Some(node) = cluster.node(call.node()) else {
        return Value::Null;
    };
    json!({
        "uptime": node_uptime(), "cpu": 0.03, "wait": 0, "idle": 0,
        "loadavg": ["0.12", "0.08", "0.05"],
        "kversion": "Linux 6.8.12-9-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9",
        "pveversion": "pve-manager/8.4.1/2a5fa54a8503f96d",
        "cpuinfo": { "cpus": node.maxcpu, "cores": node.maxcpu / 2, "sockets": 1,
                     "model": "Simulated CPU @ 3.00GHz", "mhz": "3000.000", "hvm": "1", "user_hz": 100 },
        "memory": { "total": node.maxmem, "used": 2u64 << 30, "free": node.maxmem - (2u64 << 30) },
        "swap": { "total": 0, "used": 0, "free": 0 },
        "rootfs": { "total": 100u64 << 30, "used": 12u64 << 30, "avail": 88u64 << 30, "free": 88u64 << 30 },
    })
}

fn node_storage(call: &Call<'_>) -> Value {
    let cluster = call.cluster();
    let node = call.node();
    let content: Vec<&str> = call
        .param("content")
        .map(|c| crate::schema::split_list(c).collect())
        .unwrap_or_default();
    let items = cluster
        .storages
        .iter()
        .filter(|s| call.param("storage").is_none_or(|name| name == s.storage))
        .filter(|s| {
            content
                .iter()
                .all(|c| s.content.split(',').any(|have| have == *c))
        })
        .map(|s| {
            let used = storage_used(&cluster, node, &s.storage);
            json!({
                "storage": s.storage, "type": s.plugintype, "content": s.content,
                "active": 1, "enabled": 1, "shared": u8::from(s.shared),
                "total": s.maxdisk, "used": used, "avail": s.maxdisk.saturating_sub(used),
                "used_fraction": used as f64 / s.maxdisk as f64,
            })
        })
        .collect();
    Value::Array(items)
}

fn find_task<'a>(
    call: &Call<'_>,
    tasks: &'a crate::tasks::TaskTable,
) -> Result<&'a Task, ApiError> {
    let upid = call.param("upid").unwrap_or_default();
    if upid_node(upid).is_none() {
        return Err(ApiError::internal(format!(
            "unable to parse worker upid '{upid}'"
        )));
    }
    tasks
        .get(upid)
        .filter(|t| t.node == call.node())
        .ok_or_else(|| ApiError::internal("no such task"))
}

fn task_status(call: &Call<'_>) -> Result<Value, ApiError> {
    let tasks = lock(&call.state.tasks);
    Ok(find_task(call, &tasks)?.status_json())
}

fn task_log(call: &Call<'_>) -> Result<Value, ApiError> {
    let tasks = lock(&call.state.tasks);
    let start = call
        .param("start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let limit = call
        .param("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    Ok(find_task(call, &tasks)?.log_json(start, limit))
}
