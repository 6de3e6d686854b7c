use crate::fixture::{Sim, start};
use porthole_sim::VmSeed;
use reqwest::Method;
use serde_json::Value;

const VZDUMP: &str = "/nodes/pve1/vzdump";
const BACKUP: &[(&str, &str)] = &[
    ("vmid", "200"),
    ("storage", "local"),
    ("mode", "snapshot"),
    ("compress", "zstd"),
    ("notes-template", "{{guestname}} #{{vmid}}"),
];

async fn with_vm(running: bool) -> Sim {
    let sim = start().await;
    let seed = VmSeed {
        vmid: 200,
        name: "plain".into(),
        running,
        ..VmSeed::default()
    };
    sim.handle
        .add_vm(seed)
        .unwrap_or_else(|err| panic!("{err}"));
    sim
}

fn config(sim: &Sim, vmid: u32, key: &str) -> Option<String> {
    sim.handle
        .vm_config("pve1", vmid)
        .and_then(|c| c.get(key).cloned())
}

async fn backups(sim: &Sim, node: &str) -> Vec<Value> {
    let path = format!("/nodes/{node}/storage/local/content");
    let list = sim.ok(Method::GET, &path, &[("content", "backup")]).await;
    list.as_array().cloned().unwrap_or_default()
}

/// Backs VM 200 up and returns the archive's volume ID.
async fn back_up(sim: &Sim) -> String {
    let done = sim.run_task(Method::POST, VZDUMP, BACKUP).await;
    assert_eq!(done["exitstatus"], "OK", "{done}");
    let list = backups(sim, "pve1").await;
    let newest = list.iter().max_by_key(|b| b["ctime"].as_u64());
    newest
        .and_then(|b| b["volid"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_backup_locks_its_vm_until_the_archive_is_written() {
    let sim = with_vm(true).await;
    let upid = sim.ok(Method::POST, VZDUMP, BACKUP).await;
    let upid = upid.as_str().unwrap_or_default().to_owned();
    assert!(upid.contains(":vzdump:200:porthole@pve!daemon:"), "{upid}");
    assert_eq!(config(&sim, 200, "lock").as_deref(), Some("backup"));
    // A snapshot's worker finds the lock; destroy refuses it up front.
    let snapshot = sim
        .run_task(
            Method::POST,
            "/nodes/pve1/qemu/200/snapshot",
            &[("snapname", "during")],
        )
        .await;
    assert_eq!(snapshot["exitstatus"], "VM 200 is locked (backup)");
    assert_eq!(
        sim.fails(Method::POST, "/nodes/pve1/qemu/200/status/stop", &[])
            .await,
        (500, "VM 200 is locked (backup)".to_owned())
    );
    // A second job waits for the node's vzdump lock, then backs the VM up after the first.
    let second = sim.ok(Method::POST, VZDUMP, BACKUP).await;
    let done = sim.wait_task("pve1", &upid).await;
    assert_eq!(done["exitstatus"], "OK", "{done}");
    let second = sim
        .wait_task("pve1", second.as_str().unwrap_or_default())
        .await;
    assert_eq!(second["exitstatus"], "OK", "{second}");
    assert_eq!(config(&sim, 200, "lock"), None);
    assert_eq!(sim.handle.vm_status(200).as_deref(), Some("running"));
    // Two archives, even if both were made within one second.
    let list = backups(&sim, "pve1").await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_ne!(list[0]["volid"], list[1]["volid"]);
}

#[tokio::test]
async fn a_backup_is_listed_and_outlives_its_vm() {
    let sim = with_vm(false).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let volid = back_up(&sim).await;
    let list = backups(&sim, "pve1").await;
    let [backup] = &list[..] else {
        panic!("{list:?}")
    };
    let name = volid
        .strip_prefix("local:backup/vzdump-qemu-200-")
        .and_then(|n| n.strip_suffix(".vma.zst"))
        .unwrap_or_default();
    // YYYY_MM_DD-HH_MM_SS
    assert_eq!(name.len(), 19, "{volid}");
    assert_eq!(backup["content"], "backup");
    assert_eq!(backup["format"], "vma.zst");
    assert_eq!(backup["subtype"], "qemu");
    assert_eq!(backup["vmid"], 200);
    assert_eq!(backup["notes"], "plain #200");
    assert!(backup.get("protected").is_none());
    let size = backup["size"].as_u64().unwrap_or_default();
    assert!(size > 0 && size < 8 << 30, "{backup}");
    let ctime = backup["ctime"].as_u64().unwrap_or_default();
    assert!(ctime >= before && ctime <= before + 60, "{backup}");
    // `local` is each node's own directory.
    assert!(backups(&sim, "pve2").await.is_empty());

    let destroyed = sim
        .run_task(Method::DELETE, "/nodes/pve1/qemu/200", &[("purge", "1")])
        .await;
    assert_eq!(destroyed["exitstatus"], "OK");
    let list = backups(&sim, "pve1").await;
    assert_eq!(list.len(), 1);
    let by_vmid = sim
        .ok(
            Method::GET,
            "/nodes/pve1/storage/local/content",
            &[("vmid", "200")],
        )
        .await;
    assert_eq!(by_vmid.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn storage_problems_fail_the_task_not_the_request() {
    let sim = with_vm(false).await;
    let on = |storage: &'static str| [("vmid", "200"), ("storage", storage)];
    let lvm = sim.run_task(Method::POST, VZDUMP, &on("local-lvm")).await;
    assert_eq!(
        lvm["exitstatus"],
        "could not get storage information for 'local-lvm': \
         can't use storage 'local-lvm' for backups - wrong content type"
    );
    let missing = sim.run_task(Method::POST, VZDUMP, &on("nfs")).await;
    assert!(
        missing["exitstatus"]
            .as_str()
            .is_some_and(|s| s.ends_with("storage 'nfs' does not exist")),
        "{missing}"
    );
    assert_eq!(config(&sim, 200, "lock"), None);
    // A VM on another node is that node's business: no task at all.
    assert_eq!(
        sim.ok(Method::POST, "/nodes/pve2/vzdump", &[("vmid", "200")])
            .await,
        "OK"
    );
    let (status, body) = crate::fixture::body(
        sim.call(
            Method::POST,
            VZDUMP,
            crate::fixture::Auth::Token,
            &[("storage", "local")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"]["vmid"], "property is missing");
}

#[tokio::test]
async fn restore_replaces_a_stopped_vm_and_drops_its_snapshots() {
    let sim = with_vm(false).await;
    let volid = back_up(&sim).await;
    sim.ok(
        Method::PUT,
        "/nodes/pve1/qemu/200/config",
        &[("memory", "4096"), ("name", "changed")],
    )
    .await;
    sim.run_task(
        Method::POST,
        "/nodes/pve1/qemu/200/snapshot",
        &[("snapname", "later")],
    )
    .await;
    let restore = [("vmid", "200"), ("archive", volid.as_str())];
    assert_eq!(
        sim.fails(Method::POST, "/nodes/pve1/qemu", &restore).await,
        (
            500,
            "unable to restore VM 200 - VM 200 already exists on node 'pve1'".to_owned()
        )
    );
    let forced = [("vmid", "200"), ("archive", volid.as_str()), ("force", "1")];
    sim.run_task(Method::POST, "/nodes/pve1/qemu/200/status/start", &[])
        .await;
    let running = sim
        .run_task(Method::POST, "/nodes/pve1/qemu", &forced)
        .await;
    assert_eq!(
        running["exitstatus"],
        "unable to restore VM 200 - vm is running"
    );
    assert_eq!(config(&sim, 200, "lock"), None);
    sim.run_task(Method::POST, "/nodes/pve1/qemu/200/status/stop", &[])
        .await;

    let upid = sim.ok(Method::POST, "/nodes/pve1/qemu", &forced).await;
    let upid = upid.as_str().unwrap_or_default().to_owned();
    assert!(upid.contains(":qmrestore:200:"), "{upid}");
    assert_eq!(config(&sim, 200, "lock").as_deref(), Some("create"));
    let done = sim.wait_task("pve1", &upid).await;
    assert_eq!(done["exitstatus"], "OK", "{done}");
    assert_eq!(config(&sim, 200, "memory").as_deref(), Some("2048"));
    assert_eq!(config(&sim, 200, "name").as_deref(), Some("plain"));
    assert_eq!(config(&sim, 200, "parent"), None);
    assert_eq!(config(&sim, 200, "lock"), None);
    assert!(config(&sim, 200, "scsi0").is_some_and(|d| d.starts_with("local-lvm:vm-200-disk-0,")));
    let list = sim
        .ok(Method::GET, "/nodes/pve1/qemu/200/snapshot", &[])
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(sim.handle.vm_status(200).as_deref(), Some("stopped"));
}

#[tokio::test]
async fn restore_to_a_new_vmid_and_missing_archives() {
    let sim = with_vm(false).await;
    let volid = back_up(&sim).await;
    let restore = [("vmid", "201"), ("archive", volid.as_str()), ("start", "1")];
    let done = sim
        .run_task(Method::POST, "/nodes/pve1/qemu", &restore)
        .await;
    assert_eq!(done["exitstatus"], "OK", "{done}");
    assert!(config(&sim, 201, "scsi0").is_some_and(|d| d.starts_with("local-lvm:vm-201-disk-0,")));
    assert_eq!(sim.handle.vm_status(201).as_deref(), Some("running"));

    let gone = "local:backup/vzdump-qemu-200-2020_01_01-00_00_00.vma.zst";
    assert_eq!(
        sim.fails(
            Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "202"), ("archive", gone)]
        )
        .await,
        (500, format!("can't find file '{gone}'"))
    );
    // Another node's `local` does not have the file either.
    assert_eq!(
        sim.fails(
            Method::POST,
            "/nodes/pve2/qemu",
            &[("vmid", "202"), ("archive", volid.as_str())]
        )
        .await,
        (500, format!("can't find file '{volid}'"))
    );
    assert_eq!(
        sim.fails(Method::POST, "/nodes/pve1/qemu", &[("vmid", "202")])
            .await,
        (
            501,
            "Method 'POST /nodes/{node}/qemu' not implemented".to_owned()
        )
    );
}

#[tokio::test]
async fn backups_are_deleted_by_a_task_unless_protected() {
    let sim = with_vm(false).await;
    let volid = back_up(&sim).await;
    // Clients percent-encode the volume ID; pveproxy decodes the path before routing.
    let encoded = volid.replace(':', "%3A").replace('/', "%2F");
    let path = format!("/nodes/pve1/storage/local/content/{encoded}");
    let upid = sim.ok(Method::DELETE, &path, &[]).await;
    let upid = upid.as_str().unwrap_or_default().to_owned();
    assert!(upid.contains(":imgdel:200@local:"), "{upid}");
    assert_eq!(sim.wait_task("pve1", &upid).await["exitstatus"], "OK");
    assert!(backups(&sim, "pve1").await.is_empty());

    let mut protected = BACKUP.to_vec();
    protected.push(("protected", "1"));
    let done = sim.run_task(Method::POST, VZDUMP, &protected).await;
    assert_eq!(done["exitstatus"], "OK");
    let list = backups(&sim, "pve1").await;
    let volid = list
        .first()
        .and_then(|b| b["volid"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(list.first().map(|b| b["protected"].clone()), Some(1.into()));
    // The volume ID's slash may also come unencoded.
    let path = format!("/nodes/pve1/storage/local/content/{volid}");
    let refused = sim.run_task(Method::DELETE, &path, &[]).await;
    let name = volid.trim_start_matches("local:");
    assert_eq!(
        refused["exitstatus"],
        format!("cannot remove protected volume '{name}' on 'local'")
    );
    assert_eq!(backups(&sim, "pve1").await.len(), 1);
}
