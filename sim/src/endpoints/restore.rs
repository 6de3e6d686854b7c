//! `POST /nodes/{node}/qemu` with `archive`: qemu-server's restore of a vzdump archive into a
//! new VM, or over an existing one with `force`. Creating a VM from scratch (no `archive`) is
//! not modelled; Porthole clones templates.
//!
//! Up front, as qemu-server: the archive must be a backup volume this node can read, and the
//! VMID free (or, with `force`, an unlocked VM on this node), which then gets `lock: create`.
//! The worker refuses a protected or running VM; the restore replaces the config with the
//! archived one (new disks, a new generation ID) and drops the snapshots.

use super::storage::{dump_dir, parse_volname, visible_backups};
use super::{Call, qemu};
use crate::cluster::{BackupVolume, Cluster, PowerState, Vm, disk_size, is_disk_key, random_uuid};
use crate::error::ApiError;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Parameters that steer the restore rather than override a config key.
const CONTROL_PARAMS: &[&str] = &[
    "node",
    "vmid",
    "archive",
    "storage",
    "force",
    "unique",
    "start",
    "pool",
    "bwlimit",
    "live-restore",
    "ha-managed",
    "import-working-storage",
];

pub fn create_or_restore(call: &Call<'_>) -> Result<Value, ApiError> {
    let Some(archive) = call.param("archive") else {
        return Err(ApiError::not_implemented(call.method, "/nodes/{node}/qemu"));
    };
    let (node, vmid) = (call.node().to_owned(), call.number("vmid")?);
    if let Some(keys) = call.param("sshkeys") {
        qemu::validate_ssh_keys(keys)?;
    }
    if let Some(drive) = call.params.keys().find(|k| is_disk_key(k)) {
        return Err(ApiError::param(
            drive,
            "option conflicts with option 'archive'",
        ));
    }
    if archive == "-" {
        return Err(ApiError::internal("pipe requires cli environment"));
    }
    let options = Options {
        storage: call.param("storage").map(str::to_owned),
        unique: call.flag("unique").unwrap_or(false),
        start: call.flag("start").unwrap_or(false),
        live: call.flag("live-restore").unwrap_or(false),
        overrides: call
            .params
            .iter()
            .filter(|(k, _)| !CONTROL_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let emsg = format!("unable to restore VM {vmid} -");
    let mut cluster = call.cluster();
    let backup = find_archive(&cluster, &node, archive)?.clone();
    // `create_and_lock_config`.
    match cluster.vms.get_mut(&vmid) {
        Some(vm) if !call.flag("force").unwrap_or(false) || vm.node != node => {
            return Err(ApiError::internal(format!(
                "{emsg} VM {vmid} already exists on node '{}'",
                vm.node
            )));
        }
        Some(vm) => {
            vm.check_unlocked()
                .map_err(|e| ApiError::internal(format!("{emsg} {}", e.message)))?;
            vm.config.insert("lock".into(), "create".into());
        }
        None => {
            let config = BTreeMap::from([("lock".to_owned(), "create".to_owned())]);
            cluster.vms.insert(vmid, Vm::new(vmid, &node, config));
        }
    }
    let id = vmid.to_string();
    let restored = check_restore(&cluster, &node, vmid, &emsg, &options, &backup)
        .map(|()| restored_config(&backup, vmid, &options));
    let (config, mut lines) = match restored {
        Ok(restored) => restored,
        Err(message) => {
            // The worker's error path: the lock goes, the VM stays as it is.
            if let Ok(vm) = cluster.vm_mut(&node, vmid) {
                vm.config.remove("lock");
            }
            drop(cluster);
            return Ok(json!(call.failed_task("qmrestore", &id, message)));
        }
    };
    drop(cluster);
    lines.insert(0, restore_command(&backup, vmid));
    let duration = call.state.config.restore_duration;
    let upid = call.spawn_logged_task("qmrestore", &id, duration, move |cluster, injected, log| {
        let vm = cluster.vm_mut(&node, vmid).map_err(|e| e.message)?;
        if let Err(message) = injected {
            vm.config.remove("lock");
            log.push(format!(
                "WARN: error before or during data restore, some or all disks were not \
                 completely restored. VM {vmid} state is NOT cleaned up."
            ));
            return Err(message);
        }
        log.extend(lines);
        // The old VM's disks, snapshots and pending changes are destroyed with it.
        vm.config = config;
        vm.pending.clear();
        vm.snapshots.clear();
        vm.set_power(PowerState::Stopped);
        if options.start {
            log.push("Execute autostart".into());
            if vm.is_template() {
                log.push("WARN: you can't start a vm if it's a template".into());
            } else {
                vm.set_power(PowerState::Running);
            }
        }
        Ok(())
    });
    Ok(json!(upid))
}

struct Options {
    storage: Option<String>,
    unique: bool,
    start: bool,
    live: bool,
    /// Config keys given with the archive, which replace the archived ones.
    overrides: BTreeMap<String, String>,
}

/// `check_volume_access(…, 'backup')`, then the file itself (`abs_filesystem_path`).
fn find_archive<'a>(
    cluster: &'a Cluster,
    node: &str,
    archive: &str,
) -> Result<&'a BackupVolume, ApiError> {
    let Some((storage, volname)) = archive.split_once(':') else {
        return Err(ApiError::internal(
            "Only root can pass arbitrary filesystem paths.",
        ));
    };
    let plugin = cluster
        .storage(storage)
        .map(|s| s.plugintype.as_str())
        .ok_or_else(|| ApiError::internal(format!("storage '{storage}' does not exist")))?;
    let name = parse_volname(plugin, volname).map_err(ApiError::internal)?;
    if name.vtype != "backup" {
        return Err(ApiError::internal(format!(
            "unable to use volume {archive} - content type needs to be 'backup'"
        )));
    }
    visible_backups(cluster, node, storage)
        .into_iter()
        .find(|b| b.volid == archive)
        .ok_or_else(|| ApiError::internal(format!("can't find file '{archive}'")))
}

/// The worker's checks before it touches anything: `restorefn`, then the target storage.
fn check_restore(
    cluster: &Cluster,
    node: &str,
    vmid: u32,
    emsg: &str,
    options: &Options,
    backup: &BackupVolume,
) -> Result<(), String> {
    let vm = cluster.vm(node, vmid).map_err(|e| e.message)?;
    if vm
        .config
        .get("protection")
        .is_some_and(|p| crate::schema::parse_boolean(p) == Some(true))
    {
        return Err(format!("{emsg} protection mode enabled"));
    }
    if vm.power == PowerState::Running {
        return Err(format!("{emsg} vm is running"));
    }
    if options.live {
        return Err(
            "live-restore is only compatible with backup images from a Proxmox Backup Server"
                .into(),
        );
    }
    for (_, drive) in archived_disks(&backup.config) {
        let storage = target_storage(drive, options);
        match cluster.storage(storage) {
            None => return Err(format!("storage '{storage}' does not exist")),
            Some(s) if !s.content.split(',').any(|c| c == "images") => {
                return Err(format!(
                    "Content type 'images' is not available on storage '{storage}'"
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The drives whose data the archive holds.
fn archived_disks(config: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    config.iter().filter(|(key, drive)| {
        is_disk_key(key)
            && !drive.contains("media=cdrom")
            && !drive.contains("backup=0")
            && drive.split(',').next() != Some("none")
    })
}

/// `storage` if given, else the storage the drive was on.
fn target_storage<'a>(drive: &'a str, options: &'a Options) -> &'a str {
    options.storage.as_deref().unwrap_or_else(|| {
        let volume = drive.split(',').next().unwrap_or_default();
        volume.split_once(':').map_or(volume, |(s, _)| s)
    })
}

/// The config `restore_vma_archive` writes, and the log lines naming the new volumes.
fn restored_config(
    backup: &BackupVolume,
    vmid: u32,
    options: &Options,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut lines = vec![format!(
        "CFG: size: {} name: qemu-server.conf",
        backup
            .config
            .iter()
            .map(|(k, v)| k.len() + v.len() + 3)
            .sum::<usize>()
    )];
    let mut config = BTreeMap::new();
    let mut disks = NewDisks {
        vmid,
        // A template's disks become base images again ("Convert to template").
        prefix: if backup.config.get("template").is_some_and(|t| t == "1") {
            "base"
        } else {
            "vm"
        },
        next_index: BTreeMap::new(),
    };
    for (dev_id, (key, drive)) in archived_disks(&backup.config).enumerate() {
        let size = disk_size(drive).unwrap_or(0);
        lines.push(format!(
            "DEV: dev_id={} size: {size} devname: drive-{key}",
            dev_id + 1
        ));
    }
    for (key, value) in &backup.config {
        let value = if is_disk_key(key) {
            let Some(drive) = disks.restore(value, options) else {
                // A drive left out of the backup is commented out of the restored config.
                continue;
            };
            if drive != *value && !drive.contains("media=cdrom") {
                let volid = drive.split(',').next().unwrap_or_default();
                lines.push(format!("new volume ID is '{volid}'"));
            }
            drive
        } else if key.starts_with("net") && options.unique {
            value
                .split(',')
                .map(qemu::replace_mac)
                .collect::<Vec<_>>()
                .join(",")
        } else if key == "smbios1" && options.unique {
            value
                .split(',')
                .map(|part| match part.strip_prefix("uuid=") {
                    Some(_) => format!("uuid={}", random_uuid()),
                    None => part.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(",")
        } else if key == "vmgenid" && value != "0" {
            // Always a new generation ID: the guest must know it runs from a restored image.
            random_uuid()
        } else {
            value.clone()
        };
        config.insert(key.clone(), value);
    }
    config.extend(options.overrides.clone());
    lines.push("rescan volumes...".into());
    (config, lines)
}

/// Names for the restored VM's volumes: `vm-<vmid>-disk-<n>`, numbered per storage.
struct NewDisks {
    vmid: u32,
    prefix: &'static str,
    next_index: BTreeMap<String, usize>,
}

impl NewDisks {
    /// A drive of the archived config on its new volume; `None` for one left out of the backup.
    fn restore(&mut self, drive: &str, options: &Options) -> Option<String> {
        let vmid = self.vmid;
        if drive.contains("backup=0") {
            return None;
        }
        let (volume, rest) = drive.split_once(',').unwrap_or((drive, ""));
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(",{rest}")
        };
        let storage = target_storage(drive, options);
        if drive.contains("media=cdrom") {
            // The cloud-init drive is made anew for the VM; an ISO stays where it is.
            return Some(if volume.ends_with("-cloudinit") {
                format!("{storage}:vm-{vmid}-cloudinit{rest}")
            } else {
                drive.to_owned()
            });
        }
        if volume == "none" {
            return Some(drive.to_owned());
        }
        let prefix = self.prefix;
        let index = self.next_index.entry(storage.to_owned()).or_default();
        let restored = format!("{storage}:{prefix}-{vmid}-disk-{index}{rest}");
        *index += 1;
        Some(restored)
    }
}

/// The first line of qemu-server's restore log: the pipe that unpacks the archive.
fn restore_command(backup: &BackupVolume, vmid: u32) -> String {
    let file = backup.volid.rsplit('/').next().unwrap_or_default();
    let path = format!("{}/{file}", dump_dir(&backup.storage));
    let tmp = format!("/var/tmp/vzdumptmp{}", 100_000 + vmid);
    let decompress = match backup.format.as_str() {
        "vma.zst" => Some("zstd -q -d -c"),
        "vma.gz" => Some("zcat"),
        "vma.lzo" => Some("lzop -d -c"),
        _ => None,
    };
    match decompress {
        Some(cmd) => {
            format!("restore vma archive: {cmd} {path} | vma extract -v -r {tmp}.fifo - {tmp}")
        }
        None => format!("restore vma archive: vma extract -v -r {tmp}.fifo {path} {tmp}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_move_to_the_new_vmid_and_the_target_storage() {
        let options = Options {
            storage: None,
            unique: false,
            start: false,
            live: false,
            overrides: BTreeMap::new(),
        };
        let mut disks = NewDisks {
            vmid: 205,
            prefix: "vm",
            next_index: BTreeMap::new(),
        };
        let mut restore = |drive: &str| disks.restore(drive, &options);
        assert_eq!(
            restore("local-lvm:vm-100-disk-0,iothread=1,size=8G").as_deref(),
            Some("local-lvm:vm-205-disk-0,iothread=1,size=8G")
        );
        assert_eq!(
            restore("local-lvm:vm-100-cloudinit,media=cdrom").as_deref(),
            Some("local-lvm:vm-205-cloudinit,media=cdrom")
        );
        assert_eq!(restore("local-lvm:vm-100-disk-1,backup=0"), None);
        assert_eq!(
            restore("ceph:vm-100-disk-2,size=4G").as_deref(),
            Some("ceph:vm-205-disk-0,size=4G")
        );
    }
}
