//! Typed calls. Each validates what it puts into the path or parameters, so a bad node name or
//! VMID is refused here instead of producing a strange URL.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;

use super::client::{ApiRequest, Client, Repeat};
use super::error::ProxmoxError;
use super::types::{
    BackupVolume, ClusterResource, NodeInfo, PendingChange, ResourceKind, RrdRow, SnapshotInfo,
    TaskStatus, Timeframe, VersionInfo, VmConfig, VmStatus, parse_vmid,
};
use super::update::{CloneRequest, VmConfigUpdate};
use super::upid::Upid;

type Result<T> = std::result::Result<T, ProxmoxError>;

const VMID_MIN: u32 = 100;
const VMID_MAX: u32 = 999_999_999;

/// A cluster node name as pveproxy's `pve-node` format accepts it.
pub(crate) fn is_node_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    let ends_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    !name.is_empty() && name.len() <= 63 && inner_ok && ends_ok
}

fn check_node(node: &str) -> std::result::Result<(), String> {
    if is_node_name(node) {
        Ok(())
    } else {
        Err(format!("{node:?} is not a node name"))
    }
}

fn check_vmid(vmid: u32) -> std::result::Result<(), String> {
    if (VMID_MIN..=VMID_MAX).contains(&vmid) {
        Ok(())
    } else {
        Err(format!("VMID {vmid} is outside {VMID_MIN}..={VMID_MAX}"))
    }
}

/// A snapshot name as `pve-configid` accepts it: a letter, then letters, digits, `_` or `-`,
/// at most 40 in all; `current` names the VM itself.
pub fn check_snapshot_name(name: &str) -> std::result::Result<(), String> {
    let shape = (2..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if shape && name != "current" {
        Ok(())
    } else {
        Err(format!(
            "snapshot name {name:?} must be 2-40 letters, digits, '_' or '-', starting with a \
             letter, and not \"current\""
        ))
    }
}

pub(super) fn check_vm(node: &str, vmid: u32) -> std::result::Result<(), String> {
    check_node(node).and(check_vmid(vmid))
}

/// Disk names the `resize` endpoint accepts: `scsi0`, `virtio1`, `efidisk0`, …
fn check_disk(disk: &str) -> std::result::Result<(), String> {
    const BUSES: [(&str, u32); 6] = [
        ("ide", 3),
        ("sata", 5),
        ("scsi", 30),
        ("virtio", 15),
        ("efidisk", 0),
        ("tpmstate", 0),
    ];
    let valid = BUSES
        .iter()
        .any(|(bus, max)| disk.strip_prefix(bus).is_some_and(|n| is_index(n, *max)));
    if valid {
        Ok(())
    } else {
        Err(format!("{disk:?} is not a resizable disk name"))
    }
}

/// A device index as Proxmox writes it: decimal, no leading zeros, at most `max`.
fn is_index(text: &str, max: u32) -> bool {
    let canonical = text == "0" || !text.starts_with('0');
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    canonical && digits && text.parse::<u32>().is_ok_and(|n| n <= max)
}

/// `\+?\d+(\.\d+)?[KMGT]?`, e.g. `32G` (absolute) or `+10G` (grow by).
fn check_size(size: &str) -> std::result::Result<(), String> {
    let number = size.strip_prefix('+').unwrap_or(size);
    let number = number.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(number);
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(whole) && fraction.is_none_or(digits) {
        Ok(())
    } else {
        Err(format!("{size:?} is not a disk size like 32G or +10G"))
    }
}

pub(super) fn vm_segments(node: &str, vmid: u32, tail: &[&str]) -> Vec<String> {
    let mut segments = vec![
        "nodes".to_owned(),
        node.to_owned(),
        "qemu".to_owned(),
        vmid.to_string(),
    ];
    segments.extend(tail.iter().map(|s| (*s).to_owned()));
    segments
}

fn repeat_if(safe: bool) -> Repeat {
    if safe { Repeat::Safe } else { Repeat::Unsafe }
}

impl Client {
    /// `GET /version`: also the cheapest way to check that credentials and trust work.
    pub async fn version(&self) -> Result<VersionInfo> {
        self.request(ApiRequest::new(Method::GET, ["version"]))
            .await
    }

    /// `GET /cluster/resources`, optionally filtered by kind.
    pub async fn cluster_resources(
        &self,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<ClusterResource>> {
        let mut request = ApiRequest::new(Method::GET, ["cluster", "resources"]);
        if let Some(kind) = kind {
            request = request.param("type", kind.as_str());
        }
        self.request(request).await
    }

    /// `GET /cluster/nextid`: a VMID free *now*. Another client may take it before the clone;
    /// the clone then fails and the caller picks again.
    pub async fn next_vmid(&self) -> Result<u32> {
        let request = ApiRequest::new(Method::GET, ["cluster", "nextid"]);
        let ctx = self.context("GET cluster/nextid".to_owned());
        let value: Value = self.request(request).await?;
        parse_vmid(&value).ok_or_else(|| ctx.invalid_response(format!("not a VMID: {value}")))
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.request(ApiRequest::new(Method::GET, ["nodes"])).await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/status/current`.
    pub async fn vm_status(&self, node: &str, vmid: u32) -> Result<VmStatus> {
        let segments = vm_segments(node, vmid, &["status", "current"]);
        let request = ApiRequest::new(Method::GET, segments).check(check_vm(node, vmid));
        self.request(request).await
    }

    /// `GET /nodes/{node}/qemu/{vmid}/config` (the pending changes applied).
    pub async fn vm_config(&self, node: &str, vmid: u32) -> Result<VmConfig> {
        let segments = vm_segments(node, vmid, &["config"]);
        let request = ApiRequest::new(Method::GET, segments).check(check_vm(node, vmid));
        let data: BTreeMap<String, Value> = self.request(request).await?;
        Ok(VmConfig::from_json(data))
    }

    /// `GET /nodes/{node}/qemu/{vmid}/pending`: every key, with the value a restart will set
    /// where that differs.
    pub async fn vm_pending(&self, node: &str, vmid: u32) -> Result<Vec<PendingChange>> {
        let segments = vm_segments(node, vmid, &["pending"]);
        let request = ApiRequest::new(Method::GET, segments).check(check_vm(node, vmid));
        self.request(request).await
    }

    /// `POST /nodes/{node}/qemu/{vmid}/config`: applies the update in a task (needed for
    /// changes that touch disks); wait for the returned task.
    pub async fn update_vm_config_async(
        &self,
        node: &str,
        vmid: u32,
        update: &VmConfigUpdate,
    ) -> Result<Upid> {
        let request = config_request(Method::POST, node, vmid, update);
        self.request(request).await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/config`: applies the update before answering.
    pub async fn update_vm_config(
        &self,
        node: &str,
        vmid: u32,
        update: &VmConfigUpdate,
    ) -> Result<()> {
        let request = config_request(Method::PUT, node, vmid, update);
        self.request(request).await
    }

    /// `POST /nodes/{node}/qemu/{template_vmid}/clone`. Never repeated once it may have reached
    /// Proxmox: a duplicate would create a second VM.
    pub async fn clone_vm(
        &self,
        node: &str,
        template_vmid: u32,
        clone: &CloneRequest,
    ) -> Result<Upid> {
        let target_ok = clone.target.as_deref().map_or(Ok(()), check_node);
        let request = ApiRequest::new(Method::POST, vm_segments(node, template_vmid, &["clone"]))
            .params(clone.to_params())
            .check(check_vm(node, template_vmid))
            .check(check_vmid(clone.newid))
            .check(target_ok);
        self.request(request).await
    }

    /// `PUT /nodes/{node}/qemu/{vmid}/resize`: `size` is absolute (`32G`) or relative (`+10G`).
    pub async fn resize_disk(&self, node: &str, vmid: u32, disk: &str, size: &str) -> Result<Upid> {
        let request = ApiRequest::new(Method::PUT, vm_segments(node, vmid, &["resize"]))
            .param("disk", disk)
            .param("size", size)
            // Growing *to* a size twice is harmless; growing *by* a size twice is not.
            .repeat(repeat_if(!size.starts_with('+')))
            .check(check_vm(node, vmid))
            .check(check_disk(disk))
            .check(check_size(size));
        self.request(request).await
    }

    /// `POST …/status/start`.
    pub async fn start_vm(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.power(node, vmid, "start", Repeat::Unsafe).await
    }

    /// `POST …/status/stop`: immediate power-off. Safe to repeat: stopping a stopped VM is a
    /// no-op, and this is the call suspension relies on.
    pub async fn stop_vm(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.power(node, vmid, "stop", Repeat::Safe).await
    }

    /// `POST …/status/shutdown`: ACPI shutdown request to the guest.
    pub async fn shutdown_vm(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.power(node, vmid, "shutdown", Repeat::Unsafe).await
    }

    /// `POST …/status/reboot`.
    pub async fn reboot_vm(&self, node: &str, vmid: u32) -> Result<Upid> {
        self.power(node, vmid, "reboot", Repeat::Unsafe).await
    }

    async fn power(&self, node: &str, vmid: u32, action: &str, repeat: Repeat) -> Result<Upid> {
        let request = ApiRequest::new(Method::POST, vm_segments(node, vmid, &["status", action]))
            .repeat(repeat)
            .check(check_vm(node, vmid));
        self.request(request).await
    }

    /// `DELETE /nodes/{node}/qemu/{vmid}` with `purge=1` (drop it from backup jobs, replication
    /// and HA) and `destroy-unreferenced-disks=1`: the daemon never wants leftovers.
    pub async fn delete_vm(&self, node: &str, vmid: u32) -> Result<Upid> {
        let request = ApiRequest::new(Method::DELETE, vm_segments(node, vmid, &[]))
            .param("purge", "1")
            .param("destroy-unreferenced-disks", "1")
            .check(check_vm(node, vmid));
        self.request(request).await
    }

    /// `POST /nodes/{node}/vzdump` of one VM to `storage` (snapshot mode, zstd), with `notes`.
    /// Not repeated: a second call would take a second backup.
    pub async fn vzdump(&self, node: &str, vmid: u32, storage: &str, notes: &str) -> Result<Upid> {
        let request = ApiRequest::new(Method::POST, ["nodes", node, "vzdump"])
            .param("vmid", vmid.to_string())
            .param("storage", storage)
            .param("mode", "snapshot")
            .param("compress", "zstd")
            .param("notes-template", notes)
            .check(check_vm(node, vmid));
        self.request(request).await
    }

    /// The backups on `storage` as `node` sees it.
    pub async fn backups(&self, node: &str, storage: &str) -> Result<Vec<BackupVolume>> {
        let request = ApiRequest::new(Method::GET, ["nodes", node, "storage", storage, "content"])
            .param("content", "backup")
            .check(check_node(node));
        self.request(request).await
    }

    /// `DELETE /nodes/{node}/storage/{storage}/content/{volid}`: a task since PVE 8.
    pub async fn delete_volume(&self, node: &str, storage: &str, volid: &str) -> Result<Upid> {
        let segments = ["nodes", node, "storage", storage, "content", volid];
        let request = ApiRequest::new(Method::DELETE, segments).check(check_node(node));
        self.request(request).await
    }

    /// `POST /nodes/{node}/qemu` with `archive` and `force=1`: the backup replaces the VM (which
    /// must be stopped) under the same id; `start` runs it afterwards.
    pub async fn restore_vm(
        &self,
        node: &str,
        vmid: u32,
        archive: &str,
        start: bool,
    ) -> Result<Upid> {
        let request = ApiRequest::new(Method::POST, ["nodes", node, "qemu"])
            .param("vmid", vmid.to_string())
            .param("archive", archive)
            .param("force", "1")
            .param("start", if start { "1" } else { "0" })
            .check(check_vm(node, vmid));
        self.request(request).await
    }

    /// `GET …/rrddata`: the VM's averages over `timeframe`.
    pub async fn rrddata(
        &self,
        node: &str,
        vmid: u32,
        timeframe: Timeframe,
    ) -> Result<Vec<RrdRow>> {
        let request = ApiRequest::new(Method::GET, vm_segments(node, vmid, &["rrddata"]))
            .param("timeframe", timeframe.as_str())
            .param("cf", "AVERAGE")
            .check(check_vm(node, vmid));
        self.request(request).await
    }

    /// `GET …/snapshot`: the VM's snapshots and the `current` entry.
    pub async fn snapshots(&self, node: &str, vmid: u32) -> Result<Vec<SnapshotInfo>> {
        let request = ApiRequest::new(Method::GET, vm_segments(node, vmid, &["snapshot"]))
            .check(check_vm(node, vmid));
        self.request(request).await
    }

    /// `POST …/snapshot`, without the VM's memory. Not repeated: a second attempt would find
    /// the name taken by the first.
    pub async fn create_snapshot(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        description: &str,
    ) -> Result<Upid> {
        let request = ApiRequest::new(Method::POST, vm_segments(node, vmid, &["snapshot"]))
            .param("snapname", name)
            .param("description", description)
            .check(check_vm(node, vmid))
            .check(check_snapshot_name(name));
        self.request(request).await
    }

    /// `POST …/snapshot/{name}/rollback`; `start` runs the VM afterwards.
    pub async fn rollback_snapshot(
        &self,
        node: &str,
        vmid: u32,
        name: &str,
        start: bool,
    ) -> Result<Upid> {
        let segments = vm_segments(node, vmid, &["snapshot", name, "rollback"]);
        let request = ApiRequest::new(Method::POST, segments)
            .param("start", if start { "1" } else { "0" })
            .check(check_vm(node, vmid))
            .check(check_snapshot_name(name));
        self.request(request).await
    }

    /// `DELETE …/snapshot/{name}`.
    pub async fn delete_snapshot(&self, node: &str, vmid: u32, name: &str) -> Result<Upid> {
        let segments = vm_segments(node, vmid, &["snapshot", name]);
        let request = ApiRequest::new(Method::DELETE, segments)
            .check(check_vm(node, vmid))
            .check(check_snapshot_name(name));
        self.request(request).await
    }

    /// `POST …/agent/ping`: whether the guest agent answers.
    pub async fn agent_ping(&self, node: &str, vmid: u32) -> Result<()> {
        let request = ApiRequest::new(Method::POST, vm_segments(node, vmid, &["agent", "ping"]))
            .repeat(Repeat::Safe)
            .check(check_vm(node, vmid));
        self.request::<Value>(request).await.map(drop)
    }

    /// `POST …/agent/set-user-password` with a crypt(3) hash, so no plain password leaves the
    /// daemon. Setting the same hash twice is harmless.
    pub async fn agent_set_password_hash(
        &self,
        node: &str,
        vmid: u32,
        username: &str,
        crypt_hash: &str,
    ) -> Result<()> {
        let segments = vm_segments(node, vmid, &["agent", "set-user-password"]);
        let request = ApiRequest::new(Method::POST, segments)
            .param("username", username)
            .param("password", crypt_hash)
            .param("crypted", "1")
            .repeat(Repeat::Safe)
            .check(check_vm(node, vmid));
        self.request::<Value>(request).await.map(drop)
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`, asked of the node the task runs on.
    pub async fn task_status(&self, upid: &Upid) -> Result<TaskStatus> {
        let segments = ["nodes", upid.node(), "tasks", upid.as_str(), "status"];
        self.request(ApiRequest::new(Method::GET, segments)).await
    }
}

fn config_request(method: Method, node: &str, vmid: u32, update: &VmConfigUpdate) -> ApiRequest {
    let request = ApiRequest::new(method, vm_segments(node, vmid, &["config"]))
        .repeat(repeat_if(update.is_idempotent()))
        .check(check_vm(node, vmid));
    match update.to_params() {
        Ok(params) => request.params(params),
        Err(problem) => request.check(Err(problem)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_pve_node_format() {
        for good in ["pve1", "pve-2", "A", "node-01-x"] {
            assert!(is_node_name(good), "{good}");
        }
        for bad in [
            "",
            "-pve",
            "pve-",
            "pve/1",
            "..",
            "pve.example.com",
            "pve 1",
        ] {
            assert!(!is_node_name(bad), "{bad}");
        }
    }

    #[test]
    fn vmids_are_limited_to_pve_range() {
        assert!(check_vmid(100).is_ok());
        assert!(check_vmid(999_999_999).is_ok());
        assert!(check_vmid(99).is_err());
        assert!(check_vmid(1_000_000_000).is_err());
    }

    #[test]
    fn resize_accepts_schema_disks_and_sizes_only() {
        for good in [
            "scsi0",
            "scsi30",
            "virtio15",
            "ide3",
            "sata5",
            "efidisk0",
            "tpmstate0",
        ] {
            assert!(check_disk(good).is_ok(), "{good}");
        }
        for bad in [
            "scsi31", "ide4", "efidisk1", "scsi", "scsi01", "net0", "scsi0x",
        ] {
            assert!(check_disk(bad).is_err(), "{bad}");
        }
        for good in ["32G", "+10G", "1.5T", "1024", "+512M"] {
            assert!(check_size(good).is_ok(), "{good}");
        }
        for bad in ["", "G", "-1G", "10GB", "1.G", "++1G"] {
            assert!(check_size(bad).is_err(), "{bad}");
        }
    }
}
