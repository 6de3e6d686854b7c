//! A customer's own operations on their VM, through the real daemon against the simulator: the
//! SSH keychain, reinstall, password reset through the guest agent, and snapshots. Every answer
//! a customer gets is scanned for what only operators may know.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::lifecycle::Panel;
use crate::lifecycle_acceptance::read_only;
use crate::plugins_first_party::PowerDns;

// Made by `ssh-keygen -t ed25519`; the fingerprint is what `ssh-keygen -lf` printed.
const LAPTOP: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGDJH8eBzPFP9n3bkhKnzTyrCh8piOk8VzzeU8jCd+L alice@laptop";
const LAPTOP_FINGERPRINT: &str = "SHA256:REm/g7o/gjZYl89e7UeMf0IOcuJImQEECEqcduwwUEg";
const DESK: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbfeLpTI3BFgyc+ey3xuxyTBCsMQFmjO682+cyIDnYX ada@laptop";

/// What a customer must never read: node names, storage ids, volume ids, task ids.
const OPERATORS_ONLY: &[&str] = &[
    "pve1",
    "pve2",
    "local-lvm",
    "\"local\"",
    "local:",
    "ceph",
    "UPID:",
    "vm-1",
    "vzdump-",
    "base-9",
];

/// Fails naming the first operator-only word in a customer's answer.
pub(crate) fn assert_nothing_for_operators(what: &str, answer: &Value) {
    let text = answer.to_string();
    for word in OPERATORS_ONLY {
        assert!(
            !text.contains(word),
            "{what} shows a customer {word:?}: {text}"
        );
    }
}

/// Posts `body` to `path` as alice and expects `status` with a reason that contains `part`.
async fn refused(panel: &Panel, path: &str, body: Value, status: StatusCode, part: &str) {
    let (got, answer) = panel.post("alice", path, "refused", body).await;
    assert_eq!(got, status, "{path}: {answer}");
    let reason = answer["error"].as_str().unwrap_or_default();
    assert!(reason.contains(part), "{path}: {reason}");
}

/// The newest job of a service view (jobs are listed oldest first).
fn last_job(view: &Value) -> &Value {
    view["jobs"]
        .as_array()
        .and_then(|jobs| jobs.last())
        .unwrap_or(&Value::Null)
}

async fn send(
    panel: &Panel,
    user: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = panel
        .http
        .request(method, panel.url(path))
        .bearer_auth(panel.token(user));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    if user != "admin" {
        assert_nothing_for_operators(path, &body);
    }
    (status, body)
}

/// A panel whose `small` plan keeps two snapshots and two backups, and offers three templates
/// (`lab` is on another node than the VMs, on local storage).
async fn panel() -> Panel {
    panel_with("").await
}

/// [`panel`] with `extra_config` added to its configuration.
async fn panel_with(extra_config: &str) -> Panel {
    let panel = Panel::with(Duration::from_millis(20), extra_config).await;
    for (name, node, vmid) in [("debian-13", "pve1", 9000), ("lab", "pve2", 9001)] {
        let template = json!({
            "name": name, "cluster": "sim", "node": node, "vmid": vmid, "os": "debian",
            "cloud_init": "cloudinit-basic"
        });
        panel
            .put(&format!("/api/v1/templates/{name}"), template)
            .await;
    }
    let small = json!({
        "name": "small", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
        "templates": ["debian-12", "debian-13", "lab"], "max_snapshots": 2,
        "max_backups": 2, "backup_schedule": "none"
    });
    panel.put("/api/v1/plans/small", small).await;
    panel
}

async fn add_key(panel: &Panel, user: &str, name: &str, key: &str) -> (StatusCode, Value) {
    send(
        panel,
        user,
        reqwest::Method::POST,
        "/api/v1/ssh-keys",
        Some(json!({ "name": name, "public_key": key })),
    )
    .await
}

/// An order of alice's own, provisioned: its service id and VM id.
async fn alices_vm(panel: &Panel, hostname: &str, key_ids: &[i64]) -> (i64, u32) {
    let (status, receipt) = panel
        .post(
            "alice",
            "/api/v1/orders",
            &format!("order-{hostname}"),
            json!({
                "plan": "small", "template": "debian-12", "hostname": hostname,
                "username": "debian", "ssh_key_ids": key_ids
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let id = receipt["service_id"].as_i64().unwrap();
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    (id, view["service"]["vmid"].as_u64().unwrap() as u32)
}

/// The keys Proxmox's cloud-init drive holds for the VM, decoded.
fn sshkeys_of(panel: &Panel, vmid: u32) -> String {
    let config = panel.demo.sim().vm_config("pve1", vmid).unwrap();
    let encoded = config.get("sshkeys").cloned().unwrap_or_default();
    percent_encoding::percent_decode_str(&encoded)
        .decode_utf8_lossy()
        .into_owned()
}

#[tokio::test]
async fn a_keychain_holds_parsed_keys_per_customer_and_orders_install_the_chosen_ones() {
    let panel = panel().await;
    let (status, laptop) = add_key(&panel, "alice", "laptop", &format!("  {LAPTOP}\n")).await;
    assert_eq!(status, StatusCode::CREATED, "{laptop}");
    assert_eq!(laptop["fingerprint"], LAPTOP_FINGERPRINT);
    assert_eq!(laptop["public_key"], LAPTOP);

    // The same key twice, a name twice, and things that are not keys are refused with reasons.
    let (status, body) = add_key(&panel, "alice", "again", LAPTOP).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(LAPTOP_FINGERPRINT));
    let (status, _) = add_key(&panel, "alice", "laptop", DESK).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = add_key(&panel, "alice", "junk", "ssh-ed25519 AAAAnotakey").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains(".pub"), "{body}");

    // Bob neither sees alice's key nor can remove it or order with it.
    let (_, bobs) = send(
        &panel,
        "bob",
        reqwest::Method::GET,
        "/api/v1/ssh-keys",
        None,
    )
    .await;
    assert_eq!(bobs, json!([]));
    let laptop_id = laptop["id"].as_i64().unwrap();
    let (status, _) = send(
        &panel,
        "bob",
        reqwest::Method::DELETE,
        &format!("/api/v1/ssh-keys/{laptop_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = panel
        .post(
            "bob",
            "/api/v1/orders",
            "bob-order",
            json!({
                "plan": "small", "template": "debian-12", "hostname": "bob-1",
                "username": "bob", "ssh_key_ids": [laptop_id]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // An operator helping alice reads her keychain; a customer cannot read another's.
    let alice = panel.alice_id().await;
    let keys = format!("/api/v1/users/{alice}/ssh-keys");
    let (status, listed) = send(&panel, "admin", reqwest::Method::GET, &keys, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed[0]["fingerprint"], LAPTOP_FINGERPRINT, "{listed}");
    let (status, _) = send(&panel, "bob", reqwest::Method::GET, &keys, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &panel,
        "admin",
        reqwest::Method::GET,
        "/api/v1/users/99999/ssh-keys",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, vmid) = alices_vm(&panel, "keyed-1", &[laptop_id]).await;
    assert!(sshkeys_of(&panel, vmid).contains(LAPTOP));
    let activity = panel
        .get("alice", "/api/v1/account/activity?action=ssh_key")
        .await;
    assert_eq!(activity[0]["action"], "ssh_key.added", "{activity}");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_reinstall_replaces_the_disk_keeps_the_vm_and_hands_out_a_new_password_once() {
    let panel = panel().await;
    let (_, laptop) = add_key(&panel, "alice", "laptop", LAPTOP).await;
    let (_, desk) = add_key(&panel, "alice", "desk", DESK).await;
    let (id, vmid) = alices_vm(&panel, "reborn-1", &[laptop["id"].as_i64().unwrap()]).await;
    let clones_before = panel.clones();

    // A template the plan does not offer, and another customer, are refused.
    let path = format!("/api/v1/vms/{id}/reinstall");
    let (status, body) = panel
        .post("alice", &path, "ri-bad", json!({ "template": "arch" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let lab = json!({ "template": "lab" });
    refused(
        &panel,
        &path,
        lab,
        StatusCode::CONFLICT,
        "cannot be installed",
    )
    .await;
    let (status, _) = panel
        .post("bob", &path, "ri-bob", json!({ "template": "debian-13" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let request = json!({ "template": "debian-13", "ssh_key_ids": [desk["id"]] });
    let (status, accepted) = panel.post("alice", &path, "ri-1", request.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_nothing_for_operators("reinstall", &accepted);
    assert_eq!(accepted["username"], "debian");
    let password = accepted["password"].as_str().unwrap().to_owned();
    assert_eq!(password.len(), 20);
    // The same key again is the same reinstall, and the password is not shown twice.
    let (status, again) = panel.post("alice", &path, "ri-1", request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["job_id"], accepted["job_id"]);
    assert!(again["password"].is_null(), "{again}");

    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "active", "{view}");
    assert_eq!(view["service"]["template"], "debian-13", "{view}");
    assert_eq!(last_job(&view)["state"], "succeeded", "{view}");
    assert_eq!(view["service"]["vmid"], vmid, "the VM keeps its id");
    assert_eq!(panel.clones(), clones_before + 1, "one new clone");
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("running"));
    let keys = sshkeys_of(&panel, vmid);
    assert!(keys.contains(DESK) && !keys.contains(LAPTOP), "{keys}");
    let config = panel.demo.sim().vm_config("pve1", vmid).unwrap();
    assert_eq!(config["name"], "reborn-1");
    assert!(config["description"].contains(&format!("porthole-service:{id}")));

    // The customer's view shows the reinstall; the audit log records it.
    let mine = panel.service_as("alice", id).await;
    assert_nothing_for_operators("service view", &mine);
    assert_eq!(last_job(&mine)["kind"], "reinstall", "{mine}");
    assert_eq!(panel.audit("service.reinstalled").await.len(), 1);
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn power_and_consoles_wait_while_a_reinstall_runs() {
    // Slow tasks keep the reinstall in its steps long enough to ask.
    let panel = Panel::with_tasks_of(Duration::from_millis(400)).await;
    panel
        .put(
            "/api/v1/plans/small",
            json!({
                "name": "small", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
                "templates": ["debian-12"], "max_snapshots": 2
            }),
        )
        .await;
    let (id, _) = alices_vm(&panel, "busy-1", &[]).await;
    let path = format!("/api/v1/vms/{id}/reinstall");
    let (status, _) = panel
        .post(
            "alice",
            &path,
            "ri-busy",
            json!({ "template": "debian-12" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let vm = format!("/api/v1/vms/{id}");
    // The VM's view offers nothing meanwhile, and says why.
    let (_, view) = send(&panel, "alice", reqwest::Method::GET, &vm, None).await;
    assert_eq!(view["actions"]["power"], json!([]), "{view}");
    assert_eq!(view["actions"]["console"], false, "{view}");
    assert_eq!(
        view["actions"]["unavailable"],
        "the VM is being reinstalled"
    );
    let busy = StatusCode::CONFLICT;
    let power = json!({ "action": "start" });
    refused(&panel, &format!("{vm}/power"), power, busy, "reinstalled").await;
    let console = json!({ "kind": "term" });
    refused(
        &panel,
        &format!("{vm}/console"),
        console,
        busy,
        "reinstalled",
    )
    .await;
    let snapshot = json!({ "name": "mid" });
    refused(
        &panel,
        &format!("{vm}/snapshots"),
        snapshot,
        busy,
        "in progress",
    )
    .await;
    let view = panel.settled(id).await;
    assert_eq!(last_job(&view)["state"], "succeeded", "{view}");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn snapshots_are_taken_within_the_plan_rolled_back_on_confirmation_and_removed() {
    let panel = panel().await;
    let (id, vmid) = alices_vm(&panel, "snappy-1", &[]).await;
    let snapshots = format!("/api/v1/vms/{id}/snapshots");
    let take = |name: &'static str| {
        let path = snapshots.clone();
        let panel = &panel;
        async move {
            panel
                .post(
                    "alice",
                    &path,
                    &format!("take-{name}"),
                    json!({ "name": name, "description": "before upgrade" }),
                )
                .await
        }
    };
    for name in ["first", "second"] {
        let (status, body) = take(name).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        panel.settled(id).await;
    }
    let third = json!({ "name": "third" });
    refused(&panel, &snapshots, third, StatusCode::CONFLICT, "at most 2").await;
    let (status, body) = panel
        .post(
            "alice",
            &snapshots,
            "bad-name",
            json!({ "name": "no spaces" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (_, listed) = send(&panel, "alice", reqwest::Method::GET, &snapshots, None).await;
    assert_eq!(listed["max"], 2);
    let names: Vec<&str> = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"], "{listed}");
    assert_eq!(listed["snapshots"][1]["current"], true);
    assert_eq!(listed["snapshots"][0]["description"], "before upgrade");

    // A rollback needs the snapshot named again.
    let rollback = format!("{snapshots}/first/rollback");
    let (status, _) = panel
        .post("alice", &rollback, "rb-0", json!({ "confirm": "second" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = panel
        .post("alice", &rollback, "rb-1", json!({ "confirm": "first" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let view = panel.settled(id).await;
    assert_eq!(last_job(&view)["state"], "succeeded", "{view}");
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("running"));
    let (_, listed) = send(&panel, "alice", reqwest::Method::GET, &snapshots, None).await;
    assert_eq!(listed["snapshots"][0]["current"], true, "{listed}");

    let (status, _) = send(
        &panel,
        "alice",
        reqwest::Method::DELETE,
        &format!("{snapshots}/second"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    panel.settled(id).await;
    let (status, _) = send(
        &panel,
        "alice",
        reqwest::Method::DELETE,
        &format!("{snapshots}/second"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = send(&panel, "alice", reqwest::Method::GET, &snapshots, None).await;
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 1, "{listed}");
    for action in [
        "vm.snapshot_taken",
        "vm.snapshot_rolled_back",
        "vm.snapshot_removed",
    ] {
        assert!(!panel.audit(action).await.is_empty(), "{action}");
    }

    // Bob cannot see them; termination takes them with the VM.
    let (status, _) = send(&panel, "bob", reqwest::Method::GET, &snapshots, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/terminate"),
            "t",
            json!({}),
        )
        .await;
    panel.settled(id).await;
    assert!(panel.demo.sim().vm_config("pve1", vmid).is_none());
    let state = panel.demo.sim().state_json().to_string();
    assert!(
        !state.contains("before upgrade"),
        "no snapshot outlives its VM"
    );
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_plan_without_snapshots_offers_none() {
    let panel = Panel::start().await;
    let (id, _) = alices_vm(&panel, "nosnap-1", &[]).await;
    let path = format!("/api/v1/vms/{id}/snapshots");
    let one = json!({ "name": "one" });
    refused(&panel, &path, one, StatusCode::CONFLICT, "no snapshots").await;
    panel.demo.stop().await.unwrap();
}

/// `(unfinished jobs, succeeded jobs of kind)` in the daemon's database.
fn job_counts(database: &std::path::Path, kind: &str) -> (i64, i64) {
    read_only(database)
        .query_row(
            "SELECT count(*) FILTER (WHERE state IN ('pending', 'compensating')),
                    count(*) FILTER (WHERE state = 'succeeded' AND kind = ?1)
             FROM jobs",
            [kind],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

/// Each service's VM id, in service order.
fn vmids(database: &std::path::Path) -> Vec<Option<i64>> {
    let conn = read_only(database);
    let mut statement = conn
        .prepare("SELECT vmid FROM services ORDER BY id")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The calls the simulator answered with success whose method is `method` and path matches.
fn succeeded(sim: &porthole_sim::SimHandle, method: &str, matches: impl Fn(&str) -> bool) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == method && r.status == 200 && matches(&r.path))
        .count()
}

/// A daemon of its own (`porthole serve`) on the billing lab of the lifecycle acceptance tests
/// (tunnels, DNS, snippets), with backups to `local`, two kept per VM, for tests to SIGKILL.
struct CrashLab {
    dir: tempfile::TempDir,
    sim: porthole_sim::SimHandle,
    snippets: std::path::PathBuf,
    config: std::path::PathBuf,
    url: String,
    token: String,
    http: reqwest::Client,
    daemon: Option<crate::lifecycle_acceptance::ChildDaemon>,
}

impl CrashLab {
    /// The lab with `services` VMs ordered through billing and provisioned.
    async fn start(services: usize) -> Self {
        use crate::lifecycle_acceptance::{
            CloudflareRoute, simulator_with_cloudflare, write_config,
        };
        let dir = tempfile::TempDir::new().unwrap();
        let (sim, ca_file, snippets) = simulator_with_cloudflare(dir.path()).await;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let route = CloudflareRoute::Direct { ca_file: &ca_file };
        let config = write_config(dir.path(), addr, &sim, &route, &snippets, 600);
        // The lab's configuration with backups: its `[lifecycle]` and `small` plan grow a line.
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replacen(
                "[lifecycle]\n",
                "[lifecycle]\nbackup_storage = \"local\"\n",
                1,
            )
            .replacen(
                "templates = [\"debian-12\"]\n",
                "templates = [\"debian-12\"]\nmax_backups = 2\n",
                1,
            );
        std::fs::write(&config, text).unwrap();
        let store = porthole::store::Store::open(&dir.path().join("porthole.db"))
            .await
            .unwrap();
        let role = porthole::store::users::Role::Admin;
        porthole::admin::create_user(&store, "admin", "admin-password-1", role)
            .await
            .unwrap();
        let token = porthole::admin::create_token(&store, "admin", "tests")
            .await
            .unwrap();
        drop(store);
        let mut lab = Self {
            dir,
            sim,
            snippets,
            config,
            url: format!("http://{addr}"),
            token,
            http: reqwest::Client::new(),
            daemon: None,
        };
        lab.restart().await;
        for n in 0..services {
            let event = crate::lifecycle_acceptance::StripeEvent::checkout(
                &format!("evt_crash_{n}"),
                &format!("sub_crash_{n}"),
                &Self::hostname(n),
            );
            assert_eq!(event.deliver(&lab.http, &lab.url).await, StatusCode::OK);
        }
        lab.settled("provision", services as i64).await;
        lab
    }

    fn hostname(n: usize) -> String {
        format!("crash{n}")
    }

    fn database(&self) -> std::path::PathBuf {
        self.dir.path().join("porthole.db")
    }

    /// SIGKILLs the daemon, if one runs, and starts another.
    async fn restart(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            daemon.kill();
        }
        let log = self.dir.path().join("daemon.log");
        let daemon =
            crate::lifecycle_acceptance::ChildDaemon::spawn(&self.config, &log, &self.url).await;
        self.daemon = Some(daemon);
    }

    /// Waits until no job is unfinished and `count` jobs of `kind` have succeeded.
    async fn settled(&self, kind: &str, count: i64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while job_counts(&self.database(), kind) != (0, count) {
            assert!(
                std::time::Instant::now() < deadline,
                "the {kind} jobs did not finish"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Posts as the operator, expecting `status`; the answer.
    async fn post(&self, path: &str, key: &str, body: Value, status: StatusCode) -> Value {
        let answer = self
            .http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{path}");
        answer.json().await.unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str) -> Value {
        let answer = self
            .http
            .get(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        answer.json().await.unwrap()
    }

    /// For each service, posts what `request` gives, SIGKILLs the daemon at a random moment
    /// after and starts it again, until `kind` has succeeded once more.
    async fn kill_during(&mut self, kind: &str, request: impl Fn(i64) -> (String, Value)) {
        let services = vmids(&self.database()).len();
        let (_, before) = job_counts(&self.database(), kind);
        for n in 0..services {
            let id = n as i64 + 1;
            let (path, body) = request(id);
            self.post(&path, &format!("{kind}-{n}"), body, StatusCode::ACCEPTED)
                .await;
            tokio::time::sleep(Duration::from_millis(rand::random_range(0..250))).await;
            self.restart().await;
            self.settled(kind, before + id).await;
        }
    }

    /// Every service still has one VM, running, and its tunnel, DNS record and snippet.
    fn nothing_lost(&self) {
        use crate::lifecycle_acceptance::Leftovers;
        for (n, vmid) in vmids(&self.database()).iter().enumerate() {
            let id = n as i64 + 1;
            assert_eq!(
                Leftovers::of(&self.sim, &self.snippets, id, &Self::hostname(n)),
                Leftovers::ONE_OF_EACH,
                "service {id}"
            );
            let vmid = vmid.unwrap() as u32;
            let status = self.sim.vm_status(vmid);
            assert_eq!(status.as_deref(), Some("running"), "VM {vmid}");
        }
    }

    async fn stop(mut self) {
        drop(self.daemon.take());
        self.sim.shutdown().await;
    }
}

/// A daemon SIGKILLed at a random moment of a reinstall is started again, and the reinstall
/// finishes exactly once: one more clone, under the same VM id, with the service's tunnel, DNS
/// record and snippet kept.
#[tokio::test]
async fn a_daemon_killed_during_a_reinstall_finishes_it_exactly_once() {
    let services = 6;
    let mut lab = CrashLab::start(services).await;
    let before = vmids(&lab.database());
    lab.kill_during("reinstall", |id| {
        let body = json!({ "template": "debian-12" });
        (format!("/vms/{id}/reinstall"), body)
    })
    .await;
    lab.nothing_lost();
    assert_eq!(vmids(&lab.database()), before, "each VM keeps its id");
    let clones = succeeded(&lab.sim, "POST", |p| p.ends_with("/clone"));
    assert_eq!(
        clones,
        2 * services,
        "one clone per order and one per reinstall"
    );
    lab.stop().await;
}

/// The same for restores: each VM is backed up, then restored while the daemon is killed; each
/// restore runs exactly once.
#[tokio::test]
async fn a_daemon_killed_during_a_restore_finishes_it_exactly_once() {
    let services = 6;
    let mut lab = CrashLab::start(services).await;
    let mut backups = Vec::new();
    for id in 1..=services as i64 {
        let path = format!("/vms/{id}/backups");
        lab.post(&path, &format!("b{id}"), json!({}), StatusCode::ACCEPTED)
            .await;
        lab.settled("backup", id).await;
        let listed = lab.get(&path).await;
        backups.push(listed["backups"][0]["id"].as_str().unwrap().to_owned());
    }
    lab.kill_during("restore", |id| {
        let backup = &backups[id as usize - 1];
        let body = json!({ "confirm": CrashLab::hostname(id as usize - 1) });
        (format!("/vms/{id}/backups/{backup}/restore"), body)
    })
    .await;
    lab.nothing_lost();
    let restores = succeeded(&lab.sim, "POST", |p| p.ends_with("/nodes/pve1/qemu"));
    assert_eq!(restores, services, "one restore each");
    lab.stop().await;
}

#[tokio::test]
async fn a_password_is_reset_through_the_guest_agent_and_refused_with_the_reason_without_it() {
    let panel = panel().await;
    let (id, vmid) = alices_vm(&panel, "forgot-1", &[]).await;
    let path = format!("/api/v1/vms/{id}/password");
    let (status, answer) = panel.post("alice", &path, "pw-1", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["username"], "root");
    let password = answer["password"].as_str().unwrap();
    assert_eq!(password.len(), 20);
    // Only a crypt(3) hash of it reached Proxmox, and it is the hash of this password.
    let agent = panel.demo.sim().agent(vmid).unwrap();
    assert_eq!(agent["crypted"]["root"], true, "{agent}");
    let hash = agent["passwords"]["root"].as_str().unwrap();
    assert_eq!(crypt_like_glibc(password, hash), hash);
    assert_eq!(panel.audit("vm.password_reset").await.len(), 1);

    // The VM's own user too, but nobody else's.
    let (status, answer) = panel
        .post("alice", &path, "pw-2", json!({ "username": "debian" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = panel
        .post("alice", &path, "pw-3", json!({ "username": "postgres" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Without an answering agent the customer learns why, and what to do instead.
    assert!(panel.demo.sim().set_agent_up(vmid, false));
    let no_agent = "guest agent does not answer";
    refused(&panel, &path, json!({}), StatusCode::CONFLICT, no_agent).await;
    refused(
        &panel,
        &path,
        json!({}),
        StatusCode::CONFLICT,
        "reinstall it",
    )
    .await;
    let (status, _) = panel.post("bob", &path, "pw-5", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    panel.demo.stop().await.unwrap();
}

/// glibc's crypt(3) of `password` with the salt of `hash`, as `openssl passwd -6` computes it.
fn crypt_like_glibc(password: &str, hash: &str) -> String {
    let salt = hash.split('$').nth(2).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, password])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_vm_being_backed_up_cannot_be_snapshotted() {
    let panel = panel().await;
    let (id, vmid) = alices_vm(&panel, "backed-1", &[]).await;
    crate::lifecycle_acceptance::behind_our_back(
        panel.demo.sim(),
        reqwest::Method::POST,
        &format!("/nodes/pve1/vzdump?vmid={vmid}&storage=local&mode=snapshot"),
    )
    .await;
    let path = format!("/api/v1/vms/{id}/snapshots");
    let during = json!({ "name": "during" });
    refused(
        &panel,
        &path,
        during,
        StatusCode::CONFLICT,
        "backup of it is running",
    )
    .await;
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn graphs_show_an_hour_a_day_and_a_week_of_plausible_use() {
    let panel = panel().await;
    let (id, _) = alices_vm(&panel, "graphed-1", &[]).await;
    let graphs = format!("/api/v1/vms/{id}/graphs");
    for (timeframe, step) in [("hour", 60), ("day", 1800), ("week", 10800)] {
        let path = format!("{graphs}?timeframe={timeframe}");
        let (status, answer) = send(&panel, "alice", reqwest::Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["timeframe"], timeframe);
        assert_eq!(answer["step_secs"], step, "{timeframe}");
        let points = answer["points"].as_array().unwrap();
        assert_eq!(points.len(), 70, "{timeframe}");
        let times: Vec<u64> = points.iter().map(|p| p["time"].as_u64().unwrap()).collect();
        assert!(
            times.windows(2).all(|w| w[1] - w[0] == step),
            "{timeframe}: {times:?}"
        );
        let last = points.last().unwrap();
        let cpu = last["cpu"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&cpu) && cpu > 0.0, "{last}");
        assert!(last["memory"].as_f64().unwrap() <= last["memory_max"].as_f64().unwrap());
        for series in ["net_in", "net_out", "disk_read", "disk_write"] {
            assert!(last[series].as_f64().unwrap() >= 0.0, "{series}: {last}");
        }
    }
    let (status, answer) = send(
        &panel,
        "alice",
        reqwest::Method::GET,
        &format!("{graphs}?timeframe=decade"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = send(&panel, "bob", reqwest::Method::GET, &graphs, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    panel.demo.stop().await.unwrap();
}

/// The backups the simulator holds whose notes name service `id`.
fn backups_of(panel: &Panel, id: i64) -> usize {
    let marker = format!("porthole-service:{id}");
    let state = panel.demo.sim().state_json();
    state["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["notes"].as_str().is_some_and(|n| n.contains(&marker)))
        .count()
}

#[tokio::test]
async fn backups_are_kept_to_the_plans_number_restored_on_confirmation_and_go_with_the_vm() {
    let panel = panel().await;
    let (id, vmid) = alices_vm(&panel, "saved-1", &[]).await;
    let backups = format!("/api/v1/vms/{id}/backups");
    for n in 0..3 {
        let (status, body) = panel
            .post("alice", &backups, &format!("b-{n}"), json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let view = panel.settled(id).await;
        assert_eq!(last_job(&view)["state"], "succeeded", "{view}");
    }
    // The plan keeps two: the oldest went.
    let (_, listed) = send(&panel, "alice", reqwest::Method::GET, &backups, None).await;
    assert_eq!(listed["kept"], 2, "{listed}");
    let list = listed["backups"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{listed}");
    assert_eq!(backups_of(&panel, id), 2);
    for backup in list {
        assert!(backup["size_bytes"].as_u64().unwrap() > 0, "{backup}");
        assert!(backup["taken_at"].as_u64().is_some(), "{backup}");
    }
    assert_eq!(panel.audit("vm.backup_pruned").await.len(), 1);

    // A restore needs the VM's name, and runs once.
    let newest = list[1]["id"].as_str().unwrap();
    let restore = format!("{backups}/{newest}/restore");
    let wrong = json!({ "confirm": "saved-2" });
    refused(
        &panel,
        &restore,
        wrong,
        StatusCode::BAD_REQUEST,
        "VM's name",
    )
    .await;
    let (status, _) = panel
        .post(
            "alice",
            &format!("{backups}/0000000000000000/restore"),
            "r-0",
            json!({ "confirm": "saved-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = panel
        .post("alice", &restore, "r-1", json!({ "confirm": "saved-1" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let view = panel.settled(id).await;
    assert_eq!(last_job(&view)["state"], "succeeded", "{view}");
    assert_eq!(last_job(&view)["kind"], "restore", "{view}");
    assert_eq!(panel.demo.sim().vm_status(vmid).as_deref(), Some("running"));
    let restores = panel.posts_to("/nodes/pve1/qemu");
    assert_eq!(restores.len(), 1, "one restore");
    let config = panel.demo.sim().vm_config("pve1", vmid).unwrap();
    assert!(config["description"].contains(&format!("porthole-service:{id}")));
    assert!(
        !config["description"].contains("porthole-restore"),
        "{config:?}"
    );

    // Bob cannot see them; termination removes them.
    let (status, _) = send(&panel, "bob", reqwest::Method::GET, &backups, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/terminate"),
            "t",
            json!({}),
        )
        .await;
    panel.settled(id).await;
    assert_eq!(backups_of(&panel, id), 0, "no backup outlives its service");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_plans_schedule_takes_one_backup_per_period_by_itself() {
    let panel = panel().await;
    let (id, _) = alices_vm(&panel, "daily-1", &[]).await;
    let plan = panel.get("admin", "/api/v1/plans").await;
    let mut small = plan
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "small")
        .unwrap()
        .clone();
    small["backup_schedule"] = json!("daily");
    panel.put("/api/v1/plans/small", small).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while backups_of(&panel, id) == 0 {
        assert!(std::time::Instant::now() < deadline, "no scheduled backup");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Looks every second go on, but the day's backup is taken.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = panel.settled(id).await;
    let backups: Vec<&Value> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "backup")
        .collect();
    assert_eq!(backups.len(), 1, "{view}");
    assert_eq!(backups_of(&panel, id), 1);
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_plan_without_backups_refuses_one_with_the_reason() {
    let panel = Panel::start().await;
    let (id, _) = alices_vm(&panel, "nobackup-1", &[]).await;
    let path = format!("/api/v1/vms/{id}/backups");
    refused(
        &panel,
        &path,
        json!({}),
        StatusCode::CONFLICT,
        "offers no backups",
    )
    .await;
    panel.demo.stop().await.unwrap();
}

/// A pool of 50 IPv4 addresses and one of IPv6; released addresses wait two seconds.
const POOLS: &str = r#"address_hold_secs = 2

[[lifecycle.ip_pools]]
name = "v4"
cluster = "sim"
network = "192.0.2.0/24"
gateway = "192.0.2.1"
ranges = ["192.0.2.10-192.0.2.59"]

[[lifecycle.ip_pools]]
name = "v6"
cluster = "sim"
network = "2001:db8:5::/64"
gateway = "2001:db8:5::1"
ranges = ["2001:db8:5::100-2001:db8:5::1ff"]
"#;

/// The `v4` pool as operators see it.
async fn v4_pool(panel: &Panel) -> Value {
    let pools = panel.get("admin", "/api/v1/ip-pools").await;
    pools
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "v4")
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn fifty_concurrent_orders_draw_fifty_addresses_once_and_the_fifty_first_is_refused() {
    let panel = Panel::with(Duration::from_millis(20), POOLS).await;
    let tiny = json!({
        "name": "tiny", "cores": 1, "memory_mib": 256, "disk_gib": 10, "templates": ["debian-12"]
    });
    panel.put("/api/v1/plans/tiny", tiny).await;
    let alice = panel.alice_id().await;
    let quota = json!({
        "max_vms": 100, "max_cores": 100, "max_memory_mib": 100000, "max_disk_gib": 10000
    });
    panel
        .put(&format!("/api/v1/users/{alice}/quota"), quota)
        .await;

    let orders = (0..51).map(|n| {
        let body = json!({
            "customer": alice, "plan": "tiny", "template": "debian-12",
            "hostname": format!("pool-{n}"), "username": "debian"
        });
        let panel = &panel;
        async move {
            panel
                .post("admin", "/api/v1/orders", &format!("pool-{n}"), body)
                .await
        }
    });
    let answers = futures_util::future::join_all(orders).await;
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(refused.len(), 1, "{answers:?}");
    let reason = refused[0]["error"].as_str().unwrap();
    assert!(reason.contains("no IPv4 address is free"), "{reason}");
    let ids: Vec<i64> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .map(|(_, body)| body["service_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 50);

    let mut v4s = std::collections::BTreeSet::new();
    let mut v6s = std::collections::BTreeSet::new();
    for id in &ids {
        let view = panel.settled(*id).await;
        assert_eq!(view["service"]["state"], "active", "{view}");
        let vmid = view["service"]["vmid"].as_u64().unwrap() as u32;
        let (_, vm) = send(
            &panel,
            "alice",
            reqwest::Method::GET,
            &format!("/api/v1/vms/{id}"),
            None,
        )
        .await;
        let addresses: Vec<&str> = vm["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["address"].as_str().unwrap())
            .collect();
        let [v4, v6] = addresses[..] else {
            panic!("{vm}");
        };
        let config = panel.demo.sim().vm_config("pve1", vmid).unwrap();
        assert_eq!(
            config["ipconfig0"],
            format!("ip={v4}/24,gw=192.0.2.1,ip6={v6}/64,gw6=2001:db8:5::1")
        );
        v4s.insert(v4.to_owned());
        v6s.insert(v6.to_owned());
    }
    let expected: std::collections::BTreeSet<String> =
        (10..60).map(|n| format!("192.0.2.{n}")).collect();
    assert_eq!(v4s, expected, "every address once");
    assert_eq!(v6s.len(), 50);
    let pool = v4_pool(&panel).await;
    assert_eq!(
        (
            pool["size"].clone(),
            pool["assigned"].clone(),
            pool["free"].clone()
        ),
        (json!(50), json!(50), json!(0))
    );

    // A terminated service's address is held, then handed out again.
    let first = ids[0];
    let (_, vm) = send(
        &panel,
        "alice",
        reqwest::Method::GET,
        &format!("/api/v1/vms/{first}"),
        None,
    )
    .await;
    let released = vm["addresses"][0]["address"].as_str().unwrap().to_owned();
    panel
        .post(
            "admin",
            &format!("/api/v1/services/{first}/terminate"),
            "t",
            json!({}),
        )
        .await;
    panel.settled(first).await;
    let pool = v4_pool(&panel).await;
    assert_eq!(
        (pool["held"].clone(), pool["free"].clone()),
        (json!(1), json!(0)),
        "{pool}"
    );
    let again = json!({
        "customer": alice, "plan": "tiny", "template": "debian-12",
        "hostname": "pool-again", "username": "debian"
    });
    let (status, _) = panel
        .post("admin", "/api/v1/orders", "again-early", again.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "held, not free");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, receipt) = panel.post("admin", "/api/v1/orders", "again", again).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    let id = receipt["service_id"].as_i64().unwrap();
    panel.settled(id).await;
    let (_, vm) = send(
        &panel,
        "alice",
        reqwest::Method::GET,
        &format!("/api/v1/vms/{id}"),
        None,
    )
    .await;
    assert_eq!(vm["addresses"][0]["address"], released.as_str());
    panel.demo.stop().await.unwrap();
}

/// After a customer has used every self-service operation, nothing any of their reads answers
/// names a node, a storage, a volume or a task.
#[tokio::test]
async fn no_answer_to_a_customer_names_a_node_storage_volume_or_task() {
    let panel = Panel::with(Duration::from_millis(20), POOLS).await;
    let small = json!({
        "name": "small", "cores": 2, "memory_mib": 2048, "disk_gib": 20,
        "templates": ["debian-12"], "max_snapshots": 2, "max_backups": 2, "backup_schedule": "daily"
    });
    panel.put("/api/v1/plans/small", small).await;
    let (_, key) = add_key(&panel, "alice", "laptop", LAPTOP).await;
    let (id, _) = alices_vm(&panel, "scanned-1", &[key["id"].as_i64().unwrap()]).await;
    // The plan's daily backup comes first, at a moment of the scheduler's choosing; the
    // customer's operations then never find it in progress.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while backups_of(&panel, id) == 0 {
        assert!(std::time::Instant::now() < deadline, "no scheduled backup");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panel.settled(id).await;
    let vm = format!("/api/v1/vms/{id}");
    for (path, body) in [
        (format!("{vm}/snapshots"), json!({ "name": "before" })),
        (
            format!("{vm}/snapshots/before/rollback"),
            json!({ "confirm": "before" }),
        ),
        (format!("{vm}/backups"), json!({})),
        // Last: a reinstall takes the snapshots with the old disk.
        (
            format!("{vm}/reinstall"),
            json!({ "template": "debian-12" }),
        ),
    ] {
        let (status, answer) = panel.post("alice", &path, &path, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {answer}");
        assert_nothing_for_operators(&path, &answer);
        panel.settled(id).await;
    }
    let (_, answer) = panel
        .post("alice", &format!("{vm}/password"), "pw", json!({}))
        .await;
    assert_nothing_for_operators("password", &answer);
    let (_, listed) = send(
        &panel,
        "alice",
        reqwest::Method::GET,
        &format!("{vm}/backups"),
        None,
    )
    .await;
    let backup = listed["backups"][0]["id"].as_str().unwrap().to_owned();
    let restore = format!("{vm}/backups/{backup}/restore");
    let (status, answer) = panel
        .post(
            "alice",
            &restore,
            "restore",
            json!({ "confirm": "scanned-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    panel.settled(id).await;

    // Every read a customer has, each scanned by `send`.
    for path in [
        "/api/v1/vms".to_owned(),
        vm.clone(),
        format!("/api/v1/services/{id}"),
        format!("{vm}/snapshots"),
        format!("{vm}/backups"),
        format!("{vm}/graphs?timeframe=day"),
        "/api/v1/ssh-keys".to_owned(),
        "/api/v1/account/activity".to_owned(),
        "/api/v1/plans".to_owned(),
        "/api/v1/whoami".to_owned(),
    ] {
        let (status, _) = send(&panel, "alice", reqwest::Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // The progress stream too: its history is sent first.
    let mut events = panel
        .http
        .get(panel.url(&format!("/api/v1/services/{id}/events")))
        .bearer_auth(panel.token("alice"))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let half_a_second = Duration::from_millis(500);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(half_a_second, events.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("restore_backup"), "{text}");
    // Each event says what kind of job it is a step of.
    assert!(text.contains(r#""kind":"restore""#), "{text}");
    assert_nothing_for_operators("progress", &Value::String(text));
    panel.demo.stop().await.unwrap();
}

/// Pools whose reverse zones a real PowerDNS keeps: the IPv4 one through dns-powerdns, the IPv6
/// one through a provider built against contract 0.1.0, which predates reverse DNS. Names are
/// checked against the same PowerDNS; VMs are named under lab.example.test.
fn reverse_dns_config(pdns: &PowerDns) -> String {
    let (powerdns, powerdns_sha) = crate::first_party::component("dns-powerdns");
    let old = crate::plugins_sandbox::wasm("dns-contract-0-1-0");
    let old_sha = crate::plugins_sandbox::sha256_of(&old);
    format!(
        r#"domain = "lab.example.test"
resolvers = ["{resolver}"]

[[lifecycle.ip_pools]]
name = "v4"
cluster = "sim"
network = "192.0.2.0/24"
gateway = "192.0.2.1"
ranges = ["192.0.2.10-192.0.2.20"]
reverse_zone = "2.0.192.in-addr.arpa"
reverse_dns_plugin = "dns-powerdns"

[[lifecycle.ip_pools]]
name = "v6"
cluster = "sim"
network = "2001:db8:5::/64"
gateway = "2001:db8:5::1"
reverse_zone = "0.0.0.0.5.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
reverse_dns_plugin = "old-dns"

[[plugins]]
name = "dns-powerdns"
world = "dns-provider"
path = "{powerdns}"
sha256 = "{powerdns_sha}"
allowed_hosts = ["{api}"]
allowed_addresses = ["127.0.0.1"]
settings = {{ api_url = "{api}", api_key = "{key}" }}

[[plugins]]
name = "old-dns"
world = "dns-provider"
path = "{old}"
sha256 = "{old_sha}"
"#,
        resolver = pdns.dns_addr(),
        powerdns = powerdns.display(),
        old = old.display(),
        api = pdns.api_url,
        key = pdns.api_key,
    )
}

/// Points `address` of VM `id` at `hostname` as alice: the status and the answer.
async fn set_reverse_dns(
    panel: &Panel,
    id: i64,
    address: &str,
    hostname: &str,
) -> (StatusCode, Value) {
    send(
        panel,
        "alice",
        reqwest::Method::PUT,
        &format!("/api/v1/vms/{id}/addresses/{address}/reverse-dns"),
        Some(json!({ "hostname": hostname })),
    )
    .await
}

/// The VM's address `address` as alice sees it.
async fn address_view(panel: &Panel, id: i64, address: &str) -> Value {
    let (_, vm) = send(
        panel,
        "alice",
        reqwest::Method::GET,
        &format!("/api/v1/vms/{id}"),
        None,
    )
    .await;
    vm["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == address)
        .cloned()
        .unwrap_or_else(|| panic!("{address} is not in {vm}"))
}

#[tokio::test]
async fn reverse_dns_is_set_when_the_name_resolves_back_and_goes_with_the_vm() {
    let pdns = PowerDns::start().await;
    for zone in ["customer.test", "lab.example.test", "2.0.192.in-addr.arpa"] {
        pdns.create_zone(zone).await;
    }
    let panel = panel_with(&reverse_dns_config(&pdns)).await;
    let (id, _) = alices_vm(&panel, "mail-1", &[]).await;
    let v4 = address_view(&panel, id, "192.0.2.10").await;
    assert_eq!(
        v4,
        json!({"address": "192.0.2.10", "family": "ipv4", "reverse_dns": null,
               "reverse_dns_settable": true})
    );
    let v6 = address_view(&panel, id, "2001:db8:5::2").await;
    assert_eq!(v6["reverse_dns_settable"], false, "{v6}");

    // A name that does not resolve back is refused with what to do.
    let (status, body) = set_reverse_dns(&panel, id, "192.0.2.10", "mail.customer.test").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"],
        "mail.customer.test does not resolve to 192.0.2.10: give it an A record for 192.0.2.10 \
         first, or use the VM's own name, mail-1.lab.example.test"
    );
    // What a name does resolve to is never told: the daemon's resolver is not the customer's.
    let elsewhere: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    pdns.put_address("customer.test", "other.customer.test", elsewhere)
        .await;
    let (status, body) = set_reverse_dns(&panel, id, "192.0.2.10", "other.customer.test").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(!body.to_string().contains("198.51.100.7"), "{body}");
    // Another name under the provider's zone (another customer's VM, say) must resolve back too.
    let (status, body) = set_reverse_dns(&panel, id, "192.0.2.10", "mail-2.lab.example.test").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for bad in ["not a name", "_dmarc.customer.test", "192.0.2.10"] {
        let (status, body) = set_reverse_dns(&panel, id, "192.0.2.10", bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    // A resolver that cannot say (this PowerDNS serves no such zone, and refuses) is not a no.
    let (status, body) = set_reverse_dns(&panel, id, "192.0.2.10", "mail.elsewhere.test").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("cannot be checked"),
        "{body}"
    );

    // Once it resolves back, the PTR is written and served.
    let mine: std::net::IpAddr = "192.0.2.10".parse().unwrap();
    pdns.put_address("customer.test", "mail.customer.test", mine)
        .await;
    let (status, receipt) = set_reverse_dns(&panel, id, "192.0.2.10", "Mail.Customer.Test.").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{receipt}");
    assert_eq!(last_job(&panel.settled(id).await)["state"], "succeeded");
    assert_eq!(
        pdns.dig("10.2.0.192.in-addr.arpa", "PTR"),
        "mail.customer.test."
    );
    let v4 = address_view(&panel, id, "192.0.2.10").await;
    assert_eq!(v4["reverse_dns"], "mail.customer.test", "{v4}");

    // The VM's own name needs no lookup; it replaces the record. The same key again is the
    // same request; the key reused for another name is refused.
    let own = json!({"hostname": "mail-1.lab.example.test"});
    let path = format!("/api/v1/vms/{id}/addresses/192.0.2.10/reverse-dns");
    let put = |key: &'static str, body: Value| {
        panel
            .http
            .put(panel.url(&path))
            .bearer_auth(panel.token("alice"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = put("own-name", own.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = put("own-name", own).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.unwrap()["job_id"],
        first["job_id"]
    );
    let reused = put("own-name", json!({"hostname": "mail.customer.test"}))
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    panel.settled(id).await;
    assert_eq!(
        pdns.dig("10.2.0.192.in-addr.arpa", "PTR"),
        "mail-1.lab.example.test."
    );

    // The IPv6 pool's provider predates reverse DNS; an address not held, or another's VM: 404.
    let (status, body) =
        set_reverse_dns(&panel, id, "2001:db8:5::2", "mail-1.lab.example.test").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not available"),
        "{body}"
    );
    let (status, _) = set_reverse_dns(&panel, id, "192.0.2.11", "mail-1.lab.example.test").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &panel,
        "bob",
        reqwest::Method::PUT,
        &format!("/api/v1/vms/{id}/addresses/192.0.2.10/reverse-dns"),
        Some(json!({"hostname": "mail-1.lab.example.test"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Removed on request, and audited for its owner.
    let (status, _) = send(
        &panel,
        "alice",
        reqwest::Method::DELETE,
        &format!("/api/v1/vms/{id}/addresses/192.0.2.10/reverse-dns"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    panel.settled(id).await;
    assert_eq!(pdns.dig("10.2.0.192.in-addr.arpa", "PTR"), "");
    assert_eq!(
        address_view(&panel, id, "192.0.2.10").await["reverse_dns"],
        Value::Null
    );
    let activity = panel
        .get("alice", "/api/v1/account/activity?action=vm")
        .await;
    let actions: Vec<&str> = activity
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .filter(|action| action.starts_with("vm.reverse_dns"))
        .collect();
    assert_eq!(
        actions,
        [
            "vm.reverse_dns_removed",
            "vm.reverse_dns_set",
            "vm.reverse_dns_set"
        ],
        "{activity}"
    );

    // Set again, then the VM is terminated: its PTR goes before its address is released.
    let (status, _) = set_reverse_dns(&panel, id, "192.0.2.10", "mail.customer.test").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    panel.settled(id).await;
    assert_eq!(
        pdns.dig("10.2.0.192.in-addr.arpa", "PTR"),
        "mail.customer.test."
    );
    panel
        .post(
            "admin",
            &format!("/api/v1/services/{id}/terminate"),
            "end",
            json!({}),
        )
        .await;
    let view = panel.settled(id).await;
    assert_eq!(view["service"]["state"], "terminated", "{view}");
    assert_eq!(pdns.dig("10.2.0.192.in-addr.arpa", "PTR"), "");
    panel.demo.stop().await.unwrap();
}

#[tokio::test]
async fn a_name_resolves_back_by_the_records_of_its_addresss_own_family() {
    let pdns = PowerDns::start().await;
    pdns.create_zone("customer.test").await;
    let (v4, v6): (std::net::IpAddr, std::net::IpAddr) = (
        "192.0.2.10".parse().unwrap(),
        "2001:db8::10".parse().unwrap(),
    );
    pdns.put_address("customer.test", "dual.customer.test", v4)
        .await;
    pdns.put_address("customer.test", "dual.customer.test", v6)
        .await;
    pdns.put_address("customer.test", "four.customer.test", v4)
        .await;
    let resolvers = [pdns.dns_addr()];
    let back = |name: &'static str, address| {
        porthole::lifecycle::reverse_dns::resolves_back(&resolvers, name, address)
    };
    assert_eq!(back("dual.customer.test", v4).await, Ok(true));
    assert_eq!(
        back("dual.customer.test", v6).await,
        Ok(true),
        "AAAA beside an A"
    );
    assert_eq!(back("four.customer.test", v4).await, Ok(true));
    assert_eq!(back("four.customer.test", v6).await, Ok(false));
    assert_eq!(back("none.customer.test", v4).await, Ok(false));
    assert!(
        back("mail.elsewhere.test", v4).await.is_err(),
        "refused: not a no"
    );
}
