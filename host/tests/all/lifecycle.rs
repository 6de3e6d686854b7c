//! Orders and operations through the real daemon's job engine against the simulator.

use std::time::{Duration, Instant};

use crate::first_party::plugin_entry;
use porthole::demo::{Demo, DemoSetup};
use porthole_sim::{Fault, FaultKind, SimConfig, Times};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const FAST_LIFECYCLE: &str = "
[lifecycle]
retry_initial_ms = 20
retry_max_ms = 100
max_attempts = 10
backup_storage = \"local\"
backup_check_secs = 1
";

pub(crate) struct Panel {
    pub(crate) demo: Demo,
    pub(crate) http: reqwest::Client,
}

impl Panel {
    pub(crate) async fn start() -> Self {
        Self::with_tasks_of(Duration::from_millis(20)).await
    }

    /// The panel on a simulator whose tasks (start, stop, …) take `task_duration`.
    pub(crate) async fn with_tasks_of(task_duration: Duration) -> Self {
        Self::with(task_duration, "").await
    }

    /// The panel with `extra_config` added to the demo's configuration.
    pub(crate) async fn with(task_duration: Duration, extra_config: &str) -> Self {
        let sim = SimConfig {
            auth_failure_delay: Duration::from_millis(10),
            task_duration,
            clone_duration: Duration::from_millis(100),
            ..SimConfig::default()
        };
        let demo = Demo::start_with(DemoSetup {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: None,
            sim,
            extra_config: plugin_entry("cloudinit-basic", "cloud-init-template")
                + FAST_LIFECYCLE
                + extra_config,
            plugins_dir: None,
            plugin_runner: Some(env!("CARGO_BIN_EXE_porthole").into()),
        })
        .await
        .unwrap();
        let panel = Self {
            demo,
            http: reqwest::Client::new(),
        };
        panel.put("/api/v1/templates/debian-12", json!({
            "name": "debian-12", "cluster": "sim", "node": "pve1", "vmid": 9000, "os": "debian",
            "cloud_init": "cloudinit-basic"
        })).await;
        panel.put("/api/v1/plans/small", json!({
            "name": "small", "cores": 2, "memory_mib": 2048, "disk_gib": 20, "templates": ["debian-12"]
        })).await;
        panel
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.demo.credentials().url)
    }

    pub(crate) fn token(&self, user: &str) -> String {
        self.demo.account(user).unwrap().api_token.clone()
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .put(self.url(path))
            .bearer_auth(self.token("admin"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub(crate) async fn post(
        &self,
        user: &str,
        path: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token(user))
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn order(&self, key: &str, hostname: &str) -> (StatusCode, Value) {
        let alice = self.alice_id().await;
        self.post("admin", "/api/v1/orders", key, json!({
            "customer": alice, "plan": "small", "template": "debian-12", "hostname": hostname,
            "username": "debian", "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGDJH8eBzPFP9n3bkhKnzTyrCh8piOk8VzzeU8jCd+L alice@laptop"]
        }))
        .await
    }

    /// Gives alice room for anything but `max_cores` cores.
    pub(crate) async fn limit_alices_cores(&self, max_cores: u32) {
        let alice = self.alice_id().await;
        self.put(
            &format!("/api/v1/users/{alice}/quota"),
            json!({
                "max_vms": 5, "max_cores": max_cores, "max_memory_mib": 65536, "max_disk_gib": 1000
            }),
        )
        .await;
    }

    /// `GET path` as `user`, its JSON.
    pub(crate) async fn get(&self, user: &str, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .bearer_auth(self.token(user))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn alice_id(&self) -> i64 {
        let whoami = self.get("alice", "/api/v1/whoami").await;
        whoami["user"]["id"].as_i64().unwrap()
    }

    pub(crate) async fn service(&self, id: i64) -> Value {
        self.service_as("admin", id).await
    }

    /// The service view `user` gets.
    pub(crate) async fn service_as(&self, user: &str, id: i64) -> Value {
        self.get(user, &format!("/api/v1/services/{id}")).await
    }

    /// Waits until the service's newest job has finished and returns the service view.
    pub(crate) async fn settled(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let view = self.service(id).await;
            let jobs = view["jobs"].as_array().cloned().unwrap_or_default();
            let done = !jobs.is_empty()
                && jobs
                    .iter()
                    .all(|j| !matches!(j["state"].as_str(), Some("pending" | "compensating")));
            if done {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "service {id} did not settle: {view}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn vm_becomes(&self, vmid: u32, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.demo.sim().vm_status(vmid).as_deref() != Some(status) {
            assert!(
                Instant::now() < deadline,
                "VM {vmid} did not become {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The audit log's entries of `action`.
    pub(crate) async fn audit(&self, action: &str) -> Vec<Value> {
        let log = self
            .get("admin", &format!("/api/v1/audit?action={action}"))
            .await;
        log.as_array().cloned().unwrap_or_default()
    }

    /// An order placed and provisioned: its service id and VM id.
    pub(crate) async fn provisioned(&self, key: &str, hostname: &str) -> (i64, u32) {
        let (_, receipt) = self.order(key, hostname).await;
        let id = receipt["service_id"].as_i64().unwrap();
        let view = self.settled(id).await;
        let vmid = view["service"]["vmid"].as_u64().unwrap();
        (id, vmid as u32)
    }

    /// The POSTs the simulator answered whose path ends with `suffix`.
    pub(crate) fn posts_to(&self, suffix: &str) -> Vec<porthole_sim::RecordedRequest> {
        let mut requests = self.demo.sim().requests();
        requests.retain(|r| r.method == "POST" && r.path.ends_with(suffix));
        requests
    }

    pub(crate) fn clones(&self) -> usize {
        self.posts_to("/clone").len()
    }
}

#[tokio::test]
async fn an_order_delivered_three_times_builds_one_running_vm_marked_for_its_service() {
    let panel = Panel::start().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, receipt) = panel.order("order-1", "web-1").await;
        assert!(status.is_success(), "{receipt}");
        ids.push(receipt["service_id"].as_i64().unwrap());
    }
    assert!(ids.iter().all(|&id| id == ids[0]), "{ids:?}");
    let view = panel.settled(ids[0]).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    assert_eq!(panel.clones(), 1);

    let vmid = view["service"]["vmid"].as_u64().unwrap() as u32;
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("running"));
    let config = panel.demo.sim().vm_config("pve1", vmid).unwrap();
    assert_eq!(config["cores"], "2");
    assert_eq!(config["memory"], "2048");
    assert_eq!(config["name"], "web-1");
    assert!(config["description"].contains(&format!("porthole-service:{}", ids[0])));
    assert!(config["scsi0"].contains("size=20G"), "{}", config["scsi0"]);

    // The NoCloud seed named in the VM's SMBIOS serial serves the rendered user-data once; the
    // SMBIOS UUID Proxmox gave the clone stays.
    assert!(
        config["smbios1"].starts_with("uuid="),
        "{}",
        config["smbios1"]
    );
    let seed_url = seed_url(&config);
    assert!(
        seed_url.starts_with(&panel.demo.credentials().url),
        "{seed_url}"
    );
    let user_data = panel
        .http
        .get(format!("{seed_url}user-data"))
        .send()
        .await
        .unwrap();
    assert_eq!(user_data.status(), StatusCode::OK);
    let text = user_data.text().await.unwrap();
    assert!(
        text.starts_with("#cloud-config") && text.contains("web-1"),
        "{text}"
    );
    // A fetch that broke off is retried and answered; vendor-data after it ends the seed.
    let fetch = |file: &str| panel.http.get(format!("{seed_url}{file}")).send();
    assert_eq!(fetch("user-data").await.unwrap().status(), StatusCode::OK);
    assert_eq!(fetch("vendor-data").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        fetch("user-data").await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "a seed read whole is spent"
    );
    panel.demo.stop().await.unwrap();
}

/// The NoCloud seed URL a VM's SMBIOS serial names.
fn seed_url(config: &std::collections::BTreeMap<String, String>) -> String {
    let serial = config["smbios1"]
        .split(',')
        .find_map(|p| p.strip_prefix("serial="))
        .unwrap();
    let decoded = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, serial).unwrap(),
    )
    .unwrap();
    decoded
        .strip_prefix("ds=nocloud-net;s=")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_seed_never_fetched_stops_answering_once_its_vm_has_run_for_the_window() {
    let panel = Panel::with(
        Duration::from_millis(20),
        "[lifecycle.cloud_init]\nseed_window_secs = 1\n",
    )
    .await;
    let (status, receipt) = panel.order("order-1", "web-1").await;
    assert!(status.is_success(), "{receipt}");
    let view = panel.settled(receipt["service_id"].as_i64().unwrap()).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    let vmid = view["service"]["vmid"].as_u64().unwrap() as u32;
    let seed_url = seed_url(&panel.demo.sim().vm_config("pve1", vmid).unwrap());
    let fetch = |file: &'static str| panel.http.get(format!("{seed_url}{file}")).send();

    // Within the window the guest may still fetch; meta-data does not spend the seed.
    assert_eq!(fetch("meta-data").await.unwrap().status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        fetch("user-data").await.unwrap().status(),
        StatusCode::NOT_FOUND,
        "a seed outlives its window"
    );
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_id_taken_by_another_client_before_the_clone_is_replaced_by_a_fresh_one() {
    an_id_taken_before_the_clone_on("pve1").await;
}

/// VM ids are unique in the cluster: one taken on another node than the service's blocks the
/// clone just the same.
#[tokio::test]
async fn an_id_taken_on_another_node_before_the_clone_is_replaced_by_a_fresh_one() {
    an_id_taken_before_the_clone_on("pve2").await;
}

async fn an_id_taken_before_the_clone_on(node: &str) {
    let panel = Panel::start().await;
    // The clone request waits in the simulator long enough for someone else to create a VM
    // with the id this service reserved.
    panel.demo.sim().inject(Fault {
        method: Some("POST".into()),
        path: "/nodes/{node}/qemu/{vmid}/clone".into(),
        kind: FaultKind::Latency { ms: 500 },
        times: Times::ONCE,
    });
    let (_, receipt) = panel.order("order-race", "race-1").await;
    let id = receipt["service_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let reserved = loop {
        if let Some(vmid) = panel.service(id).await["service"]["vmid"].as_u64() {
            break vmid as u32;
        }
        assert!(Instant::now() < deadline, "no VM id reserved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    panel
        .demo
        .sim()
        .add_vm(porthole_sim::VmSeed {
            node: node.into(),
            vmid: reserved,
            name: "someone-elses".into(),
            ..porthole_sim::VmSeed::default()
        })
        .unwrap();

    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    let vmid = view["service"]["vmid"].as_u64().unwrap() as u32;
    assert_ne!(vmid, reserved, "the service moved to a fresh id");
    assert_eq!(
        panel.demo.sim().vm_config("pve1", vmid).unwrap()["name"],
        "race-1"
    );
    let foreign = panel.demo.sim().vm_config(node, reserved).unwrap();
    assert_eq!(
        foreign["name"], "someone-elses",
        "the other VM is untouched"
    );
    panel.demo.stop().await.unwrap();
}

/// The demo's unowned VM 110 (on pve2) lies past the ids Porthole reserved; with every id up
/// to 109 reserved and the cluster's next free id lower, the next provision skips 110.
#[tokio::test]
async fn an_id_past_the_clusters_next_free_one_skips_those_vms_hold() {
    use porthole::store::Db as _;
    let panel = Panel::start().await;
    let alices = panel.demo.account("alice").unwrap().vms[0];
    panel
        .demo
        .daemon()
        .store()
        .execute(
            "INSERT INTO services (owner_id, name, cluster, state, vmid, created_at, updated_at)
             SELECT owner_id, 'gone', 'sim', 'terminated', 109, 0, 0 FROM services WHERE id = ?1",
            porthole::store::params![alices],
        )
        .await
        .unwrap();
    let (_, receipt) = panel.order("past-110", "past-1").await;
    let id = receipt["service_id"].as_i64().unwrap();
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    assert_eq!(view["service"]["vmid"], 111, "{view}");
    let foreign = panel.demo.sim().vm_config("pve2", 110).unwrap();
    assert_eq!(
        foreign["name"], "ops-monitoring",
        "the other VM is untouched"
    );
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_plan_with_a_node_group_clones_to_the_roomiest_node_only_from_shared_storage() {
    let panel = Panel::start().await;
    let sim = panel.demo.sim();
    sim.add_vm(porthole_sim::VmSeed {
        node: "pve1".into(),
        vmid: 9100,
        name: "debian-12-ceph".into(),
        storage: "ceph".into(),
        template: true,
        ..porthole_sim::VmSeed::default()
    })
    .unwrap();
    // A running VM makes pve1 the busier node.
    sim.add_vm(porthole_sim::VmSeed {
        node: "pve1".into(),
        vmid: 500,
        memory: 16384,
        running: true,
        ..porthole_sim::VmSeed::default()
    })
    .unwrap();
    panel.put("/api/v1/templates/debian-12-ceph", json!({
        "name": "debian-12-ceph", "cluster": "sim", "node": "pve1", "vmid": 9100, "os": "debian",
        "cloud_init": "cloudinit-basic"
    })).await;
    panel
        .put(
            "/api/v1/plans/spread",
            json!({
                "name": "spread", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
                "templates": ["debian-12", "debian-12-ceph"], "nodes": ["pve1", "pve2"]
            }),
        )
        .await;
    panel
        .put(
            "/api/v1/plans/elsewhere",
            json!({
                "name": "elsewhere", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
                "templates": ["debian-12"], "nodes": ["pve2"]
            }),
        )
        .await;
    let alice = panel.alice_id().await;
    let order = |key: &'static str, plan: &'static str, template: &'static str| {
        panel.post(
            "admin",
            "/api/v1/orders",
            key,
            json!({
                "customer": alice, "plan": plan, "template": template, "hostname": key,
                "username": "debian", "ssh_keys": []
            }),
        )
    };

    let (_, shared) = order("spread-ceph", "spread", "debian-12-ceph").await;
    let (_, local) = order("spread-local", "spread", "debian-12").await;
    let (_, stranded) = order("stranded", "elsewhere", "debian-12").await;

    let view = panel.settled(shared["service_id"].as_i64().unwrap()).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    let vmid = view["service"]["vmid"].as_u64().unwrap() as u32;
    assert!(
        sim.vm_config("pve2", vmid).is_some(),
        "cloned to the roomier pve2"
    );
    let view = panel.settled(local["service_id"].as_i64().unwrap()).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    let vmid = view["service"]["vmid"].as_u64().unwrap() as u32;
    assert!(
        sim.vm_config("pve1", vmid).is_some(),
        "a template on local storage keeps its VMs on its own node"
    );
    let view = panel
        .settled(stranded["service_id"].as_i64().unwrap())
        .await;
    assert_eq!(view["service"]["state"], "failed", "{view}");
    let error = view["jobs"][0]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("pve2") && error.contains("storage"),
        "{view}"
    );
    let clones = panel.posts_to("/clone");
    let cross_node_clones = clones
        .iter()
        .filter(|r| r.params.contains_key("target"))
        .count();
    assert_eq!(
        cross_node_clones, 1,
        "only the shared template crossed nodes"
    );
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_cluster_that_stops_answering_still_shows_its_nodes_as_last_reported() {
    let panel = Panel::start().await;
    let nodes = || async {
        let answer = panel
            .http
            .get(panel.url("/api/v1/nodes"))
            .bearer_auth(panel.token("admin"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        answer.json::<Value>().await.unwrap()
    };
    let live = nodes().await;
    assert_eq!(live["nodes"].as_array().unwrap().len(), 2, "{live}");
    assert_eq!(live["last_known"], json!([]), "{live}");

    panel.demo.sim().inject(Fault {
        method: Some("GET".into()),
        path: "/nodes".into(),
        kind: FaultKind::Status {
            code: 503,
            message: "service unavailable".into(),
        },
        times: Times::ALWAYS,
    });
    let down = nodes().await;
    assert_eq!(down["nodes"], json!([]), "{down}");
    assert_eq!(down["unreachable"][0]["cluster"], "sim", "{down}");
    let known = down["last_known"].as_array().unwrap();
    let names: Vec<&str> = known.iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(names, ["pve1", "pve2"], "{down}");
    assert!(
        known
            .iter()
            .all(|n| n["status"] == "online" && n["online_at"].is_i64()),
        "{down}"
    );
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_step_failing_once_with_a_5xx_is_retried_and_completes() {
    let panel = Panel::start().await;
    panel.demo.sim().inject(Fault {
        method: Some("POST".into()),
        path: "/nodes/{node}/qemu/{vmid}/status/start".into(),
        kind: FaultKind::Status {
            code: 503,
            message: "service unavailable".into(),
        },
        times: Times::ONCE,
    });
    let (_, receipt) = panel.order("order-retry", "retry-1").await;
    let view = panel.settled(receipt["service_id"].as_i64().unwrap()).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_step_that_keeps_failing_rolls_back_and_leaves_no_vm() {
    let panel = Panel::start().await;
    panel.demo.sim().inject(Fault {
        method: Some("POST".into()),
        path: "/nodes/{node}/qemu/{vmid}/status/start".into(),
        kind: FaultKind::Status {
            code: 503,
            message: "service unavailable".into(),
        },
        times: Times::ALWAYS,
    });
    let (_, receipt) = panel.order("order-doomed", "doomed-1").await;
    let id = receipt["service_id"].as_i64().unwrap();
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "failed", "{view}");
    assert_eq!(view["jobs"][0]["state"], "rolled_back", "{view}");
    assert!(view["service"]["vmid"].is_null(), "{view}");
    let state = panel.demo.sim().state_json().to_string();
    assert!(
        !state.contains(&format!("porthole-service:{id}")),
        "a VM of the service is left: {state}"
    );
    // Its owner reads why in plain words, and nothing of the node or the task.
    let mine = panel.service_as("alice", id).await;
    assert_eq!(
        mine["jobs"][0]["failure"], "the VM could not be started",
        "{mine}"
    );
    assert!(mine["jobs"][0]["last_error"].is_null(), "{mine}");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn suspend_stops_the_vm_unsuspend_starts_it_and_terminate_destroys_it() {
    let panel = Panel::start().await;
    let (id, vmid) = panel.provisioned("order-life", "life-1").await;

    let (status, _) = panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/suspend"),
            "s-1",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "suspended", "{view}");
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("stopped"));

    panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/unsuspend"),
            "u-1",
            json!({}),
        )
        .await;
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("running"));

    panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/terminate"),
            "t-1",
            json!({}),
        )
        .await;
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "terminated", "{view}");
    assert_eq!(
        panel.demo.sim().vm_status(vmid),
        None,
        "the VM is destroyed"
    );
    panel.demo.stop().await.unwrap();
}

/// alice's first demo VM: adopted at start, running on pve1.
const ALICE_WEB: u32 = 101;

#[tokio::test]
async fn an_adopted_vm_is_marked_as_its_service_and_suspends_unsuspends_and_terminates() {
    let panel = Panel::start().await;
    let id = panel.demo.account("alice").unwrap().vms[0];
    let config = panel.demo.sim().vm_config("pve1", ALICE_WEB).unwrap();
    assert!(
        config["description"].contains(&format!("porthole-service:{id}")),
        "{config:?}"
    );
    assert!(
        config["tags"].split(';').any(|t| t == "porthole"),
        "{config:?}"
    );

    let offered = panel.service(id).await["service"]["operations"].clone();
    assert_eq!(offered, json!(["suspend", "terminate"]));
    for (operation, state, power, next) in [
        (
            "suspend",
            "suspended",
            Some("stopped"),
            json!(["unsuspend", "terminate"]),
        ),
        (
            "unsuspend",
            "active",
            Some("running"),
            json!(["suspend", "terminate"]),
        ),
        ("terminate", "terminated", None, json!([])),
    ] {
        let path = format!("/api/v1/services/{id}/{operation}");
        let (status, body) = panel.post("admin", &path, operation, json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{operation}: {body}");
        let view = panel.settled(id).await;
        assert_eq!(view["service"]["state"], state, "{view}");
        let last = view["jobs"]
            .as_array()
            .and_then(|jobs| jobs.last())
            .cloned();
        assert_eq!(last.unwrap_or_default()["state"], "succeeded", "{view}");
        assert_eq!(
            panel.demo.sim().vm_status(ALICE_WEB).as_deref(),
            power,
            "{operation}"
        );
        assert_eq!(view["service"]["operations"], next, "{operation}");
    }
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_vm_that_is_not_the_services_parks_the_job_with_the_reason_and_stays_untouched() {
    let panel = Panel::start().await;
    let id = panel.demo.account("alice").unwrap().vms[0];
    // Someone edits the VM on the node and drops the marker: it is no longer provably ours.
    assert!(
        panel
            .demo
            .sim()
            .set_vm_config("pve1", ALICE_WEB, "description", Some("web"))
    );

    let path = format!("/api/v1/services/{id}/suspend");
    let (status, _) = panel.post("admin", &path, "s-stranger", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let view = panel.settled(id).await;
    let job = &view["jobs"][0];
    assert_eq!(job["state"], "parked", "{view}");
    let reason = job["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("is not this service's"), "{reason}");
    assert_eq!(
        panel.demo.sim().vm_status(ALICE_WEB).as_deref(),
        Some("running")
    );
    let parked = panel.audit("job.parked").await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(
        parked[0]["detail"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("not this service's"),
        "{parked:?}"
    );
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_plan_change_grows_a_running_vm_and_reboots_it_into_the_new_size() {
    let panel = Panel::start().await;
    let (id, vmid) = panel.provisioned("order-grow", "grow-1").await;
    panel.put("/api/v1/plans/large", json!({
        "name": "large", "cores": 4, "memory_mib": 8192, "disk_gib": 40, "templates": ["debian-12"]
    })).await;
    panel.put("/api/v1/plans/tiny", json!({
        "name": "tiny", "cores": 1, "memory_mib": 1024, "disk_gib": 10, "templates": ["debian-12"]
    })).await;
    let path = format!("/api/v1/services/{id}/change-plan");
    let change = |key: &'static str, plan: &'static str| {
        panel.post("admin", &path, key, json!({ "plan": plan }))
    };

    let (status, body) = change("c-tiny", "tiny").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("disks only grow"),
        "{body}"
    );
    panel.limit_alices_cores(3).await;
    let (status, body) = change("c-large", "large").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cores"), "{body}");

    panel.limit_alices_cores(4).await;
    let (status, body) = change("c-large-2", "large").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["plan"], "large", "{view}");
    // The sizes are the VM's current ones, not pending: the reboot applied them.
    let config = panel.demo.sim().vm_config("pve1", vmid).unwrap();
    assert_eq!(
        (config["cores"].as_str(), config["memory"].as_str()),
        ("4", "8192")
    );
    assert!(config["scsi0"].contains("size=40G"), "{config:?}");
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("running"));
    assert_eq!(panel.posts_to("/status/reboot").len(), 1);
    let changed = panel.audit("service.plan_changed").await;
    assert_eq!(changed[0]["detail"]["to"], "large", "{changed:?}");

    // Suspended, the VM is stopped: it takes a new plan at its next start, without a reboot.
    panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/suspend"),
            "s-1",
            json!({}),
        )
        .await;
    panel.settled(id).await;
    panel.put("/api/v1/plans/larger", json!({
        "name": "larger", "cores": 4, "memory_mib": 16384, "disk_gib": 40, "templates": ["debian-12"]
    })).await;
    let (status, _) = change("c-larger", "larger").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    panel.settled(id).await;
    assert_eq!(
        panel.demo.sim().vm_config("pve1", vmid).unwrap()["memory"],
        "16384"
    );
    assert_eq!(panel.posts_to("/status/reboot").len(), 1);
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_vm_its_owner_stopped_is_not_drift_but_one_stopped_behind_our_back_is() {
    let panel = Panel::start().await;
    let (own, own_vmid) = panel.provisioned("order-own", "own-1").await;
    let (back, back_vmid) = panel.provisioned("order-back", "back-1").await;

    let (status, _) = panel
        .post(
            "alice",
            &format!("/api/v1/vms/{own}/power"),
            "p-1",
            json!({ "action": "stop" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    panel.vm_becomes(own_vmid, "stopped").await;
    let stop = format!("/nodes/pve1/qemu/{back_vmid}/status/stop");
    crate::lifecycle_acceptance::behind_our_back(panel.demo.sim(), reqwest::Method::POST, &stop)
        .await;

    let (_, report) = panel.post("admin", "/api/v1/drift", "r-1", json!({})).await;
    let mismatched: Vec<i64> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "power_mismatch")
        .filter_map(|d| d["service_id"].as_i64())
        .collect();
    assert_eq!(mismatched, [back], "{report}");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn two_plan_changes_queued_together_cannot_exceed_the_quota() {
    let panel = Panel::start().await;
    let (a, _) = panel.provisioned("order-qa", "qa-1").await;
    let (b, _) = panel.provisioned("order-qb", "qb-1").await;
    panel.limit_alices_cores(8).await;
    panel.put("/api/v1/plans/six", json!({
        "name": "six", "cores": 6, "memory_mib": 2048, "disk_gib": 20, "templates": ["debian-12"]
    })).await;
    // The first change is still on its way when the second is asked for.
    panel.demo.sim().inject(Fault {
        method: Some("PUT".into()),
        path: "/nodes/{node}/qemu/{vmid}/config".into(),
        kind: FaultKind::Latency { ms: 1500 },
        times: Times::ONCE,
    });
    let (path_a, path_b) = (
        format!("/api/v1/services/{a}/change-plan"),
        format!("/api/v1/services/{b}/change-plan"),
    );
    let (status, body) = panel
        .post("admin", &path_a, "c-a", json!({ "plan": "six" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = panel
        .post("admin", &path_b, "c-b", json!({ "plan": "six" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cores"), "{body}");
    assert_eq!(panel.settled(a).await["service"]["plan"], "six");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_order_over_quota_is_refused_with_the_limit_and_creates_nothing() {
    let panel = Panel::start().await;
    panel.limit_alices_cores(1).await;
    let (status, body) = panel.order("order-big", "big-1").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        "the order would exceed the cores limit: 2 would be in use, 1 allowed"
    );
    assert_eq!(panel.clones(), 0);
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn customers_follow_their_own_services_but_cannot_operate_them() {
    let panel = Panel::start().await;
    let (_, receipt) = panel.order("order-own", "own-1").await;
    let id = receipt["service_id"].as_i64().unwrap();
    panel.settled(id).await;
    let (status, _) = panel
        .post(
            "alice",
            &format!("/api/v1/services/{id}/terminate"),
            "x",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let own = panel
        .http
        .get(panel.url(&format!("/api/v1/services/{id}")))
        .bearer_auth(panel.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let text = own.text().await.unwrap();
    assert!(!text.contains("pve1") && !text.contains("vmid"), "{text}");
    let other = panel
        .http
        .get(panel.url(&format!("/api/v1/services/{id}")))
        .bearer_auth(panel.token("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);

    let events = panel
        .http
        .get(panel.url(&format!("/api/v1/services/{id}/events")))
        .bearer_auth(panel.token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut body = events;
    let mut seen = String::new();
    while !seen.contains("\"succeeded\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    for step in ["place", "clone", "configure", "start_vm", "mark_active"] {
        assert!(
            seen.contains(&format!("\"step\":\"{step}\"")),
            "{step} missing from {seen}"
        );
    }
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn an_operator_cancels_a_parked_job_but_not_a_finished_one() {
    let panel = Panel::start().await;
    let (_, receipt) = panel.order("order-park", "park-1").await;
    let id = receipt["service_id"].as_i64().unwrap();
    let provision = receipt["job_id"].as_i64().unwrap();
    panel.settled(id).await;
    panel.demo.sim().inject(Fault {
        method: Some("DELETE".into()),
        path: "/nodes/{node}/qemu/{vmid}".into(),
        kind: FaultKind::Status {
            code: 503,
            message: "service unavailable".into(),
        },
        times: Times::ALWAYS,
    });
    let (_, terminate) = panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/terminate"),
            "t-park",
            json!({}),
        )
        .await;
    let view = panel.settled(id).await;
    assert_eq!(view["jobs"][1]["state"], "parked", "{view}");

    let job = terminate["job_id"].as_i64().unwrap();
    let (status, body) = panel
        .post(
            "admin",
            &format!("/api/v1/jobs/{job}/cancel"),
            "c-1",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{body}"
    );
    assert_eq!(panel.service(id).await["jobs"][1]["state"], "cancelled");

    let (status, body) = panel
        .post(
            "admin",
            &format!("/api/v1/jobs/{provision}/cancel"),
            "c-2",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = panel
        .post(
            "alice",
            &format!("/api/v1/jobs/{job}/cancel"),
            "c-3",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    panel.demo.sim().clear_faults();
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_reused_key_or_a_taken_hostname_is_refused_and_creates_nothing() {
    let panel = Panel::start().await;
    let (status, first) = panel.order("order-k", "shared-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let id = first["service_id"].as_i64().unwrap();

    let (status, body) = panel.order("order-k", "other-1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Idempotency-Key"),
        "{body}"
    );
    let (status, body) = panel.order("order-k2", "shared-1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("taken"), "{body}");
    panel.settled(id).await;
    assert_eq!(panel.clones(), 1);

    // Once its service is gone, the hostname is free again.
    panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/terminate"),
            "t-k",
            json!({}),
        )
        .await;
    assert_eq!(panel.settled(id).await["service"]["state"], "terminated");
    let (status, body) = panel.order("order-k3", "shared-1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_start_still_queued_when_a_suspension_lands_is_undone() {
    // Tasks take a second, so a start Proxmox has accepted has not run yet when the suspension
    // stops the VM: the suspension finds it stopped, then the start runs it.
    let panel = Panel::with_tasks_of(Duration::from_millis(1000)).await;
    let (id, vmid) = panel.provisioned("order-race", "race-1").await;
    let power = format!("/api/v1/vms/{id}/power");
    let (status, _) = panel
        .post("alice", &power, "-", json!({ "action": "stop" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    panel.vm_becomes(vmid, "stopped").await;

    let (status, body) = panel
        .post("alice", &power, "-", json!({ "action": "start" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let path = format!("/api/v1/services/{id}/suspend");
    panel.post("admin", &path, "s-race", json!({})).await;
    assert_eq!(panel.settled(id).await["service"]["state"], "suspended");

    // The start ran after the suspension; the guard behind it stops the VM again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while panel.audit("vm.power.undone").await.is_empty() {
        assert!(Instant::now() < deadline, "the raced start was not undone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("stopped"));
    panel.demo.stop().await.unwrap();
}

/// The runner of plugin `name`, as operators see it in `GET /plugins`.
async fn runner_of(panel: &Panel, name: &str) -> Value {
    let plugins = panel.get("admin", "/api/v1/plugins").await;
    let plugin = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name}: {plugins}"));
    assert_eq!(plugin["isolation"], "process", "{plugin}");
    plugin["runner"].clone()
}

#[tokio::test]
async fn an_order_after_its_plugins_runner_was_killed_provisions() {
    let panel = Panel::start().await;
    let runner = runner_of(&panel, "cloudinit-basic").await;
    assert_eq!(runner["confinement"]["seccomp"], true, "{runner}");
    let pid = runner["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let (status, receipt) = panel.order("after-kill", "phoenix").await;
    assert!(status.is_success(), "{receipt}");
    let view = panel.settled(receipt["service_id"].as_i64().unwrap()).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    let restarted = runner_of(&panel, "cloudinit-basic").await;
    assert_eq!(restarted["restarts"], 1, "{restarted}");
    assert_ne!(restarted["pid"], runner["pid"], "{restarted}");
    assert!(restarted["rss_kib"].as_u64().unwrap() > 0, "{restarted}");
}
