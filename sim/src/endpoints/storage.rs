//! `/nodes/{node}/storage/{storage}/content…`: what a storage holds — the VMs' disk images and
//! the archives vzdump wrote — and deleting a backup, with pve-storage's volume-name parsing and
//! messages. A non-shared storage is a different one on every node: `local` on pve2 does not
//! hold pve1's backups.

use super::{Call, end_task};
use crate::cluster::{BackupVolume, Cluster, disk_size, is_disk_key};
use crate::error::ApiError;
use crate::faults::FaultKind;
use serde_json::{Value, json};

/// What a volume name says: its content type and the VM that owns it.
#[derive(Debug, PartialEq, Eq)]
pub struct VolumeName {
    pub vtype: &'static str,
    pub owner: Option<u32>,
}

/// The storage plugins' `parse_volname` for the simulator's storage types.
pub fn parse_volname(plugintype: &str, volname: &str) -> Result<VolumeName, String> {
    let volume = |vtype, owner| Ok(VolumeName { vtype, owner });
    match plugintype {
        "dir" | "nfs" | "cifs" => {
            if let Some(file) = volname.strip_prefix("backup/")
                && is_backup_file(file)
            {
                return volume("backup", backup_owner(file));
            }
            let (dir, file) = volname.split_once('/').unwrap_or(("", volname));
            match dir {
                "iso" if !file.contains('/') => volume("iso", None),
                "vztmpl" if !file.contains('/') => volume("vztmpl", None),
                "snippets" if !file.contains('/') => volume("snippets", None),
                "import" if !file.contains('/') => volume("import", None),
                _ if !dir.is_empty() && dir.bytes().all(|b| b.is_ascii_digit()) => {
                    volume("images", dir.parse().ok())
                }
                _ => Err(format!("unable to parse directory volume name '{volname}'")),
            }
        }
        "lvmthin" | "lvm" => match image_owner(volname) {
            Some(owner) if !volname.contains(char::is_whitespace) => volume("images", Some(owner)),
            _ => Err(format!("unable to parse lvm volume name '{volname}'")),
        },
        _ => match image_owner(volname.rsplit('/').next().unwrap_or(volname)) {
            Some(owner) => volume("images", Some(owner)),
            None => Err(format!("unable to parse rbd volume name '{volname}'")),
        },
    }
}

/// `vzdump-qemu-100-….vma.zst` and the other archive names `backup/` may hold.
fn is_backup_file(file: &str) -> bool {
    let base = [".gz", ".lzo", ".zst", ".bz2"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file);
    !file.contains('/')
        && (file.ends_with(".tgz") || base.ends_with(".tar") || base.ends_with(".vma"))
}

/// The VMID in `vzdump-{qemu,lxc,openvz}-<vmid>-…`.
fn backup_owner(file: &str) -> Option<u32> {
    let rest = file.strip_prefix("vzdump-")?;
    let rest = ["qemu-", "lxc-", "openvz-"]
        .iter()
        .find_map(|t| rest.strip_prefix(t))?;
    let (vmid, tail) = rest.split_once('-')?;
    (!tail.is_empty()).then(|| vmid.parse().ok()).flatten()
}

/// The VMID in `vm-<vmid>-…` or `base-<vmid>-…`.
fn image_owner(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("vm-")
        .or_else(|| name.strip_prefix("base-"))?;
    let (vmid, tail) = rest.split_once('-')?;
    (!tail.is_empty()).then(|| vmid.parse().ok()).flatten()
}

/// Where a directory storage keeps its backups.
pub fn dump_dir(storage: &str) -> String {
    if storage == "local" {
        "/var/lib/vz/dump".to_owned()
    } else {
        format!("/mnt/pve/{storage}/dump")
    }
}

/// The backups `node` sees on `storage`.
pub fn visible_backups<'a>(
    cluster: &'a Cluster,
    node: &str,
    storage: &str,
) -> Vec<&'a BackupVolume> {
    cluster
        .backups
        .iter()
        .filter(|b| b.storage == storage && cluster.storage_visible(storage, &b.node, node))
        .collect()
}

/// `GET …/content`, filtered by `content` and `vmid`, sorted by volume ID as pve-storage sorts.
pub fn content(call: &Call<'_>) -> Result<Value, ApiError> {
    let cluster = call.cluster();
    let (node, id) = (call.node(), call.param("storage").unwrap_or_default());
    let storage = cluster
        .storage(id)
        .ok_or_else(|| ApiError::internal(format!("storage '{id}' does not exist")))?;
    let vmid = match call.param("vmid") {
        Some(_) => Some(call.number("vmid")?),
        None => None,
    };
    let wants = |content: &str| {
        call.param("content").is_none_or(|c| c == content)
            && storage.content.split(',').any(|c| c == content)
    };
    let mut items = Vec::new();
    if wants("images") {
        items.extend(images(&cluster, node, id));
    }
    if wants("backup") {
        items.extend(
            visible_backups(&cluster, node, id)
                .into_iter()
                .map(backup_item),
        );
    }
    items.retain(|item| vmid.is_none_or(|v| item["vmid"] == json!(v)));
    items.sort_by_key(|item| item["volid"].as_str().unwrap_or_default().to_lowercase());
    Ok(Value::Array(items))
}

fn backup_item(backup: &BackupVolume) -> Value {
    let mut item = json!({
        "volid": backup.volid, "content": "backup", "format": backup.format,
        "size": backup.size, "ctime": backup.ctime, "vmid": backup.vmid, "subtype": "qemu",
    });
    // Only the first line of the notes, and `protected` only when set.
    if let Some(notes) = &backup.notes {
        item["notes"] = json!(notes.lines().next().unwrap_or_default());
    }
    if backup.protected {
        item["protected"] = json!(1);
    }
    item
}

/// The VMs' volumes on a storage: their disks, cloud-init drives and unused disks.
fn images(cluster: &Cluster, node: &str, storage: &str) -> Vec<Value> {
    let prefix = format!("{storage}:");
    let mut seen = std::collections::BTreeSet::new();
    let mut items = Vec::new();
    for vm in cluster.vms.values() {
        if !cluster.storage_visible(storage, &vm.node, node) {
            continue;
        }
        for (key, drive) in &vm.config {
            if !(is_disk_key(key) || key.starts_with("unused")) {
                continue;
            }
            let volume = drive.split(',').next().unwrap_or_default();
            let Some(name) = volume.strip_prefix(&prefix) else {
                continue;
            };
            let Some(owner) = image_owner(name.rsplit('/').next().unwrap_or(name)) else {
                continue;
            };
            if !seen.insert(volume.to_owned()) {
                continue;
            }
            // A cloud-init drive is a 4 MiB image.
            let size = disk_size(drive).unwrap_or(4 << 20);
            items.push(json!({
                "volid": volume, "content": "images", "format": "raw", "size": size,
                "vmid": owner,
            }));
        }
    }
    items
}

/// `DELETE …/content/{volume}` → `imgdel` (UPID id `<owner>@<storage>`). Only backups: deleting
/// any other volume needs `Datastore.Allocate`, which the simulator's users do not have. With
/// `delay`, the task is waited for: `null` if it ended well, its error otherwise.
pub fn delete_volume(call: &Call<'_>) -> Result<Value, ApiError> {
    let node = call.node().to_owned();
    let path_storage = call.param("storage").unwrap_or_default();
    let volume = call.param("volume").unwrap_or_default();
    let (storage, volname) = match volume.split_once(':') {
        Some((storage, volname)) if is_storage_id(storage) && !volname.is_empty() => {
            if storage != path_storage {
                return Err(ApiError::param(
                    "volume",
                    format!("storage ID mismatch ({storage} != {path_storage})"),
                ));
            }
            (storage.to_owned(), volname.to_owned())
        }
        Some(_) => {
            return Err(ApiError::param(
                "volume",
                format!("unable to parse volume ID '{volume}'"),
            ));
        }
        None => (path_storage.to_owned(), volume.to_owned()),
    };
    let volid = format!("{storage}:{volname}");
    let owner = {
        let cluster = call.cluster();
        let plugin = cluster
            .storage(&storage)
            .map(|s| s.plugintype.clone())
            .ok_or_else(|| ApiError::internal(format!("storage '{storage}' does not exist")))?;
        match parse_volname(&plugin, &volname).map_err(ApiError::internal)? {
            VolumeName {
                vtype: "backup",
                owner: Some(owner),
            } => owner,
            _ => {
                return Err(ApiError::new(
                    403,
                    format!("Permission check failed (/storage/{storage}, Datastore.Allocate)"),
                ));
            }
        }
    };
    let id = format!("{owner}@{storage}");
    let target = Removal {
        node,
        path: format!(
            "{}/{}",
            dump_dir(&storage),
            volname.trim_start_matches("backup/")
        ),
        storage,
        volname,
        volid,
    };
    if call.param("delay").is_none() {
        let duration = call.state.config.task_duration;
        let upid =
            call.spawn_logged_task("imgdel", &id, duration, move |cluster, injected, log| {
                injected?;
                target.remove(cluster, log)
            });
        return Ok(json!(upid));
    }
    // The simulator's deletions take far less than the 1 s `delay` can ask to wait.
    let (upid, fault) = call.start_task("imgdel", &id);
    let mut log = Vec::new();
    let result = match fault {
        Some(FaultKind::TaskStuck {}) => return Ok(json!(upid)),
        Some(FaultKind::TaskFail { message }) => Err(message),
        _ => target.remove(&mut call.cluster(), &mut log),
    };
    end_task(call.state, &upid, log, result.clone());
    match result {
        Ok(()) => Ok(Value::Null),
        Err(message) => Err(ApiError::internal(message)),
    }
}

fn is_storage_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && id.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// The backup a delete task removes.
struct Removal {
    node: String,
    storage: String,
    volname: String,
    volid: String,
    path: String,
}

impl Removal {
    /// `vdisk_free` of a backup: refused while protected; a missing file is only a warning.
    fn remove(&self, cluster: &mut Cluster, log: &mut Vec<String>) -> Result<(), String> {
        let visible = |b: &BackupVolume| {
            b.volid == self.volid && cluster.storage_visible(&self.storage, &b.node, &self.node)
        };
        match cluster.backups.iter().position(visible) {
            Some(index) if cluster.backups.get(index).is_some_and(|b| b.protected) => {
                return Err(format!(
                    "cannot remove protected volume '{}' on '{}'",
                    self.volname, self.storage
                ));
            }
            Some(index) => {
                cluster.backups.remove(index);
            }
            None => log.push(format!("WARN: disk image '{}' does not exist", self.path)),
        }
        log.push(format!("Removed volume '{}'", self.volid));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_parse_like_the_storage_plugins() {
        let parse = |plugin, name| parse_volname(plugin, name).map(|v| (v.vtype, v.owner));
        assert_eq!(
            parse("dir", "backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst"),
            Ok(("backup", Some(100)))
        );
        assert_eq!(parse("dir", "iso/debian.iso"), Ok(("iso", None)));
        assert_eq!(
            parse("dir", "backup/notes.txt"),
            Err("unable to parse directory volume name 'backup/notes.txt'".into())
        );
        assert_eq!(parse("lvmthin", "vm-101-disk-0"), Ok(("images", Some(101))));
        assert_eq!(
            parse("lvmthin", "backup/vzdump-qemu-100-x.vma"),
            Err("unable to parse lvm volume name 'backup/vzdump-qemu-100-x.vma'".into())
        );
        assert_eq!(
            parse("rbd", "base-9000-disk-0/vm-102-disk-0"),
            Ok(("images", Some(102)))
        );
    }
}
