//! `/nodes/{node}/qemu/…`: VM listing, status, config, clone, resize, power and destroy, with
//! qemu-server's checks (locks, digests, running state) and messages.

use super::Call;
use crate::cluster::{
    Cluster, PowerState, Vm, disk_size, is_cold_key, is_disk_key, parse_size, random_mac,
    random_uuid, with_size,
};
use crate::error::ApiError;
use crate::schema::split_list;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub fn dispatch(template: &str, call: &Call<'_>) -> Result<Value, ApiError> {
    let Some(rest) = template.strip_prefix("/nodes/{node}/qemu") else {
        return Err(ApiError::not_implemented(call.method, template));
    };
    match (call.method, rest) {
        ("GET", "") => Ok(list(call)),
        ("DELETE", "/{vmid}") => destroy(call),
        ("GET", "/{vmid}/status/current") => status_current(call),
        ("GET", "/{vmid}/config") => get_config(call),
        ("GET", "/{vmid}/pending") => pending(call),
        ("POST", "/{vmid}/config") => update_config(call, true),
        ("PUT", "/{vmid}/config") => update_config(call, false),
        ("POST", "/{vmid}/clone") => clone(call),
        ("PUT", "/{vmid}/resize") => resize(call),
        ("POST", "/{vmid}/status/start") => power(call, Power::Start),
        ("POST", "/{vmid}/status/stop") => power(call, Power::Stop),
        ("POST", "/{vmid}/status/shutdown") => power(call, Power::Shutdown),
        ("POST", "/{vmid}/status/reboot") => power(call, Power::Reboot),
        _ => Err(ApiError::not_implemented(call.method, template)),
    }
}

/// The fields PVE reports for a VM in listings and `/cluster/resources`.
fn summary(vm: &Vm) -> Value {
    let running = vm.power == PowerState::Running;
    let maxmem = vm.maxmem();
    let mut item = json!({
        "vmid": vm.vmid, "name": vm.name(), "status": vm.power,
        "cpus": vm.cores(), "maxmem": maxmem, "mem": if running { maxmem / 4 } else { 0 },
        "maxdisk": vm.maxdisk(), "disk": 0, "uptime": vm.uptime(),
        "cpu": if running { 0.02 } else { 0.0 },
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
    });
    if vm.is_template() {
        item["template"] = json!(1);
    }
    for key in ["tags", "lock"] {
        if let Some(value) = vm.config.get(key) {
            item[key] = json!(value);
        }
    }
    item
}

/// A VM's `/cluster/resources` entry.
pub fn resource(vm: &Vm) -> Value {
    let mut item = summary(vm);
    item["id"] = json!(format!("qemu/{}", vm.vmid));
    item["type"] = json!("qemu");
    item["node"] = json!(vm.node);
    item["maxcpu"] = item["cpus"].take();
    if let Some(obj) = item.as_object_mut() {
        obj.remove("cpus");
    }
    item["template"] = json!(u8::from(vm.is_template()));
    item
}

fn list(call: &Call<'_>) -> Value {
    let cluster = call.cluster();
    Value::Array(
        cluster
            .vms
            .values()
            .filter(|vm| vm.node == call.node())
            .map(summary)
            .collect(),
    )
}

fn status_current(call: &Call<'_>) -> Result<Value, ApiError> {
    let cluster = call.cluster();
    let vm = cluster.vm(call.node(), call.number("vmid")?)?;
    let mut status = summary(vm);
    status["qmpstatus"] = status["status"].clone();
    status["ha"] = json!({ "managed": 0 });
    if vm.power == PowerState::Running {
        status["pid"] = json!(100_000 + vm.vmid);
    }
    Ok(status)
}

/// The config with `digest`, typed as PVE returns it: numbers and booleans as JSON numbers.
/// Pending values are shown in place of the current ones unless `current` is set; `snapshot`
/// shows a snapshot's config with its metadata instead.
fn get_config(call: &Call<'_>) -> Result<Value, ApiError> {
    let snapname = call.param("snapshot");
    if snapname.is_some() && call.flag("current") == Some(true) {
        let why = "cannot use 'snapshot' parameter with 'current'";
        return Err(ApiError::params(BTreeMap::from([
            ("snapshot".to_owned(), why.to_owned()),
            ("current".to_owned(), why.to_owned()),
        ])));
    }
    let cluster = call.cluster();
    let vm = cluster.vm(call.node(), call.number("vmid")?)?;
    let schema = call.state.schema.route("POST", "/nodes/n/qemu/100/config");
    let mut values = vm.config.clone();
    let mut extra = serde_json::Map::new();
    if let Some(name) = snapname {
        let snap = vm
            .snapshots
            .get(name)
            .ok_or_else(|| ApiError::internal(format!("snapshot '{name}' does not exist")))?;
        values = snap.config.clone();
        extra.insert("snaptime".into(), json!(snap.snaptime));
        if snap.vmstate {
            extra.insert("vmstate".into(), json!(1));
        }
        for (key, value) in [("description", &snap.description), ("parent", &snap.parent)] {
            if let Some(value) = value {
                extra.insert(key.into(), json!(value));
            }
        }
    } else if !call.flag("current").unwrap_or(false) {
        values.extend(vm.pending.clone());
    }
    let mut config = serde_json::Map::new();
    for (key, value) in &values {
        let ty = schema
            .as_ref()
            .and_then(|r| r.method.param_schema(key))
            .and_then(|s| s.get("type"));
        let typed = match ty.and_then(Value::as_str) {
            Some("integer") => value.parse::<i64>().map(Value::from).ok(),
            Some("number") => value.parse::<f64>().ok().map(Value::from),
            Some("boolean") => crate::schema::parse_boolean(value).map(|b| json!(u8::from(b))),
            _ => None,
        };
        config.insert(key.clone(), typed.unwrap_or_else(|| json!(value)));
    }
    config.extend(extra);
    config.insert("digest".into(), json!(vm.digest()));
    Ok(Value::Object(config))
}

/// `GET …/pending`: every key with its current value and, if a restart will change it, the
/// pending one.
fn pending(call: &Call<'_>) -> Result<Value, ApiError> {
    let cluster = call.cluster();
    let vm = cluster.vm(call.node(), call.number("vmid")?)?;
    let keys: std::collections::BTreeSet<&String> =
        vm.config.keys().chain(vm.pending.keys()).collect();
    let entries = keys.into_iter().map(|key| {
        let mut entry = json!({ "key": key });
        if let Some(value) = vm.config.get(key) {
            entry["value"] = json!(value);
        }
        if let Some(value) = vm.pending.get(key) {
            entry["pending"] = json!(value);
        }
        entry
    });
    Ok(Value::Array(entries.collect()))
}

/// Parameters of `…/config` that steer the update rather than set a config key.
const CONTROL_PARAMS: &[&str] = &[
    "node",
    "vmid",
    "digest",
    "delete",
    "revert",
    "skiplock",
    "force",
    "background_delay",
];

/// `POST` (async, returns a UPID) and `PUT` (sync) `…/config`.
fn update_config(call: &Call<'_>, asynchronous: bool) -> Result<Value, ApiError> {
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    refuse_skiplock(call)?;
    let sets: BTreeMap<String, String> = call
        .params
        .iter()
        .filter(|(k, _)| !CONTROL_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deletes: Vec<String> = call
        .param("delete")
        .map(|d| split_list(d).map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(both) = deletes.iter().find(|k| sets.contains_key(*k)) {
        return Err(ApiError::param(
            "delete",
            format!("you can't use '-{both}' and '-delete {both}' at the same time"),
        ));
    }
    if let Some(keys) = sets.get("sshkeys") {
        validate_ssh_keys(keys)?;
    }
    {
        let cluster = call.cluster();
        let vm = cluster.vm(&node, vmid)?;
        vm.check_unlocked()?;
        vm.check_digest(call.params.get("digest"))?;
    }
    let apply = move |cluster: &mut Cluster| -> Result<(), ApiError> {
        let vm = cluster.vm_mut(&node, vmid)?;
        for key in &deletes {
            vm.config.remove(key);
        }
        let running = vm.power == PowerState::Running;
        for (key, value) in sets {
            let value = normalize_config_value(vm, &key, value);
            // Like qemu-server's pending cleanup: a value equal to the current one is no change.
            if running && is_cold_key(&key) && vm.config.get(&key) != Some(&value) {
                vm.pending.insert(key, value);
            } else {
                vm.pending.remove(&key);
                vm.config.insert(key, value);
            }
        }
        Ok(())
    };
    if !asynchronous {
        apply(&mut call.cluster())?;
        return Ok(Value::Null);
    }
    let upid = call.spawn_task(
        "qmconfig",
        &vmid.to_string(),
        call.state.config.task_duration,
        move |cluster, injected| {
            injected?;
            apply(cluster).map_err(|e| e.message)
        },
    );
    Ok(json!(upid))
}

/// `skiplock` is for root only; the simulator's users never are.
fn refuse_skiplock(call: &Call<'_>) -> Result<(), ApiError> {
    if call.params.contains_key("skiplock") {
        return Err(ApiError::new(
            403,
            "Permission check failed (Only root may use option 'skiplock')",
        ));
    }
    Ok(())
}

/// qemu-server decodes `sshkeys` and checks every key line (`validate_ssh_public_keys`).
pub(super) fn validate_ssh_keys(encoded: &str) -> Result<(), ApiError> {
    let decoded = crate::auth::percent_decode(encoded);
    let valid = decoded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .all(|line| {
            let mut fields = line.split_whitespace();
            let key_type = fields.next().unwrap_or_default();
            let known = ["ssh-", "ecdsa-", "sk-"]
                .iter()
                .any(|p| key_type.starts_with(p));
            known && fields.next().is_some_and(|blob| blob.len() > 16)
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::internal("SSH public key validation error"))
    }
}

/// What PVE writes for a new value: `local-lvm:10` allocates `vm-<id>-disk-<n>` of 10 GiB, a
/// NIC without a MAC address gets one.
fn normalize_config_value(vm: &Vm, key: &str, value: String) -> String {
    if is_disk_key(key)
        && let Some((storage, rest)) = value.split_once(':')
    {
        let (size, options) = rest
            .split_once(',')
            .map_or((rest, None), |(s, o)| (s, Some(o)));
        if let Ok(gib) = size.parse::<f64>() {
            let volume = format!("{storage}:vm-{}-disk-{}", vm.vmid, next_disk_index(vm));
            let options = options.map(|o| format!(",{o}")).unwrap_or_default();
            return with_size(
                &format!("{volume}{options}"),
                (gib * f64::from(1u32 << 30)) as u64,
            );
        }
    }
    if key.starts_with("net") {
        return with_mac(&value);
    }
    value
}

/// `virtio,bridge=vmbr0` becomes `virtio=<new MAC>,bridge=vmbr0`.
fn with_mac(value: &str) -> String {
    let (model, rest) = value
        .split_once(',')
        .map_or((value, None), |(m, r)| (m, Some(r)));
    if model.contains('=') {
        return value.to_owned();
    }
    let rest = rest.map(|r| format!(",{r}")).unwrap_or_default();
    format!("{model}={}{rest}", random_mac())
}

fn next_disk_index(vm: &Vm) -> usize {
    let marker = format!("vm-{}-disk-", vm.vmid);
    let used: Vec<usize> = vm
        .config
        .values()
        .filter_map(|v| v.split_once(&marker))
        .filter_map(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    (0..).find(|i| !used.contains(i)).unwrap_or(0)
}

fn clone(call: &Call<'_>) -> Result<Value, ApiError> {
    let (node, vmid, newid) = (
        call.node().to_owned(),
        call.number("vmid")?,
        call.number("newid")?,
    );
    let target = call.param("target").unwrap_or(&node).to_owned();
    let mut cluster = call.cluster();
    let source = cluster.vm(&node, vmid)?;
    source.check_unlocked()?;
    let full = call.flag("full").unwrap_or(!source.is_template());
    if !full && !source.is_template() {
        return Err(ApiError::internal(
            "Linked clone feature is not supported for drive 'scsi0'",
        ));
    }
    if cluster.vms.contains_key(&newid) {
        return Err(ApiError::internal(format!(
            "unable to create VM {newid}: config file already exists"
        )));
    }
    check_clone_target(&cluster, source, &node, &target, call.param("storage"))?;
    let config = clone_config(call, source, newid, full);
    // Like qemu-server, the copy is made on the source node and its config moves to the target
    // node only once the copy is done.
    cluster.vms.insert(newid, Vm::new(newid, &node, config));
    drop(cluster);
    let duration = if full {
        call.state.config.clone_duration
    } else {
        call.state.config.task_duration
    };
    let upid = call.spawn_task(
        "qmclone",
        &vmid.to_string(),
        duration,
        move |cluster, injected| {
            if let Err(message) = injected {
                // qemu-server destroys the half-made clone when the copy fails.
                cluster.vms.remove(&newid);
                return Err(message);
            }
            if let Some(vm) = cluster.vms.get_mut(&newid) {
                vm.config.remove("lock");
                vm.node = target;
            }
            Ok(())
        },
    );
    Ok(json!(upid))
}

/// Cloning to another node needs every volume of the source, and the target storage if one is
/// named, on shared storage; `local` and `local-lvm` are not.
fn check_clone_target(
    cluster: &Cluster,
    source: &Vm,
    node: &str,
    target: &str,
    storage: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(storage) = storage
        && cluster.storage(storage).is_none()
    {
        return Err(ApiError::internal(format!(
            "storage '{storage}' does not exist"
        )));
    }
    if target == node {
        return Ok(());
    }
    if cluster.node(target).is_none() {
        return Err(ApiError::internal(format!(
            "no such cluster node '{target}'"
        )));
    }
    // qemu-server's check_storage_access_clone: every volume (disks, the cloud-init drive, an
    // ISO in a CD-ROM drive) must be on shared storage; an empty drive does not count.
    let shared = |name: &str| cluster.storage(name).is_some_and(|s| s.shared);
    let uses_local = source.config.iter().any(|(key, line)| {
        let volume = line.split(',').next().unwrap_or_default();
        let storage = volume.split_once(':').map_or(volume, |(s, _)| s);
        is_disk_key(key) && volume != "none" && !shared(storage)
    });
    if uses_local {
        return Err(ApiError::internal(format!(
            "can't clone VM to node '{target}' (VM uses local storage)"
        )));
    }
    if let Some(storage) = storage
        && !shared(storage)
    {
        return Err(ApiError::internal(format!(
            "can't clone to non-shared storage '{storage}'"
        )));
    }
    Ok(())
}

/// The new VM's config: the source's, with its own disks, MACs and UUIDs, and `lock: clone`
/// until the copy finishes.
fn clone_config(call: &Call<'_>, source: &Vm, newid: u32, full: bool) -> BTreeMap<String, String> {
    let mut config = source.config.clone();
    config.remove("template");
    // The source's place in its snapshot tree is not the clone's (qemu-server skips `parent`).
    config.remove("parent");
    config.insert("lock".into(), "clone".into());
    let name = call
        .param("name")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Copy-of-VM-{}", source.name()));
    config.insert("name".into(), name);
    if let Some(description) = call.param("description") {
        config.insert("description".into(), description.to_owned());
    }
    let mut index = 0;
    for (key, drive) in config.iter_mut() {
        if key.starts_with("net") {
            *drive = drive
                .split(',')
                .map(replace_mac)
                .collect::<Vec<_>>()
                .join(",");
        } else if is_disk_key(key) {
            *drive = clone_drive(drive, newid, full, call.param("storage"), &mut index);
        }
    }
    config.insert("smbios1".into(), format!("uuid={}", random_uuid()));
    config.insert("vmgenid".into(), random_uuid());
    config
}

pub(super) fn replace_mac(part: &str) -> String {
    match part.split_once('=') {
        Some((model, mac)) if mac.len() == 17 && mac.matches(':').count() == 5 => {
            format!("{model}={}", random_mac())
        }
        _ => part.to_owned(),
    }
}

fn clone_drive(
    drive: &str,
    newid: u32,
    full: bool,
    storage: Option<&str>,
    index: &mut usize,
) -> String {
    let (volume, options) = drive.split_once(',').unwrap_or((drive, ""));
    let Some((src_storage, name)) = volume.split_once(':') else {
        return drive.to_owned();
    };
    let storage = storage.unwrap_or(src_storage);
    let options = if options.is_empty() {
        String::new()
    } else {
        format!(",{options}")
    };
    if name.ends_with("-cloudinit") {
        return format!("{storage}:vm-{newid}-cloudinit{options}");
    }
    if options.contains("media=cdrom") {
        return drive.to_owned();
    }
    let new_name = format!("vm-{newid}-disk-{index}");
    *index += 1;
    if full {
        format!("{storage}:{new_name}{options}")
    } else {
        format!("{src_storage}:{name}/{new_name}{options}")
    }
}

/// `PUT …/resize`, asynchronous since PVE 8. Like qemu-server, the disk and size checks run in
/// the task; only the lock is checked up front.
fn resize(call: &Call<'_>) -> Result<Value, ApiError> {
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    refuse_skiplock(call)?;
    let disk = call.param("disk").unwrap_or_default().to_owned();
    let size = call.param("size").unwrap_or_default().to_owned();
    let digest = call.params.get("digest").cloned();
    {
        let cluster = call.cluster();
        let vm = cluster.vm(&node, vmid)?;
        vm.check_unlocked()?;
    }
    let upid = call.spawn_task(
        "qmresize",
        &vmid.to_string(),
        call.state.config.task_duration,
        move |cluster, injected| {
            injected?;
            let vm = cluster.vm_mut(&node, vmid).map_err(|e| e.message)?;
            vm.check_digest(digest.as_ref()).map_err(|e| e.message)?;
            let drive = vm
                .config
                .get(&disk)
                .ok_or_else(|| format!("disk '{disk}' does not exist"))?;
            if drive.contains("media=cdrom") {
                return Err("you can't resize a cdrom".into());
            }
            let current = disk_size(drive).unwrap_or(0);
            let requested = parse_size(size.trim_start_matches('+'))
                .ok_or_else(|| format!("unable to parse size '{size}'"))?;
            let new_size = if size.starts_with('+') {
                current + requested
            } else {
                requested
            };
            if new_size < current {
                return Err("shrinking disks is not supported".into());
            }
            let resized = with_size(drive, new_size);
            vm.config.insert(disk, resized);
            Ok(())
        },
    );
    Ok(json!(upid))
}

#[derive(Clone, Copy)]
enum Power {
    Start,
    Stop,
    Shutdown,
    Reboot,
}

fn power(call: &Call<'_>, action: Power) -> Result<Value, ApiError> {
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    refuse_skiplock(call)?;
    {
        let cluster = call.cluster();
        let vm = cluster.vm(&node, vmid)?;
        vm.check_unlocked()?;
        if matches!(action, Power::Reboot) && vm.power != PowerState::Running {
            return Err(ApiError::internal("VM is not running"));
        }
    }
    let kind = match action {
        Power::Start => "qmstart",
        Power::Stop => "qmstop",
        Power::Shutdown => "qmshutdown",
        Power::Reboot => "qmreboot",
    };
    let state = call.state.clone();
    let upid = call.spawn_task(
        kind,
        &vmid.to_string(),
        call.state.config.task_duration,
        move |cluster, injected| {
            injected?;
            let vm = cluster.vm_mut(&node, vmid).map_err(|e| e.message)?;
            match action {
                // The worker re-checks under the config lock, so two racing starts: one fails.
                Power::Start if vm.is_template() => {
                    Err("you can't start a vm if it's a template".into())
                }
                Power::Start if vm.power == PowerState::Running => {
                    Err(format!("VM {vmid} already running"))
                }
                Power::Start => {
                    vm.set_power(PowerState::Running);
                    Ok(())
                }
                // `qm reboot` shuts the guest down and starts a new QEMU process: the pending
                // changes apply, and the old process's console connections end.
                Power::Reboot => {
                    vm.set_power(PowerState::Running);
                    state.consoles.cut_sessions(vmid);
                    Ok(())
                }
                // Stopping a stopped VM is a no-op that succeeds, as in qemu-server.
                Power::Stop | Power::Shutdown => {
                    vm.set_power(PowerState::Stopped);
                    // QEMU exits, and with it the VNC and serial connections of its consoles.
                    state.consoles.cut_sessions(vmid);
                    Ok(())
                }
            }
        },
    );
    Ok(json!(upid))
}

/// `DELETE /nodes/{node}/qemu/{vmid}`: refused while running, locked or protected.
fn destroy(call: &Call<'_>) -> Result<Value, ApiError> {
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    refuse_skiplock(call)?;
    {
        let cluster = call.cluster();
        let vm = cluster.vm(&node, vmid)?;
        vm.check_unlocked()?;
        if vm
            .config
            .get("protection")
            .is_some_and(|p| crate::schema::parse_boolean(p) == Some(true))
        {
            return Err(ApiError::internal(format!(
                "can't remove VM {vmid} - protection mode enabled"
            )));
        }
        if vm.power == PowerState::Running {
            return Err(ApiError::internal(format!(
                "VM {vmid} is running - destroy failed"
            )));
        }
    }
    let upid = call.spawn_task(
        "qmdestroy",
        &vmid.to_string(),
        call.state.config.task_duration,
        move |cluster, injected| {
            injected?;
            cluster.vms.remove(&vmid);
            Ok(())
        },
    );
    Ok(json!(upid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::format_size;

    #[test]
    fn sizes_parse_and_format_like_pve() {
        assert_eq!(parse_size("32G"), Some(32 << 30));
        assert_eq!(format_size(42 << 30), "42G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(
            with_size("local-lvm:vm-100-disk-0,iothread=1,size=8G", 10 << 30),
            "local-lvm:vm-100-disk-0,iothread=1,size=10G"
        );
    }

    #[test]
    fn ssh_keys_must_decode_to_key_lines() {
        assert!(validate_ssh_keys("ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIG%20me%40host").is_ok());
        assert!(validate_ssh_keys("ssh-ed25519").is_err());
    }
}
