use crate::fixture::{Sim, start};
use porthole_sim::VmSeed;
use reqwest::Method;
use serde_json::Value;

const SNAPSHOTS: &str = "/nodes/pve1/qemu/200/snapshot";

async fn with_vm() -> Sim {
    let sim = start().await;
    let seed = VmSeed {
        vmid: 200,
        name: "plain".into(),
        ..VmSeed::default()
    };
    sim.handle
        .add_vm(seed)
        .unwrap_or_else(|err| panic!("{err}"));
    sim
}

fn config(sim: &Sim, key: &str) -> Option<String> {
    sim.handle
        .vm_config("pve1", 200)
        .and_then(|c| c.get(key).cloned())
}

/// The listing by name.
async fn snapshots(sim: &Sim) -> Vec<(String, Value)> {
    let list = sim.ok(Method::GET, SNAPSHOTS, &[]).await;
    let items = list.as_array().cloned().unwrap_or_default();
    items
        .into_iter()
        .map(|item| (item["name"].as_str().unwrap_or_default().to_owned(), item))
        .collect()
}

#[tokio::test]
async fn snapshots_chain_and_current_sits_under_the_newest() {
    let sim = with_vm().await;
    let upid = sim
        .ok(
            Method::POST,
            SNAPSHOTS,
            &[("snapname", "first"), ("description", "before")],
        )
        .await;
    // The worker's config lock is taken before the UPID is answered.
    assert_eq!(config(&sim, "lock").as_deref(), Some("snapshot"));
    let upid = upid.as_str().unwrap_or_default().to_owned();
    assert!(upid.contains(":qmsnapshot:200:"), "{upid}");
    assert_eq!(sim.wait_task("pve1", &upid).await["exitstatus"], "OK");
    assert_eq!(config(&sim, "lock"), None);
    let second = sim
        .run_task(Method::POST, SNAPSHOTS, &[("snapname", "second")])
        .await;
    assert_eq!(second["exitstatus"], "OK");
    assert_eq!(config(&sim, "parent").as_deref(), Some("second"));

    let list = snapshots(&sim).await;
    let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["first", "second", "current"]);
    let [(_, first), (_, second), (_, current)] = &list[..] else {
        panic!("{list:?}")
    };
    assert_eq!(first["description"], "before");
    assert!(first.get("parent").is_none() && first["snaptime"].as_u64() > Some(0));
    assert_eq!(first["vmstate"], 0);
    assert_eq!(second["parent"], "first");
    assert_eq!(current["parent"], "second");
    assert_eq!(current["description"], "You are here!");
    assert!(current.get("snaptime").is_none());

    let taken = sim
        .run_task(Method::POST, SNAPSHOTS, &[("snapname", "first")])
        .await;
    assert_eq!(taken["exitstatus"], "snapshot name 'first' already used");
    assert_eq!(
        sim.fails(Method::POST, SNAPSHOTS, &[("snapname", "current")])
            .await,
        (
            500,
            "unable to use snapshot name 'current' (reserved name)".to_owned()
        )
    );
}

#[tokio::test]
async fn rollback_restores_the_config_and_can_start_the_vm() {
    let sim = with_vm().await;
    sim.run_task(Method::POST, SNAPSHOTS, &[("snapname", "clean")])
        .await;
    sim.ok(
        Method::PUT,
        "/nodes/pve1/qemu/200/config",
        &[("memory", "4096")],
    )
    .await;
    sim.run_task(Method::POST, SNAPSHOTS, &[("snapname", "big")])
        .await;
    let path = format!("{SNAPSHOTS}/clean/rollback");
    let upid = sim.ok(Method::POST, &path, &[("start", "1")]).await;
    assert_eq!(config(&sim, "lock").as_deref(), Some("rollback"));
    let upid = upid.as_str().unwrap_or_default();
    assert!(upid.contains(":qmrollback:200:"), "{upid}");
    assert_eq!(sim.wait_task("pve1", upid).await["exitstatus"], "OK");
    assert_eq!(config(&sim, "memory").as_deref(), Some("2048"));
    assert_eq!(config(&sim, "parent").as_deref(), Some("clean"));
    assert_eq!(config(&sim, "lock"), None);
    assert_eq!(sim.handle.vm_status(200).as_deref(), Some("running"));
    // Rolled back, both snapshots are still there; a new one would hang off "clean".
    let list = snapshots(&sim).await;
    assert_eq!(list.len(), 3);

    let missing = sim
        .run_task(Method::POST, &format!("{SNAPSHOTS}/nope/rollback"), &[])
        .await;
    assert_eq!(missing["exitstatus"], "snapshot 'nope' does not exist");
}

#[tokio::test]
async fn deleting_a_snapshot_moves_its_children_up() {
    let sim = with_vm().await;
    for name in ["one", "two"] {
        sim.run_task(Method::POST, SNAPSHOTS, &[("snapname", name)])
            .await;
    }
    let upid = sim
        .ok(Method::DELETE, &format!("{SNAPSHOTS}/one"), &[])
        .await;
    assert_eq!(config(&sim, "lock").as_deref(), Some("snapshot-delete"));
    let upid = upid.as_str().unwrap_or_default();
    assert!(upid.contains(":qmdelsnapshot:200:"), "{upid}");
    assert_eq!(sim.wait_task("pve1", upid).await["exitstatus"], "OK");
    let list = snapshots(&sim).await;
    let names: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["two", "current"]);
    assert!(
        list.first()
            .is_some_and(|(_, two)| two.get("parent").is_none())
    );
    assert_eq!(config(&sim, "parent").as_deref(), Some("two"));

    let gone = sim
        .run_task(Method::DELETE, &format!("{SNAPSHOTS}/one"), &[])
        .await;
    assert_eq!(gone["exitstatus"], "snapshot 'one' does not exist");
    let last = sim
        .run_task(Method::DELETE, &format!("{SNAPSHOTS}/two"), &[])
        .await;
    assert_eq!(last["exitstatus"], "OK");
    assert_eq!(config(&sim, "parent"), None);
}

#[tokio::test]
async fn snapshots_go_with_their_vm_and_a_reinstall_destroy_is_accepted() {
    let sim = with_vm().await;
    sim.run_task(Method::POST, SNAPSHOTS, &[("snapname", "keep")])
        .await;
    let snapshot_config = sim
        .ok(
            Method::GET,
            "/nodes/pve1/qemu/200/config",
            &[("snapshot", "keep")],
        )
        .await;
    assert_eq!(snapshot_config["name"], "plain");
    assert!(snapshot_config["snaptime"].as_u64().is_some());
    let destroyed = sim
        .run_task(
            Method::DELETE,
            "/nodes/pve1/qemu/200",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        )
        .await;
    assert_eq!(destroyed["exitstatus"], "OK");
    let (status, message) = sim.fails(Method::GET, SNAPSHOTS, &[]).await;
    assert_eq!(
        (status, message.as_str()),
        (
            500,
            "Configuration file 'nodes/pve1/qemu-server/200.conf' does not exist"
        )
    );
}
