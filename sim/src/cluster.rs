//! The cluster's state: nodes, storages and VMs with their configs, power state and locks.
//! Plain data and synchronous functions; callers hold the state mutex only around these calls.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::time::Instant;

/// A VM to create at start or through `SimHandle::add_vm` / `POST /vms` on the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VmSeed {
    pub node: String,
    pub vmid: u32,
    pub name: String,
    pub cores: u32,
    /// MiB, like PVE's `memory`.
    pub memory: u64,
    /// GiB of the `scsi0` disk.
    pub disk_gb: u64,
    /// The storage holding the VM's disks: `local-lvm`, or the shared `ceph`.
    pub storage: String,
    pub running: bool,
    pub template: bool,
    pub tags: Option<String>,
    pub description: Option<String>,
    /// `agent: 1` in the config: QEMU gets a guest agent channel, and the guest runs the agent.
    pub agent: bool,
    /// A real VNC server the VM's console fronts (`127.0.0.1:5901` or `unix:/path`), as QEMU
    /// started with `-vnc` would be; `None` draws the simulator's own text console.
    pub vnc_backend: Option<String>,
}

impl Default for VmSeed {
    fn default() -> Self {
        Self {
            node: "pve1".into(),
            vmid: 100,
            name: "vm".into(),
            cores: 1,
            memory: 2048,
            disk_gb: 8,
            storage: "local-lvm".into(),
            running: false,
            template: false,
            tags: None,
            description: None,
            agent: false,
            vnc_backend: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    pub online: bool,
    pub maxcpu: u32,
    /// Bytes.
    pub maxmem: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    pub storage: String,
    pub plugintype: String,
    pub content: String,
    pub shared: bool,
    /// Bytes.
    pub maxdisk: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    Running,
    Stopped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vm {
    pub vmid: u32,
    pub node: String,
    /// Config keys and values exactly as PVE's config file holds them. `parent` names the
    /// snapshot the current state descends from, as in PVE.
    pub config: BTreeMap<String, String>,
    /// Values set while the VM ran that QEMU cannot take live; they apply at the next start.
    pub pending: BTreeMap<String, String>,
    pub power: PowerState,
    /// The `[snapname]` sections of the config file.
    pub snapshots: BTreeMap<String, Snapshot>,
    #[serde(skip)]
    pub started_at: Option<Instant>,
    #[serde(skip)]
    pub vnc_backend: Option<String>,
    /// The guest side of the QEMU guest agent; read and steered through the control API.
    #[serde(skip)]
    pub agent: GuestAgent,
}

/// A snapshot section: the config as it was, plus PVE's snapshot metadata.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub config: BTreeMap<String, String>,
    /// Unix seconds.
    pub snaptime: u64,
    pub description: Option<String>,
    /// The snapshot includes the RAM (only ever true for a snapshot of a running VM).
    pub vmstate: bool,
    pub parent: Option<String>,
    /// `prepare` while it is being made, `delete` while it is being removed.
    pub snapstate: Option<String>,
}

/// What the simulated guest agent does: answer or not, and the passwords it was told to set.
#[derive(Debug, Clone)]
pub struct GuestAgent {
    /// The agent daemon inside the guest answers (when QEMU has an agent channel at all).
    pub up: bool,
    /// The last `set-user-password` per user: the password as sent and whether it was crypted.
    pub passwords: BTreeMap<String, (String, bool)>,
}

impl Default for GuestAgent {
    fn default() -> Self {
        Self {
            up: true,
            passwords: BTreeMap::new(),
        }
    }
}

/// A backup archive on a storage, as vzdump leaves it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupVolume {
    /// `local:backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst`.
    pub volid: String,
    pub storage: String,
    /// The node whose (non-shared) storage holds the file.
    pub node: String,
    pub vmid: u32,
    /// Unix seconds, the time in the file name.
    pub ctime: u64,
    /// Bytes.
    pub size: u64,
    /// `vma`, `vma.zst`, `vma.gz` or `vma.lzo`.
    pub format: String,
    pub notes: Option<String>,
    pub protected: bool,
    /// The VM's config as the archive's `qemu-server.conf` holds it. Left out of `/state`: a
    /// backup is not a VM, and tests look VMs up there by their config.
    #[serde(skip)]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub storages: Vec<Storage>,
    pub vms: BTreeMap<u32, Vm>,
    /// Backup archives. They outlive their VMs, as files on a storage do.
    pub backups: Vec<BackupVolume>,
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

impl Cluster {
    pub fn new(nodes: &[String], offline: &[String]) -> Self {
        let nodes = nodes
            .iter()
            .map(|name| Node {
                name: name.clone(),
                online: !offline.contains(name),
                maxcpu: 16,
                maxmem: 64 * GIB,
            })
            .collect();
        let storages = vec![
            Storage {
                storage: "local".into(),
                plugintype: "dir".into(),
                content: "iso,vztmpl,backup,snippets".into(),
                shared: false,
                maxdisk: 100 * GIB,
            },
            Storage {
                storage: "local-lvm".into(),
                plugintype: "lvmthin".into(),
                content: "images,rootdir".into(),
                shared: false,
                maxdisk: 1024 * GIB,
            },
            // Shared by every node, so a template on it can be cloned to any of them.
            Storage {
                storage: "ceph".into(),
                plugintype: "rbd".into(),
                content: "images,rootdir".into(),
                shared: true,
                maxdisk: 4096 * GIB,
            },
        ];
        Self {
            nodes,
            storages,
            vms: BTreeMap::new(),
            backups: Vec::new(),
        }
    }

    /// The default cloud-init templates: one per node, as a real cluster with local storage
    /// needs (a linked clone cannot cross nodes).
    pub fn default_templates(nodes: &[String]) -> Vec<VmSeed> {
        let names = ["debian-12-cloud", "ubuntu-24-04-cloud"];
        nodes
            .iter()
            .zip(9000..)
            .map(|(node, vmid)| VmSeed {
                node: node.clone(),
                vmid,
                name: names
                    .get((vmid - 9000) as usize)
                    .unwrap_or(&"cloud-template")
                    .to_string(),
                cores: 2,
                memory: 2048,
                disk_gb: 4,
                template: true,
                // Cloud images ship qemu-guest-agent, and templates made from them enable it.
                agent: true,
                ..VmSeed::default()
            })
            .collect()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn storage(&self, name: &str) -> Option<&Storage> {
        self.storages.iter().find(|s| s.storage == name)
    }

    pub fn add(&mut self, seed: &VmSeed) -> Result<(), ApiError> {
        if self.node(&seed.node).is_none() {
            return Err(ApiError::internal(format!(
                "no such cluster node '{}'",
                seed.node
            )));
        }
        if self.vms.contains_key(&seed.vmid) {
            return Err(ApiError::internal(format!(
                "VM {} already exists",
                seed.vmid
            )));
        }
        let mut vm = Vm::new(seed.vmid, &seed.node, seed_config(seed));
        if seed.running && !seed.template {
            vm.set_power(PowerState::Running);
        }
        vm.vnc_backend = seed.vnc_backend.clone();
        self.vms.insert(seed.vmid, vm);
        Ok(())
    }

    /// The VM `vmid` if it lives on `node`; PVE looks the config file up under the node's
    /// directory, so a VM on another node "does not exist" there.
    pub fn vm(&self, node: &str, vmid: u32) -> Result<&Vm, ApiError> {
        self.vms
            .get(&vmid)
            .filter(|vm| vm.node == node)
            .ok_or_else(|| ApiError::no_such_vm(node, vmid))
    }

    pub fn vm_mut(&mut self, node: &str, vmid: u32) -> Result<&mut Vm, ApiError> {
        self.vms
            .get_mut(&vmid)
            .filter(|vm| vm.node == node)
            .ok_or_else(|| ApiError::no_such_vm(node, vmid))
    }

    /// Whether `storage` is shared or lives on `node`: where a volume on it can be seen.
    pub fn storage_visible(&self, storage: &str, volume_node: &str, node: &str) -> bool {
        self.storage(storage).is_some_and(|s| s.shared) || volume_node == node
    }

    /// The lowest free VMID from 100, as PVE's default `next-id` range.
    pub fn next_free_vmid(&self) -> u32 {
        (100..).find(|id| !self.vms.contains_key(id)).unwrap_or(100)
    }
}

fn seed_config(seed: &VmSeed) -> BTreeMap<String, String> {
    let disk_prefix = if seed.template { "base" } else { "vm" };
    let mut config = BTreeMap::from([
        ("name".to_owned(), seed.name.clone()),
        ("cores".to_owned(), seed.cores.to_string()),
        ("memory".to_owned(), seed.memory.to_string()),
        ("sockets".to_owned(), "1".to_owned()),
        ("ostype".to_owned(), "l26".to_owned()),
        ("scsihw".to_owned(), "virtio-scsi-single".to_owned()),
        ("boot".to_owned(), "order=scsi0".to_owned()),
        (
            "scsi0".to_owned(),
            format!(
                "{}:{disk_prefix}-{}-disk-0,size={}G",
                seed.storage, seed.vmid, seed.disk_gb
            ),
        ),
        (
            "ide2".to_owned(),
            format!("{}:vm-{}-cloudinit,media=cdrom", seed.storage, seed.vmid),
        ),
        (
            "net0".to_owned(),
            format!("virtio={},bridge=vmbr0", random_mac()),
        ),
        ("smbios1".to_owned(), format!("uuid={}", random_uuid())),
        ("vmgenid".to_owned(), random_uuid()),
    ]);
    if seed.template {
        config.insert("template".into(), "1".into());
    }
    if let Some(tags) = &seed.tags {
        config.insert("tags".into(), tags.clone());
    }
    if let Some(description) = &seed.description {
        config.insert("description".into(), description.clone());
    }
    if seed.agent {
        config.insert("agent".into(), "1".into());
    }
    config
}

impl Vm {
    /// A stopped VM with this config, no snapshots and a guest agent that would answer.
    pub fn new(vmid: u32, node: &str, config: BTreeMap<String, String>) -> Self {
        Self {
            vmid,
            node: node.to_owned(),
            config,
            pending: BTreeMap::new(),
            power: PowerState::Stopped,
            snapshots: BTreeMap::new(),
            started_at: None,
            vnc_backend: None,
            agent: GuestAgent::default(),
        }
    }

    pub fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    /// PVE's `check_lock`: most operations refuse a VM with a `lock` in its config.
    pub fn check_unlocked(&self) -> Result<(), ApiError> {
        match self.lock() {
            Some(lock) => Err(ApiError::internal(format!(
                "VM {} is locked ({lock})",
                self.vmid
            ))),
            None => Ok(()),
        }
    }

    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|t| t == "1")
    }

    pub fn name(&self) -> String {
        self.config
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }

    /// PVE's digest is the SHA-1 of the config file (40 hex digits); the simulator hashes a
    /// canonical rendering of the config, which changes whenever any key does.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (key, value) in &self.config {
            hasher.update(format!("{key}: {value}\n"));
        }
        hex::encode(hasher.finalize())[..40].to_owned()
    }

    /// PVE answers a stale digest with this message from `assert_if_modified`.
    pub fn check_digest(&self, digest: Option<&String>) -> Result<(), ApiError> {
        match digest {
            Some(d) if *d != self.digest() => Err(ApiError::internal(
                "detected modified configuration - file changed by other user? Try again.",
            )),
            _ => Ok(()),
        }
    }

    pub fn cores(&self) -> u64 {
        let get = |k: &str| {
            self.config
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
        };
        get("cores") * get("sockets")
    }

    /// `memory` is a property string (`[current=]<MiB>`) in PVE 8.
    pub fn maxmem(&self) -> u64 {
        let memory = self
            .config
            .get("memory")
            .map(String::as_str)
            .unwrap_or("512");
        let current = memory.split(',').find_map(|p| match p.split_once('=') {
            Some(("current", v)) => Some(v),
            Some(_) => None,
            None => Some(p),
        });
        current.and_then(|m| m.parse::<u64>().ok()).unwrap_or(512) * MIB
    }

    /// Size of the boot disk, reported as `maxdisk`.
    pub fn maxdisk(&self) -> u64 {
        ["scsi0", "virtio0", "sata0", "ide0"]
            .iter()
            .find_map(|k| self.config.get(*k))
            .and_then(|disk| disk_size(disk))
            .unwrap_or(0)
    }

    pub fn uptime(&self) -> u64 {
        self.started_at.map(|t| t.elapsed().as_secs()).unwrap_or(0)
    }

    /// A start (or reboot: a new QEMU process) takes the pending values.
    pub fn set_power(&mut self, power: PowerState) {
        if power == PowerState::Running {
            let pending = std::mem::take(&mut self.pending);
            self.config.extend(pending);
        }
        self.power = power;
        self.started_at = (power == PowerState::Running).then(Instant::now);
    }
}

/// Keys a running VM cannot change without a restart, with PVE's default `hotplug`
/// (`network,disk,usb`): these become pending.
pub fn is_cold_key(key: &str) -> bool {
    matches!(
        key,
        "cores" | "sockets" | "memory" | "cpu" | "numa" | "machine" | "bios" | "smbios1" | "agent"
    )
}

pub fn is_disk_key(key: &str) -> bool {
    let bus = key.trim_end_matches(|c: char| c.is_ascii_digit());
    bus.len() < key.len()
        && matches!(
            bus,
            "scsi" | "virtio" | "sata" | "ide" | "efidisk" | "tpmstate"
        )
}

/// The `size=` of a drive property string, in bytes.
pub fn disk_size(drive: &str) -> Option<u64> {
    drive
        .split(',')
        .find_map(|p| p.strip_prefix("size="))
        .and_then(parse_size)
}

/// Parses `32G`, `512M`, `1.5T`, `1048576` (bytes) like PVE's `parse_size`.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let factor = match unit {
        'B' => 1u64,
        'K' => 1 << 10,
        'M' => MIB,
        'G' => GIB,
        'T' => 1 << 40,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    (value >= 0.0).then_some((value * factor as f64) as u64)
}

/// Renders a byte count like PVE's `format_size`: the largest unit that divides it evenly.
pub fn format_size(bytes: u64) -> String {
    for (unit, factor) in [("T", 1u64 << 40), ("G", GIB), ("M", MIB), ("K", 1 << 10)] {
        if bytes.is_multiple_of(factor) && bytes >= factor {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// Replaces (or adds) the `size=` of a drive property string.
pub fn with_size(drive: &str, bytes: u64) -> String {
    let mut parts: Vec<String> = drive
        .split(',')
        .filter(|p| !p.starts_with("size="))
        .map(str::to_owned)
        .collect();
    parts.push(format!("size={}", format_size(bytes)));
    parts.join(",")
}

/// Proxmox's own OUI, which PVE uses for generated MAC addresses.
pub fn random_mac() -> String {
    let bytes: [u8; 3] = rand::random();
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        bytes[0], bytes[1], bytes[2]
    )
}

pub fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}
