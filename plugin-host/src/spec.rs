//! What the daemon tells the runtime about a plugin: plain data, mapped from the daemon's own
//! configuration, so the runtime depends on nothing of the daemon's.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

/// One configured plugin.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub world: PluginWorld,
    /// The component file (`.wasm`).
    pub path: PathBuf,
    /// Expected SHA-256 of the file, 64 hex digits; a mismatch refuses the plugin.
    pub sha256: String,
    /// Origins the plugin may call over `wasi:http`.
    pub allowed_hosts: Vec<Url>,
    /// Exact non-public addresses the plugin may connect to.
    pub allowed_addresses: Vec<IpAddr>,
    /// PEM file of CA certificates that replace the public roots for this plugin's HTTPS.
    pub ca_file: Option<PathBuf>,
    pub limits: PluginLimits,
    /// The plugin's own settings; it can read these and nothing else of ours.
    pub settings: BTreeMap<String, Secret>,
}

/// The WIT world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PluginWorld {
    CloudInitTemplate,
    DnsProvider,
    TunnelProvider,
    BillingAdapter,
}

/// Resource limits for one plugin call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    pub memory_mib: u32,
    pub timeout_ms: u64,
    pub max_http_requests: u32,
    pub kv_quota_kib: u32,
    /// Failed calls in a row that switch the plugin off (the runtime's default, 5, if unset).
    pub failures_to_trip: Option<u32>,
    /// How long a switched-off plugin stays off before a trial call (default 300 s).
    pub cool_down_secs: Option<u64>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_mib: 64,
            timeout_ms: 5_000,
            max_http_requests: 16,
            kv_quota_kib: 1024,
            failures_to_trip: None,
            cool_down_secs: None,
        }
    }
}

/// A secret string. `Debug` and `Display` redact it, so it cannot leak through a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}
