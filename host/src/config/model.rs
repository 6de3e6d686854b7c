//! The configuration file's shape, exactly as an operator writes it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use super::secret::SecretSource;

/// The whole `porthole.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// The URL customers type, e.g. `https://panel.example.com`. WebSocket Origin checks and the
    /// cookie's `Secure` flag follow from it.
    pub public_url: Url,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Empty: the peer address is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    /// SQLite database file; created and migrated at start.
    pub database: PathBuf,
    /// 32-byte key that encrypts secrets at rest in the database.
    pub data_key: DataKeySource,
    /// The Proxmox VE clusters this daemon drives.
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    #[serde(default)]
    pub plans: Vec<PlanConfig>,
    #[serde(default)]
    pub templates: Vec<TemplateConfig>,
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

/// Where the data key comes from: exactly one of `file` or `env`, holding 64 hex digits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataKeySource {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
}

/// One Proxmox VE cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Short unique name used in plans, templates and logs; never shown to customers.
    pub name: String,
    /// One or more API endpoints of the same cluster, e.g. `https://pve1.lan:8006`.
    pub api_urls: Vec<Url>,
    /// API token id, `USER@REALM!TOKENID`.
    pub token_id: String,
    pub token_secret: SecretSource,
    pub tls: TlsTrustConfig,
}

/// How the cluster's certificate is trusted: a CA file or a pinned SHA-256 fingerprint. There is
/// deliberately no way to skip verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsTrustConfig {
    pub ca_file: Option<PathBuf>,
    /// `AB:CD:…` as `pvenode cert info` prints it; a list when the API URLs name several nodes,
    /// each with its own certificate.
    pub fingerprint: Option<Fingerprints>,
}

/// One pinned fingerprint or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Fingerprints {
    One(String),
    Many(Vec<String>),
}

impl Fingerprints {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Fingerprints::One(one) => std::slice::from_ref(one),
            Fingerprints::Many(many) => many,
        }
    }
}

/// What a customer buys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub name: String,
    pub cores: u16,
    pub memory_mib: u32,
    pub disk_gib: u32,
    /// Names of the templates an order for this plan may use.
    pub templates: Vec<String>,
    /// Nodes this plan may be placed on; empty means any node of the template's cluster.
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// A Proxmox template VM that orders are cloned from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub name: String,
    pub cluster: String,
    pub node: String,
    pub vmid: u32,
    /// Operating system family, passed to the cloud-init template plugin.
    pub os: String,
    /// Name of the cloud-init template plugin that renders this template's user-data.
    pub cloud_init: String,
}

/// An untrusted WebAssembly plugin and everything it is allowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    /// The component file (`.wasm`).
    pub path: PathBuf,
    /// Expected SHA-256 of the file, 64 hex digits; a mismatch refuses the plugin.
    pub sha256: String,
    pub world: PluginWorld,
    /// Origins the plugin may call over `wasi:http`, e.g. `https://api.cloudflare.com`.
    #[serde(default)]
    pub allowed_hosts: Vec<Url>,
    #[serde(default)]
    pub limits: PluginLimits,
    /// The plugin's own settings; it can read these and nothing else of ours.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingValue>,
}

/// The WIT world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginWorld {
    CloudInitTemplate,
    DnsProvider,
    TunnelProvider,
    BillingAdapter,
}

/// Resource limits for one plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    pub memory_mib: u32,
    pub timeout_ms: u64,
    pub max_http_requests: u32,
    pub kv_quota_kib: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_mib: 64,
            timeout_ms: 5_000,
            max_http_requests: 16,
            kv_quota_kib: 1024,
        }
    }
}

/// A plugin setting: plain text, or a secret read from a file or the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    Text(String),
    Secret(SecretSource),
}
