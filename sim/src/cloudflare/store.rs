//! The simulated account: one API token, one account, its zones, records and tunnels.

use super::time::now_rfc3339;
use crate::state::lock;
use serde_json::{Value, json};
use std::sync::Mutex;

/// A DNS record, as tests inspect it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudflareDnsRecord {
    pub id: String,
    /// Fully qualified, no trailing dot.
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT`, …
    pub kind: String,
    pub content: String,
    pub ttl: u32,
    pub proxied: bool,
}

/// A tunnel, as tests inspect it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudflareTunnel {
    pub id: String,
    pub name: String,
    pub deleted: bool,
    /// Connectors currently connected (tests add them with `cloudflare_connect_tunnel`).
    pub connections: u32,
    /// The last `configurations` PUT's `config` (with its `ingress` rules), if any.
    pub config: Option<Value>,
}

pub(super) struct Zone {
    pub id: String,
    pub name: String,
    pub records: Vec<Record>,
    pub created_on: String,
}

pub(super) struct Record {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub content: String,
    pub ttl: u32,
    pub proxied: bool,
    pub created_on: String,
    pub modified_on: String,
}

pub(super) struct Tunnel {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub deleted_at: Option<String>,
    pub config_src: String,
    /// Base64 of the 32-byte tunnel secret, part of the connector token.
    pub secret: String,
    pub connections: u32,
    pub config: Option<Value>,
    pub config_version: u32,
}

#[derive(Default)]
pub(super) struct Store {
    pub zones: Vec<Zone>,
    pub tunnels: Vec<Tunnel>,
}

/// The Cloudflare side of the simulator.
pub struct CloudflareState {
    pub(super) token: String,
    pub(super) account_id: String,
    pub(super) store: Mutex<Store>,
    requests: Mutex<Vec<String>>,
}

/// `n` random bytes as lowercase hex (Cloudflare's 32-character ids are 16 bytes).
pub(super) fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// A random version-4 UUID, as tunnel ids are.
pub(super) fn random_uuid() -> String {
    let hex = random_hex(16);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

impl CloudflareState {
    pub fn new() -> Self {
        Self {
            token: random_hex(20),
            account_id: random_hex(16),
            store: Mutex::new(Store::default()),
            requests: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub(super) fn record(&self, method: &str, path: &str) {
        lock(&self.requests).push(format!("{method} {path}"));
    }

    /// `"METHOD /client/v4/…"` of every request so far, authenticated or not.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.requests).clone()
    }

    /// The id of zone `name`, creating the zone if it does not exist yet.
    pub fn zone(&self, name: &str) -> String {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let mut store = self.store();
        if let Some(zone) = store.zones.iter().find(|z| z.name == name) {
            return zone.id.clone();
        }
        let id = random_hex(16);
        store.zones.push(Zone {
            id: id.clone(),
            name,
            records: Vec::new(),
            created_on: now_rfc3339(),
        });
        id
    }

    /// The records of zone `name` (empty for an unknown zone).
    pub fn dns_records(&self, zone_name: &str) -> Vec<CloudflareDnsRecord> {
        let zone_name = zone_name.trim_end_matches('.').to_ascii_lowercase();
        let store = self.store();
        let Some(zone) = store.zones.iter().find(|z| z.name == zone_name) else {
            return Vec::new();
        };
        zone.records
            .iter()
            .map(|r| CloudflareDnsRecord {
                id: r.id.clone(),
                name: r.name.clone(),
                kind: r.kind.clone(),
                content: r.content.clone(),
                ttl: r.ttl,
                proxied: r.proxied,
            })
            .collect()
    }

    /// Every tunnel, deleted ones included.
    pub fn tunnels(&self) -> Vec<CloudflareTunnel> {
        self.store()
            .tunnels
            .iter()
            .map(|t| CloudflareTunnel {
                id: t.id.clone(),
                name: t.name.clone(),
                deleted: t.deleted_at.is_some(),
                connections: t.connections,
                config: t.config.clone(),
            })
            .collect()
    }

    /// Simulates a connector connecting (as `cloudflared` in a VM would); `false` if there is no
    /// live tunnel `id`.
    pub fn connect_tunnel(&self, id: &str) -> bool {
        let mut store = self.store();
        match store
            .tunnels
            .iter_mut()
            .find(|t| t.id == id && t.deleted_at.is_none())
        {
            Some(tunnel) => {
                tunnel.connections += 1;
                true
            }
            None => false,
        }
    }
}

impl Default for CloudflareState {
    fn default() -> Self {
        Self::new()
    }
}

impl Zone {
    pub fn to_json(&self, account_id: &str) -> Value {
        json!({
            "id": self.id, "name": self.name, "status": "active", "paused": false,
            "type": "full", "development_mode": 0,
            "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
            "account": {"id": account_id, "name": "Porthole simulator"},
            "created_on": self.created_on, "modified_on": self.created_on,
        })
    }
}

impl Record {
    pub fn to_json(&self, zone: &Zone) -> Value {
        let proxiable = matches!(self.kind.as_str(), "A" | "AAAA" | "CNAME");
        json!({
            "id": self.id, "zone_id": zone.id, "zone_name": zone.name,
            "name": self.name, "type": self.kind, "content": self.content,
            "proxiable": proxiable, "proxied": self.proxied, "ttl": self.ttl,
            "locked": false, "meta": {"auto_added": false, "managed_by_apps": false,
            "managed_by_argo_tunnel": false}, "comment": null, "tags": [],
            "created_on": self.created_on, "modified_on": self.modified_on,
        })
    }
}

impl Tunnel {
    pub fn to_json(&self, account_id: &str) -> Value {
        let status = if self.connections > 0 {
            "healthy"
        } else {
            "inactive"
        };
        let connections: Vec<Value> = (0..self.connections)
            .map(|i| json!({"colo_name": "sim", "id": format!("{}-{i}", self.id), "is_pending_reconnect": false}))
            .collect();
        json!({
            "id": self.id, "account_tag": account_id, "name": self.name,
            "created_at": self.created_at, "deleted_at": self.deleted_at,
            "connections": connections, "conns_active_at": null, "conns_inactive_at": self.created_at,
            "tun_type": "cfd_tunnel", "metadata": {}, "status": status,
            "remote_config": self.config_src == "cloudflare", "config_src": self.config_src,
        })
    }
}
