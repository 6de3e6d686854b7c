use crate::fixture::{Auth, body, start};
use reqwest::Method;

#[tokio::test]
async fn clone_locks_the_new_vm_until_its_task_ends() {
    let sim = start().await;
    let upid = sim
        .ok(
            Method::POST,
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", "123"), ("name", "web"), ("full", "1")],
        )
        .await;
    let upid = upid.as_str().unwrap_or_default().to_owned();
    assert!(
        upid.starts_with("UPID:pve1:") && upid.contains(":qmclone:9000:porthole@pve!daemon:"),
        "{upid}"
    );
    let config = sim.handle.vm_config("pve1", 123).unwrap_or_default();
    assert_eq!(config.get("lock").map(String::as_str), Some("clone"));
    let (status, body) = body(
        sim.call(
            Method::POST,
            "/nodes/pve1/qemu/123/status/start",
            Auth::Token,
            &[],
        )
        .await,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(body["message"], "VM 123 is locked (clone)\n");
    let done = sim.wait_task("pve1", &upid).await;
    assert_eq!(done["exitstatus"], "OK");
    let config = sim.handle.vm_config("pve1", 123).unwrap_or_default();
    assert!(!config.contains_key("lock"));
    assert_eq!(
        config.get("scsi0").map(String::as_str),
        Some("local-lvm:vm-123-disk-0,size=4G")
    );
}

#[tokio::test]
async fn start_runs_then_second_start_fails_in_its_task() {
    let sim = start().await;
    sim.handle
        .add_vm(porthole_sim::VmSeed {
            vmid: 200,
            name: "plain".into(),
            ..Default::default()
        })
        .ok();
    let first = sim
        .ok(Method::POST, "/nodes/pve1/qemu/200/status/start", &[])
        .await;
    let status = sim
        .wait_task("pve1", first.as_str().unwrap_or_default())
        .await;
    assert_eq!(status["status"], "stopped");
    assert_eq!(status["exitstatus"], "OK");
    assert_eq!(sim.handle.vm_status(200).as_deref(), Some("running"));
    let second = sim
        .ok(Method::POST, "/nodes/pve1/qemu/200/status/start", &[])
        .await;
    let status = sim
        .wait_task("pve1", second.as_str().unwrap_or_default())
        .await;
    assert_eq!(status["exitstatus"], "VM 200 already running");
    let (code, body) = body(
        sim.call(
            Method::DELETE,
            "/nodes/pve1/qemu/200",
            Auth::Token,
            &[("purge", "1")],
        )
        .await,
    )
    .await;
    assert_eq!(code, 500);
    assert_eq!(body["message"], "VM 200 is running - destroy failed\n");
}

#[tokio::test]
async fn templates_cannot_start_and_disks_cannot_shrink() {
    let sim = start().await;
    let start_upid = sim
        .ok(Method::POST, "/nodes/pve1/qemu/9000/status/start", &[])
        .await;
    let status = sim
        .wait_task("pve1", start_upid.as_str().unwrap_or_default())
        .await;
    assert_eq!(
        status["exitstatus"],
        "you can't start a vm if it's a template"
    );
    let shrink = sim
        .ok(
            Method::PUT,
            "/nodes/pve1/qemu/9000/resize",
            &[("disk", "scsi0"), ("size", "1G")],
        )
        .await;
    let status = sim
        .wait_task("pve1", shrink.as_str().unwrap_or_default())
        .await;
    assert_eq!(status["exitstatus"], "shrinking disks is not supported");
    let grow = sim
        .ok(
            Method::PUT,
            "/nodes/pve1/qemu/9000/resize",
            &[("disk", "scsi0"), ("size", "+6G")],
        )
        .await;
    assert_eq!(
        sim.wait_task("pve1", grow.as_str().unwrap_or_default())
            .await["exitstatus"],
        "OK"
    );
    let scsi0 = sim
        .handle
        .vm_config("pve1", 9000)
        .and_then(|c| c.get("scsi0").cloned())
        .unwrap_or_default();
    assert!(scsi0.ends_with("size=10G"), "{scsi0}");
}

#[tokio::test]
async fn a_clone_crosses_nodes_after_its_copy_and_only_from_shared_storage() {
    let sim = start().await;
    let seed = |vmid, storage: &str| porthole_sim::VmSeed {
        node: "pve1".into(),
        vmid,
        storage: storage.into(),
        template: true,
        ..porthole_sim::VmSeed::default()
    };
    sim.handle.add_vm(seed(9100, "ceph")).unwrap();
    sim.handle.add_vm(seed(9101, "ceph")).unwrap();
    // An ISO left in the second template's CD-ROM drive is on local storage.
    let iso = [("ide0", "local:iso/debian-12.iso,media=cdrom")];
    sim.ok(Method::PUT, "/nodes/pve1/qemu/9101/config", &iso)
        .await;
    let clone = |vmid: u32, newid: &'static str| {
        let path = format!("/nodes/pve1/qemu/{vmid}/clone");
        let sim = &sim;
        async move {
            let form = [("newid", newid), ("target", "pve2"), ("full", "1")];
            body(sim.call(Method::POST, &path, Auth::Token, &form).await).await
        }
    };

    let (status, upid) = clone(9100, "201").await;
    assert_eq!(status, 200, "{upid}");
    // The copy is made on the source node, locked, and moves to the target when done.
    let copying = sim.handle.vm_config("pve1", 201).unwrap_or_default();
    assert_eq!(copying.get("lock").map(String::as_str), Some("clone"));
    sim.wait_task("pve1", upid["data"].as_str().unwrap_or_default())
        .await;
    assert!(sim.handle.vm_config("pve1", 201).is_none());
    assert!(sim.handle.vm_config("pve2", 201).is_some());
    for (vmid, newid) in [(9000, "202"), (9101, "203")] {
        let (status, answer) = clone(vmid, newid).await;
        assert_eq!(status, 500, "{answer}");
        assert_eq!(
            answer["message"],
            "can't clone VM to node 'pve2' (VM uses local storage)\n"
        );
    }
}
