//! `/nodes/{node}/qemu/{vmid}/snapshot…`: list, take, roll back to and delete snapshots, with
//! pve-guest-common's (`PVE::AbstractConfig`) checks and messages.
//!
//! As in qemu-server, the request itself checks only the name (and, for a new snapshot, that the
//! VM exists); the lock, name, template and state checks are the worker's, so they fail the task
//! rather than the request. The worker's first step (the config lock it takes) happens before the
//! UPID is answered, as a worker that starts at once does.

use super::Call;
use crate::cluster::{Cluster, PowerState, Snapshot, Vm, is_disk_key, random_uuid};
use crate::error::ApiError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `GET …/snapshot`: every snapshot, then `current` ("You are here!") under its parent.
pub fn list(call: &Call<'_>) -> Result<Value, ApiError> {
    let cluster = call.cluster();
    let vm = cluster.vm(call.node(), call.number("vmid")?)?;
    let mut items: Vec<Value> = vm
        .snapshots
        .iter()
        .map(|(name, snap)| {
            let mut item = json!({
                "name": name, "snaptime": snap.snaptime, "vmstate": u8::from(snap.vmstate),
                "description": snap.description.clone().unwrap_or_default(),
            });
            if let Some(parent) = &snap.parent {
                item["parent"] = json!(parent);
            }
            if let Some(state) = &snap.snapstate {
                item["snapstate"] = json!(state);
            }
            item
        })
        .collect();
    let mut current = json!({
        "name": "current", "digest": vm.digest(), "description": "You are here!",
        "running": u8::from(vm.power == PowerState::Running),
    });
    if let Some(parent) = vm.config.get("parent") {
        current["parent"] = json!(parent);
    }
    items.push(current);
    Ok(Value::Array(items))
}

/// `GET …/snapshot/{snapname}`: the directory index, whether or not the snapshot exists.
pub fn index() -> Value {
    json!([{ "cmd": "rollback" }, { "cmd": "config" }])
}

/// `POST …/snapshot` → `qmsnapshot`. `lock: snapshot` and the snapshot (`snapstate: prepare`)
/// are in the config while the task runs.
pub fn create(call: &Call<'_>) -> Result<Value, ApiError> {
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    let name = call.param("snapname").unwrap_or_default().to_owned();
    if name == "current" {
        return Err(ApiError::internal(
            "unable to use snapshot name 'current' (reserved name)",
        ));
    }
    if name.eq_ignore_ascii_case("pending") {
        return Err(ApiError::internal(
            "unable to use snapshot name 'pending' (reserved name)",
        ));
    }
    let prepared = {
        let mut cluster = call.cluster();
        let storage_ok = |volume: &str| volume_snapshots(&cluster, volume);
        let missing_feature = cluster
            .vm(&node, vmid)?
            .config
            .iter()
            .filter(|(key, drive)| is_disk_key(key) && !drive.contains("media=cdrom"))
            .any(|(_, drive)| !storage_ok(drive));
        let vm = cluster.vm_mut(&node, vmid)?;
        let snapshot = NewSnapshot {
            vmstate: call.flag("vmstate").unwrap_or(false),
            description: call.param("description").filter(|d| !d.is_empty()),
            now: call.state.now(),
            missing_feature,
        };
        prepare_create(vm, &name, &snapshot)
    };
    let id = vmid.to_string();
    if let Err(message) = prepared {
        return Ok(json!(call.failed_task("qmsnapshot", &id, message)));
    }
    let duration = call.state.config.task_duration;
    let upid = call.spawn_task("qmsnapshot", &id, duration, move |cluster, injected| {
        let vm = cluster.vm_mut(&node, vmid).map_err(|e| e.message)?;
        if let Err(message) = injected {
            // "snapshot create failed: starting cleanup": the half-made snapshot goes.
            vm.snapshots.remove(&name);
            vm.config.remove("lock");
            return Err(message);
        }
        commit_create(vm, &name)
    });
    Ok(json!(upid))
}

struct NewSnapshot<'a> {
    vmstate: bool,
    description: Option<&'a str>,
    now: u64,
    /// A disk is on storage that cannot snapshot it.
    missing_feature: bool,
}

/// `__snapshot_prepare`: the checks, then the snapshot in `prepare` state and the lock.
fn prepare_create(vm: &mut Vm, name: &str, new: &NewSnapshot<'_>) -> Result<(), String> {
    if vm.is_template() {
        return Err("you can't take a snapshot if it's a template".into());
    }
    vm.check_unlocked().map_err(|e| e.message)?;
    if vm.snapshots.contains_key(name) {
        return Err(format!("snapshot name '{name}' already used"));
    }
    if new.missing_feature {
        return Err("snapshot feature is not available".into());
    }
    // A snapshot can only name an existing parent; a stale reference would make a cycle.
    for snap in vm.snapshots.values_mut() {
        if snap.parent.as_deref() == Some(name) {
            snap.parent = None;
        }
    }
    let snapshot = Snapshot {
        config: snapshot_config(&vm.config),
        snaptime: new.now,
        description: new.description.map(str::to_owned),
        // The RAM is saved only if there is a running VM to take it from.
        vmstate: new.vmstate && vm.power == PowerState::Running,
        parent: vm.config.get("parent").cloned(),
        snapstate: Some("prepare".into()),
    };
    vm.snapshots.insert(name.to_owned(), snapshot);
    vm.config.insert("lock".into(), "snapshot".into());
    Ok(())
}

/// `__snapshot_commit`: the snapshot is complete and the current state descends from it.
fn commit_create(vm: &mut Vm, name: &str) -> Result<(), String> {
    if vm.lock() != Some("snapshot") {
        return Err("missing snapshot lock".into());
    }
    let snap = vm
        .snapshots
        .get_mut(name)
        .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
    if snap.snapstate.as_deref() != Some("prepare") {
        return Err("wrong snapshot state".into());
    }
    snap.snapstate = None;
    vm.config.remove("lock");
    vm.config.insert("parent".into(), name.to_owned());
    Ok(())
}

/// `__snapshot_copy_config`: what a snapshot keeps of the config. Its parent is kept apart.
fn snapshot_config(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    const SKIPPED: &[&str] = &["lock", "digest", "description", "parent", "vmstate"];
    config
        .iter()
        .filter(|(key, _)| !SKIPPED.contains(&key.as_str()) && !key.starts_with("unused"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether the storage of a drive can snapshot it: LVM-thin, RBD and ZFS can, a directory only
/// for qcow2 files, plain LVM not at all.
fn volume_snapshots(cluster: &Cluster, drive: &str) -> bool {
    let volume = drive.split(',').next().unwrap_or_default();
    let Some((storage, name)) = volume.split_once(':') else {
        return false;
    };
    match cluster.storage(storage).map(|s| s.plugintype.as_str()) {
        Some("lvmthin" | "rbd" | "zfspool") => true,
        Some("dir" | "nfs" | "cifs") => name.ends_with(".qcow2"),
        _ => false,
    }
}

/// `DELETE …/snapshot/{snapname}` → `qmdelsnapshot`, with `lock: snapshot-delete` meanwhile.
/// Children of the snapshot and the current state move up to its parent.
pub fn delete(call: &Call<'_>) -> Result<Value, ApiError> {
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    let name = call.param("snapname").unwrap_or_default().to_owned();
    let prepared = prepare_delete(&mut call.cluster(), &node, vmid, &name);
    let id = vmid.to_string();
    if let Err(message) = prepared {
        return Ok(json!(call.failed_task("qmdelsnapshot", &id, message)));
    }
    let duration = call.state.config.task_duration;
    let upid = call.spawn_task("qmdelsnapshot", &id, duration, move |cluster, injected| {
        // A volume snapshot that cannot be removed leaves the lock and `snapstate: delete` for
        // an operator (or a forced delete) to clear, as in PVE.
        injected?;
        let vm = cluster.vm_mut(&node, vmid).map_err(|e| e.message)?;
        if vm.lock() != Some("snapshot-delete") {
            return Err("encountered invalid lock, expected 'snapshot-delete'".into());
        }
        let snap = vm
            .snapshots
            .remove(&name)
            .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
        if vm.config.get("parent") == Some(&name) {
            match &snap.parent {
                Some(parent) => vm.config.insert("parent".into(), parent.clone()),
                None => vm.config.remove("parent"),
            };
        }
        for child in vm.snapshots.values_mut() {
            if child.parent.as_ref() == Some(&name) {
                child.parent = snap.parent.clone();
            }
        }
        vm.config.remove("lock");
        Ok(())
    });
    Ok(json!(upid))
}

fn prepare_delete(cluster: &mut Cluster, node: &str, vmid: u32, name: &str) -> Result<(), String> {
    let vm = cluster.vm_mut(node, vmid).map_err(|e| e.message)?;
    if !vm.snapshots.contains_key(name) {
        return Err(format!("snapshot '{name}' does not exist"));
    }
    vm.check_unlocked().map_err(|e| e.message)?;
    vm.config.insert("lock".into(), "snapshot-delete".into());
    if let Some(snap) = vm.snapshots.get_mut(name) {
        snap.snapstate = Some("delete".into());
    }
    Ok(())
}

/// `POST …/snapshot/{snapname}/rollback` → `qmrollback`, with `lock: rollback` meanwhile. A
/// running VM is stopped first; it runs again afterwards if the snapshot holds its RAM, or if
/// `start` asks for it.
pub fn rollback(call: &Call<'_>) -> Result<Value, ApiError> {
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    let name = call.param("snapname").unwrap_or_default().to_owned();
    let start = call.flag("start").unwrap_or(false);
    let prepared = prepare_rollback(&mut call.cluster(), &node, vmid, &name);
    let id = vmid.to_string();
    match prepared {
        Err(message) => return Ok(json!(call.failed_task("qmrollback", &id, message))),
        // QEMU exits, and with it the VNC and serial connections of its consoles.
        Ok(true) => drop(call.state.consoles.cut_sessions(vmid)),
        Ok(false) => {}
    }
    let duration = call.state.config.task_duration;
    let upid = call.spawn_task("qmrollback", &id, duration, move |cluster, injected| {
        // A volume that fails to roll back leaves `lock: rollback`, as in PVE.
        injected?;
        let vm = cluster.vm_mut(&node, vmid).map_err(|e| e.message)?;
        if vm.lock() != Some("rollback") {
            return Err("got wrong lock".into());
        }
        let snap = vm
            .snapshots
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
        // `__snapshot_apply_config`: the snapshot's config, with today's description and unused
        // disks; the current state now descends from the snapshot.
        let mut config = snap.config;
        config.extend(
            vm.config
                .iter()
                .filter(|(k, _)| *k == "description" || k.starts_with("unused"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        config.insert("parent".into(), name.clone());
        // The guest learns it was rolled back through a new VM generation ID.
        if let Some(vmgenid) = config.get_mut("vmgenid")
            && vmgenid != "0"
        {
            *vmgenid = random_uuid();
        }
        vm.config = config;
        vm.pending.clear();
        if snap.vmstate || start {
            vm.set_power(PowerState::Running);
        }
        Ok(())
    });
    Ok(json!(upid))
}

/// The first half of `snapshot_rollback`; true when it stopped the VM.
fn prepare_rollback(
    cluster: &mut Cluster,
    node: &str,
    vmid: u32,
    name: &str,
) -> Result<bool, String> {
    let vm = cluster.vm_mut(node, vmid).map_err(|e| e.message)?;
    if vm.is_template() {
        return Err("you can't rollback if vm is a template".into());
    }
    let snap = vm
        .snapshots
        .get(name)
        .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
    if let Some(state) = &snap.snapstate {
        return Err(format!(
            "unable to rollback to incomplete snapshot (snapstate = {state})"
        ));
    }
    vm.check_unlocked().map_err(|e| e.message)?;
    let was_running = vm.power == PowerState::Running;
    vm.set_power(PowerState::Stopped);
    vm.config.insert("lock".into(), "rollback".into());
    Ok(was_running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> Vm {
        let config = BTreeMap::from([
            ("name".to_owned(), "web".to_owned()),
            ("description".to_owned(), "notes".to_owned()),
            (
                "scsi0".to_owned(),
                "local-lvm:vm-100-disk-0,size=8G".to_owned(),
            ),
        ]);
        Vm::new(100, "pve1", config)
    }

    fn take(vm: &mut Vm, name: &str) -> Result<(), String> {
        let new = NewSnapshot {
            vmstate: true,
            description: Some("first"),
            now: 1_700_000_000,
            missing_feature: false,
        };
        prepare_create(vm, name, &new)?;
        commit_create(vm, name)
    }

    #[test]
    fn snapshots_chain_through_parent_and_skip_metadata_keys() {
        let mut vm = vm();
        assert_eq!(take(&mut vm, "a"), Ok(()));
        assert_eq!(take(&mut vm, "b"), Ok(()));
        assert_eq!(vm.config.get("parent").map(String::as_str), Some("b"));
        let b = vm.snapshots.get("b").cloned();
        assert_eq!(b.as_ref().and_then(|s| s.parent.as_deref()), Some("a"));
        // A stopped VM has no RAM to save; the description is the snapshot's own.
        assert_eq!(b.as_ref().map(|s| s.vmstate), Some(false));
        assert!(b.is_some_and(|s| !s.config.contains_key("description")));
        assert_eq!(
            take(&mut vm, "a"),
            Err("snapshot name 'a' already used".into())
        );
    }

    #[test]
    fn a_locked_or_template_vm_takes_no_snapshot() {
        let mut vm = vm();
        vm.config.insert("lock".into(), "backup".into());
        assert_eq!(take(&mut vm, "a"), Err("VM 100 is locked (backup)".into()));
        vm.config.remove("lock");
        vm.config.insert("template".into(), "1".into());
        assert_eq!(
            take(&mut vm, "a"),
            Err("you can't take a snapshot if it's a template".into())
        );
    }
}
