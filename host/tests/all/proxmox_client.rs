//! The Proxmox API client against the simulator, over real HTTPS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use porthole::proxmox::{
    Client, ClientSettings, CloneRequest, Credentials, ProxmoxError, ResourceKind, RetryPolicy,
    TaskState, TlsFailure, TlsTrust, VmConfigUpdate, VmPowerState, parse_fingerprint,
};
use porthole_sim::{AuthKind, Fault, FaultKind, SimConfig, SimHandle, Simulator, Times, VmSeed};
use tokio::time::Instant;

const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXIrYS9iPWM= alice@laptop";
const KEY_B: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@desk";

async fn start_sim() -> SimHandle {
    Simulator::start(SimConfig {
        auth_failure_delay: Duration::from_millis(20),
        task_duration: Duration::from_millis(50),
        clone_duration: Duration::from_millis(800),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn pinned(sim: &SimHandle) -> TlsTrust {
    let pin = parse_fingerprint(&sim.cert_fingerprint_sha256()).expect("sim fingerprint parses");
    TlsTrust::PinnedSha256(vec![pin])
}

fn settings(sim: &SimHandle, auth: Credentials, trust: TlsTrust) -> ClientSettings {
    let mut settings = ClientSettings::new("sim", vec![sim.api_url()], auth, trust);
    settings.request_timeout = Duration::from_secs(10);
    settings.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
    };
    settings
}

fn token(sim: &SimHandle) -> Credentials {
    Credentials::ApiToken {
        token_id: sim.token_id(),
        secret: sim.token_secret(),
    }
}

fn ticket(sim: &SimHandle) -> Credentials {
    Credentials::Ticket {
        username: sim.user(),
        password: sim.password(),
    }
}

fn token_client(sim: &SimHandle) -> Client {
    Client::new(settings(sim, token(sim), pinned(sim))).expect("client builds")
}

fn ticket_client(sim: &SimHandle) -> Client {
    Client::new(settings(sim, ticket(sim), pinned(sim))).expect("client builds")
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// How many recorded requests had this method and path (below `/api2/json`).
fn count(sim: &SimHandle, method: &str, path: &str) -> usize {
    let full = format!("/api2/json{path}");
    sim.requests()
        .iter()
        .filter(|r| r.method == method && r.path == full)
        .count()
}

async fn add_vm(sim: &SimHandle, vmid: u32, running: bool) {
    sim.add_vm(VmSeed {
        node: "pve1".into(),
        vmid,
        name: format!("vm{vmid}"),
        running,
        ..VmSeed::default()
    })
    .expect("seed VM");
}

#[tokio::test]
async fn api_token_reads_version_nodes_and_resources() {
    let sim = start_sim().await;
    let client = token_client(&sim);

    let version = client.version().await.unwrap();
    assert!(!version.release.is_empty());

    let nodes = client.nodes().await.unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    assert!(
        names.contains(&"pve1") && names.contains(&"pve2"),
        "{names:?}"
    );

    let vms = client
        .cluster_resources(Some(ResourceKind::Vm))
        .await
        .unwrap();
    let template = vms
        .iter()
        .find(|r| r.vmid == Some(9000))
        .expect("template 9000");
    assert_eq!(template.node.as_deref(), Some("pve1"));
    assert_eq!(template.template, Some(true));
    assert!(vms.iter().all(|r| r.kind == "qemu" || r.kind == "lxc"));

    let all = client.cluster_resources(None).await.unwrap();
    assert!(all.iter().any(|r| r.kind == "node"));
    assert!(sim.requests().iter().all(|r| r.auth == AuthKind::Token));
    let filtered = sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/api2/json/cluster/resources")
        .unwrap();
    assert_eq!(filtered.params.get("type").map(String::as_str), Some("vm"));
}

#[tokio::test]
async fn next_vmid_is_free() {
    let sim = start_sim().await;
    let client = token_client(&sim);
    let vmid = client.next_vmid().await.unwrap();
    assert!(vmid >= 100);
    assert!(sim.vm_status(vmid).is_none());
}

#[tokio::test]
async fn clone_and_wait_creates_the_vm() {
    let sim = start_sim().await;
    let client = token_client(&sim);
    let newid = client.next_vmid().await.unwrap();
    let mut request = CloneRequest::new(newid);
    request.name = Some("web-1".into());
    request.description = Some("porthole service 42".into());

    let upid = client.clone_vm("pve1", 9000, &request).await.unwrap();
    assert_eq!(upid.node(), "pve1");
    assert_eq!(upid.task_type(), "qmclone");
    let outcome = client.wait_task(&upid, soon()).await.unwrap();
    assert_eq!(outcome.exitstatus, "OK");

    let status = client.vm_status("pve1", newid).await.unwrap();
    assert_eq!(status.vmid, newid);
    assert_eq!(status.status, VmPowerState::Stopped);
    let config = client.vm_config("pve1", newid).await.unwrap();
    assert_eq!(config.get("name"), Some("web-1"));
    assert_eq!(config.get("description"), Some("porthole service 42"));
    assert!(config.digest.is_some());
}

#[tokio::test]
async fn task_status_reports_running_then_stopped() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = token_client(&sim);
    let upid = client.start_vm("pve1", 200).await.unwrap();
    let first = client.task_status(&upid).await.unwrap();
    assert_eq!(first.upid, upid);
    assert_eq!(first.status, TaskState::Running);
    client.wait_task(&upid, soon()).await.unwrap();
    let last = client.task_status(&upid).await.unwrap();
    assert_eq!(last.status, TaskState::Stopped);
    assert_eq!(last.exitstatus.as_deref(), Some("OK"));
}

#[tokio::test]
async fn config_updates_apply_synchronously_and_as_a_task() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = token_client(&sim);

    let sync = VmConfigUpdate::new()
        .cores(4)
        .memory_mib(4096)
        .name("db-1")
        .tags(["porthole", "plan-s"])
        .ciuser("admin")
        .description("porthole service 7")
        .ipconfig(0, "ip=dhcp");
    client.update_vm_config("pve1", 200, &sync).await.unwrap();
    let config = sim.vm_config("pve1", 200).unwrap();
    assert_eq!(config["cores"], "4");
    assert_eq!(config["memory"], "4096");
    assert_eq!(config["name"], "db-1");
    assert_eq!(config["ipconfig0"], "ip=dhcp");
    assert_eq!(config["description"], "porthole service 7");

    let read = client.vm_config("pve1", 200).await.unwrap();
    let update = VmConfigUpdate::new()
        .onboot(true)
        .delete("ipconfig0")
        .digest(read.digest.unwrap());
    let upid = client
        .update_vm_config_async("pve1", 200, &update)
        .await
        .unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    let config = sim.vm_config("pve1", 200).unwrap();
    assert_eq!(config["onboot"], "1");
    assert!(!config.contains_key("ipconfig0"));
}

#[tokio::test]
async fn cores_and_memory_changed_while_running_wait_for_a_restart() {
    let sim = start_sim().await;
    add_vm(&sim, 200, true).await;
    let client = token_client(&sim);
    let before = client.vm_status("pve1", 200).await.unwrap().cpus;

    let update = VmConfigUpdate::new()
        .cores(4)
        .memory_mib(8192)
        .name("grown");
    client.update_vm_config("pve1", 200, &update).await.unwrap();
    let waiting: Vec<String> = client
        .vm_pending("pve1", 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.waits_for_restart())
        .map(|c| c.key)
        .collect();
    assert_eq!(waiting, ["cores", "memory"], "a name applies at once");
    let shown = client.vm_config("pve1", 200).await.unwrap();
    assert_eq!(shown.get("cores"), Some("4"), "config shows pending values");
    assert_eq!(client.vm_status("pve1", 200).await.unwrap().cpus, before);

    let upid = client.reboot_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    let pending = client.vm_pending("pve1", 200).await.unwrap();
    assert!(!pending.iter().any(|c| c.waits_for_restart()));
    assert_eq!(client.vm_status("pve1", 200).await.unwrap().cpus, Some(4.0));
}

#[tokio::test]
async fn sshkeys_travel_as_percent_20_and_arrive_with_spaces() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = token_client(&sim);
    let update = VmConfigUpdate::new().sshkeys([KEY_A, KEY_B]);
    client.update_vm_config("pve1", 200, &update).await.unwrap();

    let sent = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let wire = &sent.params["sshkeys"];
    assert!(wire.starts_with("ssh-ed25519%20AAAA"), "{wire}");
    assert!(!wire.contains(' ') && !wire.contains('+'), "{wire}");

    let stored = sim.vm_config("pve1", 200).unwrap()["sshkeys"].clone();
    let decoded = percent_encoding::percent_decode_str(&stored)
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, format!("{KEY_A}\n{KEY_B}"));
    let read = client.vm_config("pve1", 200).await.unwrap();
    assert_eq!(read.sshkeys().unwrap(), format!("{KEY_A}\n{KEY_B}"));
}

#[tokio::test]
async fn resize_grows_the_disk() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = token_client(&sim);
    let before = sim.vm_config("pve1", 200).unwrap()["scsi0"].clone();
    let upid = client
        .resize_disk("pve1", 200, "scsi0", "+1G")
        .await
        .unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    let after = sim.vm_config("pve1", 200).unwrap()["scsi0"].clone();
    assert_ne!(before, after);
}

#[tokio::test]
async fn power_actions_run_as_tasks() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = token_client(&sim);

    let upid = client.start_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    assert_eq!(sim.vm_status(200).as_deref(), Some("running"));
    let status = client.vm_status("pve1", 200).await.unwrap();
    assert_eq!(status.status, VmPowerState::Running);

    let upid = client.reboot_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    assert_eq!(sim.vm_status(200).as_deref(), Some("running"));

    let upid = client.shutdown_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    assert_eq!(sim.vm_status(200).as_deref(), Some("stopped"));

    let upid = client.start_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    let upid = client.stop_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    assert_eq!(sim.vm_status(200).as_deref(), Some("stopped"));
}

#[tokio::test]
async fn delete_purges_the_vm() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = token_client(&sim);
    let upid = client.delete_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    assert!(sim.vm_status(200).is_none());
    let sent = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(sent.params["purge"], "1");
    assert_eq!(sent.params["destroy-unreferenced-disks"], "1");
}

#[tokio::test]
async fn missing_vm_is_not_found_with_proxmox_message() {
    let sim = start_sim().await;
    let client = token_client(&sim);
    let err = client.vm_status("pve1", 12345).await.unwrap_err();
    match &err {
        ProxmoxError::NotFound { message, call, .. } => {
            assert!(message.contains("does not exist"), "{message}");
            assert_eq!(call, "GET nodes/pve1/qemu/12345/status/current");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("sim: GET nodes/pve1/qemu/12345")
    );
}

#[tokio::test]
async fn ticket_auth_logs_in_and_writes_with_csrf() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = ticket_client(&sim);
    client.version().await.unwrap();
    let update = VmConfigUpdate::new().cores(2);
    client.update_vm_config("pve1", 200, &update).await.unwrap();
    let upid = client.start_vm("pve1", 200).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();

    assert_eq!(sim.vm_config("pve1", 200).unwrap()["cores"], "2");
    assert_eq!(
        count(&sim, "POST", "/access/ticket"),
        1,
        "one login serves all calls"
    );
    let put = sim
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.auth, AuthKind::Ticket);
}

#[tokio::test]
async fn expired_ticket_is_renewed_once_and_the_call_succeeds() {
    let sim = start_sim().await;
    let client = ticket_client(&sim);
    client.version().await.unwrap();
    sim.advance_clock(Duration::from_secs(3 * 3600));
    client.version().await.unwrap();
    assert_eq!(count(&sim, "POST", "/access/ticket"), 2);
    assert_eq!(
        count(&sim, "GET", "/version"),
        3,
        "one refused, then retried once"
    );
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let sim = start_sim().await;
    let auth = Credentials::ApiToken {
        token_id: sim.token_id(),
        secret: "00000000-0000-0000-0000-000000000000".into(),
    };
    let client = Client::new(settings(&sim, auth, pinned(&sim))).unwrap();
    let err = client.version().await.unwrap_err();
    assert!(matches!(err, ProxmoxError::Unauthorized { .. }), "{err:?}");
    assert_eq!(count(&sim, "GET", "/version"), 1, "a 401 is never retried");
}

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let sim = start_sim().await;
    let auth = Credentials::Ticket {
        username: sim.user(),
        password: "wrong".into(),
    };
    let client = Client::new(settings(&sim, auth, pinned(&sim))).unwrap();
    let err = client.version().await.unwrap_err();
    match err {
        ProxmoxError::Unauthorized { call, .. } => assert_eq!(call, "POST access/ticket"),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(count(&sim, "GET", "/version"), 0);
}

#[tokio::test]
async fn task_failure_carries_proxmox_message() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    sim.inject(Fault {
        method: Some("POST".into()),
        path: "/nodes/{node}/qemu/{vmid}/status/start".into(),
        kind: FaultKind::TaskFail {
            message: "start failed: QEMU exited with code 1".into(),
        },
        times: Times::ONCE,
    });
    let client = token_client(&sim);
    let upid = client.start_vm("pve1", 200).await.unwrap();
    match client.wait_task(&upid, soon()).await.unwrap_err() {
        ProxmoxError::TaskFailed {
            upid: failed,
            exitstatus,
            ..
        } => {
            assert_eq!(failed, upid);
            assert!(
                exitstatus.contains("QEMU exited with code 1"),
                "{exitstatus}"
            );
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn wait_task_gives_up_at_the_deadline_naming_the_upid() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    sim.inject(Fault {
        method: None,
        path: "/nodes/{node}/qemu/{vmid}/status/start".into(),
        kind: FaultKind::TaskStuck {},
        times: Times::ONCE,
    });
    let client = token_client(&sim);
    let upid = client.start_vm("pve1", 200).await.unwrap();
    let started = Instant::now();
    let err = client
        .wait_task(&upid, Instant::now() + Duration::from_millis(400))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, ProxmoxError::TaskTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains(upid.as_str()));
}

#[tokio::test]
async fn transient_5xx_on_a_get_is_retried_and_succeeds() {
    let sim = start_sim().await;
    sim.inject(Fault {
        method: Some("GET".into()),
        path: "/version".into(),
        kind: FaultKind::Status {
            code: 503,
            message: "Service Unavailable".into(),
        },
        times: Times::ONCE,
    });
    let client = token_client(&sim);
    client.version().await.unwrap();
    assert_eq!(count(&sim, "GET", "/version"), 2);
}

#[tokio::test]
async fn retries_are_bounded() {
    let sim = start_sim().await;
    sim.inject(Fault {
        method: None,
        path: "/nodes".into(),
        kind: FaultKind::Status {
            code: 502,
            message: "Bad Gateway".into(),
        },
        times: Times::ALWAYS,
    });
    let client = token_client(&sim);
    match client.nodes().await.unwrap_err() {
        ProxmoxError::Transient { attempts, .. } => assert_eq!(attempts, 3),
        other => panic!("expected Transient, got {other:?}"),
    }
    assert_eq!(count(&sim, "GET", "/nodes"), 3);
}

#[tokio::test]
async fn clone_is_never_repeated_after_a_5xx() {
    let sim = start_sim().await;
    sim.inject(Fault {
        method: Some("POST".into()),
        path: "/nodes/{node}/qemu/{vmid}/clone".into(),
        kind: FaultKind::Status {
            code: 503,
            message: "Service Unavailable".into(),
        },
        times: Times::ONCE,
    });
    let client = token_client(&sim);
    let err = client
        .clone_vm("pve1", 9000, &CloneRequest::new(300))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProxmoxError::Transient { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(count(&sim, "POST", "/nodes/pve1/qemu/9000/clone"), 1);
}

#[tokio::test]
async fn start_during_a_clone_is_locked() {
    let sim = start_sim().await;
    let client = token_client(&sim);
    let mut request = CloneRequest::new(300);
    request.full = Some(true);
    let upid = client.clone_vm("pve1", 9000, &request).await.unwrap();
    let err = client.start_vm("pve1", 300).await.unwrap_err();
    match &err {
        ProxmoxError::Locked { message, .. } => assert!(message.contains("locked"), "{message}"),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err.is_transient());
    client.wait_task(&upid, soon()).await.unwrap();
    let upid = client.start_vm("pve1", 300).await.unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
}

#[tokio::test]
async fn parameter_errors_name_the_parameter() {
    let sim = start_sim().await;
    add_vm(&sim, 200, false).await;
    let client = token_client(&sim);
    let update = VmConfigUpdate::new().name("not a dns name!");
    match client
        .update_vm_config("pve1", 200, &update)
        .await
        .unwrap_err()
    {
        ProxmoxError::InvalidParameters { errors, .. } => {
            assert!(errors.contains_key("name"), "{errors:?}")
        }
        other => panic!("expected InvalidParameters, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_input_is_refused_before_sending() {
    let sim = start_sim().await;
    let client = token_client(&sim);
    let err = client.vm_status("pve1/../x", 100).await.unwrap_err();
    assert!(
        matches!(err, ProxmoxError::InvalidRequest { .. }),
        "{err:?}"
    );
    let err = client
        .update_vm_config("pve1", 200, &VmConfigUpdate::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProxmoxError::InvalidRequest { .. }),
        "{err:?}"
    );
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn fingerprint_mismatch_is_refused_with_tls_error() {
    let sim = start_sim().await;
    let client = Client::new(settings(
        &sim,
        token(&sim),
        TlsTrust::PinnedSha256(vec![[0xAB; 32]]),
    ))
    .unwrap();
    let err = client.version().await.unwrap_err();
    assert!(err.is_fingerprint_mismatch(), "{err:?}");
    match err {
        ProxmoxError::Tls {
            failure: TlsFailure::FingerprintMismatch { actual },
            ..
        } => assert_eq!(actual, sim.cert_fingerprint_sha256()),
        other => panic!("expected a fingerprint mismatch, got {other:?}"),
    }
    assert!(
        sim.requests().is_empty(),
        "nothing was sent to the impostor"
    );
}

#[tokio::test]
async fn ca_trust_accepts_the_node_certificate() {
    let sim = start_sim().await;
    let trust = TlsTrust::CaPem(sim.cert_pem().into_bytes());
    let client = Client::new(settings(&sim, token(&sim), trust)).unwrap();
    client.version().await.unwrap();
}

#[tokio::test]
async fn unreachable_endpoint_fails_over_to_the_next() {
    let sim = start_sim().await;
    // A port that was free a moment ago: connecting is refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead = url::Url::parse(&format!("https://127.0.0.1:{closed}/")).unwrap();
    let mut settings = settings(&sim, token(&sim), pinned(&sim));
    settings.api_urls = vec![dead, sim.api_url()];
    let client = Client::new(settings).unwrap();
    // A clone is not repeatable, but a refused connection proves it was never sent.
    let upid = client
        .clone_vm("pve1", 9000, &CloneRequest::new(300))
        .await
        .unwrap();
    client.wait_task(&upid, soon()).await.unwrap();
    assert_eq!(count(&sim, "POST", "/nodes/pve1/qemu/9000/clone"), 1);
}
