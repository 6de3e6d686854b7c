//! Response types of the calls the daemon makes. Only the fields the daemon reads are typed;
//! the rest of each object is kept in `extra`.
//!
//! pveproxy serializes Perl values, so numbers and booleans sometimes arrive as strings or as
//! `0`/`1` (e.g. `template: 1`, `/cluster/nextid` returning `"100"`); the lenient helpers below
//! accept all of those forms.

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::upid::Upid;

/// `GET /version`.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionInfo {
    /// Full pve-manager version, e.g. `8.3.2`.
    pub version: String,
    /// Point release, e.g. `8.3`.
    pub release: String,
    #[serde(default)]
    pub repoid: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `type` filter of `GET /cluster/resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Vm,
    Storage,
    Node,
    Sdn,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vm => "vm",
            Self::Storage => "storage",
            Self::Node => "node",
            Self::Sdn => "sdn",
        }
    }
}

/// One entry of `GET /cluster/resources`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterResource {
    /// e.g. `qemu/100`, `node/pve1`, `storage/pve1/local`.
    pub id: String,
    /// `qemu`, `lxc`, `node`, `storage`, `pool`, `sdn`, …
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub vmid: Option<u32>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub template: Option<bool>,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub storage: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub maxcpu: Option<f64>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    pub node: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub maxcpu: Option<f64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub mem: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub uptime: Option<u64>,
    /// SHA-256 fingerprint of the node's certificate, `AB:CD:…`.
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A VM's power state as Proxmox reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmPowerState {
    Running,
    Stopped,
    /// Anything newer versions may add.
    #[serde(other)]
    Unknown,
}

impl VmPowerState {
    /// The state a `status` field of Proxmox's answers names (`running`, `stopped`, …).
    pub fn from_status(status: &str) -> Self {
        match status {
            "running" => Self::Running,
            "stopped" => Self::Stopped,
            _ => Self::Unknown,
        }
    }
}

/// `GET /nodes/{node}/qemu/{vmid}/status/current`.
#[derive(Debug, Clone, Deserialize)]
pub struct VmStatus {
    #[serde(deserialize_with = "required_u32")]
    pub vmid: u32,
    pub status: VmPowerState,
    /// QEMU's own view, e.g. `running`, `paused`, `prelaunch`.
    #[serde(default)]
    pub qmpstatus: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Config lock held by a running operation (`clone`, `backup`, `migrate`, …).
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub uptime: Option<u64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub cpus: Option<f64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxmem: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub maxdisk: Option<u64>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub template: Option<bool>,
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `GET /nodes/{node}/qemu/{vmid}/config`: the VM's configuration as key → value text, the way
/// Proxmox stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// SHA-1 of the config file; pass it back in an update to refuse concurrent changes.
    pub digest: Option<String>,
    pub values: BTreeMap<String, String>,
}

impl VmConfig {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The storages the VM's volumes live on, without duplicates: disks, EFI and TPM state, the
    /// cloud-init drive and an ISO in a CD-ROM drive, which qemu-server's clone check counts
    /// alike. An empty drive (`none`) counts for nothing; the host's own drive (`cdrom`) and a
    /// volume given as a path count as storages named so, which no storage list calls shared.
    pub fn volume_storages(&self) -> Vec<String> {
        let mut storages: Vec<String> = self
            .values
            .iter()
            .filter(|(key, _)| is_volume_key(key))
            .filter_map(|(_, line)| {
                let volume = line.split(',').next()?;
                match volume.split_once(':') {
                    _ if volume == "none" => None,
                    Some((storage, _)) if !volume.starts_with('/') => Some(storage.to_owned()),
                    _ => Some(volume.to_owned()),
                }
            })
            .collect();
        storages.sort();
        storages.dedup();
        storages
    }

    /// The `sshkeys` value decoded from the percent-encoding Proxmox stores it in.
    pub fn sshkeys(&self) -> Option<String> {
        let raw = self.get("sshkeys")?;
        Some(percent_decode_str(raw).decode_utf8_lossy().into_owned())
    }

    pub(crate) fn from_json(data: BTreeMap<String, Value>) -> Self {
        let mut values: BTreeMap<String, String> = data
            .into_iter()
            .map(|(key, value)| (key, value_text(value)))
            .collect();
        let digest = values.remove("digest");
        Self { digest, values }
    }
}

/// `scsi0`, `virtio1`, `ide2`, `efidisk0`, …: keys whose value names a volume.
fn is_volume_key(key: &str) -> bool {
    let bus = key.trim_end_matches(|c: char| c.is_ascii_digit());
    bus.len() < key.len()
        && matches!(
            bus,
            "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate"
        )
}

fn value_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Bool(b) => if b { "1" } else { "0" }.to_owned(),
        other => other.to_string(),
    }
}

/// Whether a task is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Running,
    Stopped,
    #[serde(other)]
    Unknown,
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskStatus {
    pub upid: Upid,
    pub status: TaskState,
    /// Set once stopped: `OK`, or the failure text (e.g. `clone failed: …`).
    #[serde(default)]
    pub exitstatus: Option<String>,
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub starttime: Option<u64>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A task that ended with exit status `OK`.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    pub upid: Upid,
    pub exitstatus: String,
    /// How long [`super::Client::wait_task`] waited.
    pub waited: Duration,
}

fn lenient_number(value: Option<Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// One backup of `GET /nodes/{node}/storage/{storage}/content?content=backup`.
#[derive(Debug, Clone, Deserialize)]
pub struct BackupVolume {
    /// `storage:backup/vzdump-qemu-…`: the operator's to read, never a customer's.
    pub volid: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub size: Option<u64>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub ctime: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub vmid: Option<u32>,
    /// The first line of the backup's notes.
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub protected: Option<bool>,
}

/// One row of `GET …/rrddata`: averages (or maxima) over the row's step. Rows before the VM
/// existed, or while rrdcached had nothing, leave fields out.
#[derive(Debug, Clone, Deserialize)]
pub struct RrdRow {
    #[serde(deserialize_with = "lenient_u64_required")]
    pub time: u64,
    /// CPU use as a fraction of `maxcpu` cores.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub cpu: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub mem: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub maxmem: Option<f64>,
    /// Bytes per second.
    #[serde(default, deserialize_with = "lenient_f64")]
    pub netin: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub netout: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub diskread: Option<f64>,
    #[serde(default, deserialize_with = "lenient_f64")]
    pub diskwrite: Option<f64>,
}

/// The span `rrddata` covers: 70 rows of a minute, half an hour or three hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Timeframe {
    Hour,
    Day,
    Week,
}

impl Timeframe {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    /// Seconds between two of Proxmox's points at this timeframe: its RRD keeps a minute's
    /// average for the hour, half an hour's for the day, three hours' for the week.
    pub fn step_secs(self) -> u64 {
        match self {
            Self::Hour => 60,
            Self::Day => 30 * 60,
            Self::Week => 3 * 60 * 60,
        }
    }
}

fn lenient_u64_required<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    lenient_u64(d)?.ok_or_else(|| serde::de::Error::custom("a number"))
}

/// One entry of `GET …/snapshot`: a snapshot, or `current` (the running state, whose parent is
/// the newest snapshot).
#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Unix seconds; absent for `current`.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub snaptime: Option<u64>,
    #[serde(default)]
    pub parent: Option<String>,
    /// Whether the snapshot holds the VM's memory.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub vmstate: Option<bool>,
}

impl SnapshotInfo {
    /// The entry that stands for the VM as it is, not a snapshot.
    pub fn is_current(&self) -> bool {
        self.name == "current"
    }
}

/// One key of `GET …/pending`: its current value and what the next start of QEMU will set.
#[derive(Debug, Clone, Deserialize)]
pub struct PendingChange {
    pub key: String,
    /// Numbers may come as JSON numbers or strings, so values stay raw.
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub pending: Option<Value>,
    /// 1 (or 2, forced) when the key is to be deleted.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub delete: Option<u64>,
}

impl PendingChange {
    /// Whether a restart of the VM will change this key.
    pub fn waits_for_restart(&self) -> bool {
        self.pending.is_some() || self.delete.is_some_and(|d| d > 0)
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        // Truncation is intended: counters sometimes arrive as floats.
        other => lenient_number(other)
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64),
    })
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(lenient_u64(d)?.and_then(|n| u32::try_from(n).ok()))
}

fn required_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    lenient_u32(d)?.ok_or_else(|| serde::de::Error::custom("expected an unsigned integer"))
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(lenient_number(Option::<Value>::deserialize(d)?))
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(lenient_number(Option::<Value>::deserialize(d)?).map(|n| n != 0.0))
}

/// `/cluster/nextid` returns the VMID as a string on real PVE, as a number on some versions.
pub(crate) fn parse_vmid(value: &Value) -> Option<u32> {
    lenient_number(Some(value.clone()))
        .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= f64::from(u32::MAX))
        .map(|n| n as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn perl_style_numbers_and_booleans_are_accepted() {
        let r: ClusterResource = serde_json::from_value(json!({
            "id": "qemu/9000", "type": "qemu", "vmid": "9000", "template": 1,
            "maxmem": 2147483648u64, "maxcpu": 2, "node": "pve1", "uptime": 0
        }))
        .unwrap();
        assert_eq!(r.vmid, Some(9000));
        assert_eq!(r.template, Some(true));
        assert_eq!(r.maxcpu, Some(2.0));
        assert!(r.extra.contains_key("uptime"));
    }

    #[test]
    fn volume_storages_count_isos_and_host_drives_but_not_empty_ones() {
        let cfg = VmConfig::from_json(
            serde_json::from_value(json!({
                "scsi0": "ceph:base-9000-disk-0,size=8G",
                "efidisk0": "ceph:base-9000-disk-1,efitype=4m",
                "ide2": "local-lvm:vm-9000-cloudinit,media=cdrom",
                "ide0": "local:iso/debian-12.iso,media=cdrom",
                "ide1": "none,media=cdrom",
                "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
                "scsihw": "virtio-scsi-single"
            }))
            .unwrap(),
        );
        assert_eq!(cfg.volume_storages(), ["ceph", "local", "local-lvm"]);
        let host_drive = VmConfig::from_json(
            serde_json::from_value(json!({ "ide2": "cdrom,media=cdrom" })).unwrap(),
        );
        assert_eq!(host_drive.volume_storages(), ["cdrom"]);
    }

    #[test]
    fn vm_config_keeps_values_as_text_and_splits_off_digest() {
        let cfg = VmConfig::from_json(
            serde_json::from_value(json!({
                "cores": 2, "name": "web", "digest": "abc", "onboot": true,
                "sshkeys": "ssh-ed25519%20AAAA%2B%2F%3D%20me%40host"
            }))
            .unwrap(),
        );
        assert_eq!(cfg.digest.as_deref(), Some("abc"));
        assert_eq!(cfg.get("cores"), Some("2"));
        assert_eq!(cfg.get("onboot"), Some("1"));
        assert_eq!(
            cfg.sshkeys().as_deref(),
            Some("ssh-ed25519 AAAA+/= me@host")
        );
    }

    #[test]
    fn unknown_power_state_does_not_fail_parsing() {
        let s: VmStatus =
            serde_json::from_value(json!({"vmid": 100, "status": "hibernating"})).unwrap();
        assert_eq!(s.status, VmPowerState::Unknown);
    }

    #[test]
    fn next_vmid_accepts_string_and_number() {
        assert_eq!(parse_vmid(&json!("100")), Some(100));
        assert_eq!(parse_vmid(&json!(101)), Some(101));
        assert_eq!(parse_vmid(&json!("x")), None);
        assert_eq!(parse_vmid(&json!(1.5)), None);
    }
}
