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
    /// SQLite database file (created and migrated at start), or a `postgres://` URL.
    pub database: String,
    /// Where the daemon keeps files of its own (the plugin cache): by default the SQLite
    /// database's directory, or the configuration's with PostgreSQL.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How to reach a PostgreSQL `database`: password, TLS, pool.
    #[serde(default)]
    pub postgres: super::database::PostgresConfig,
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
    /// The built web panel to serve at `/`; defaults to the source tree's `panel-ui/dist`.
    #[serde(default)]
    pub ui_dir: Option<PathBuf>,
    /// The browser console relay; every key has a default.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// The job engine and what provisioning uses; every key has a default.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Billing webhooks (`/hooks/billing/{plugin}`); every key has a default.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// Sign-in policy; every key has a default.
    #[serde(default)]
    pub accounts: AccountsConfig,
    /// Where plugins run; every key has a default.
    #[serde(default)]
    pub plugin_isolation: PluginIsolationConfig,
    /// Serve HTTPS on `listen` with this certificate; without it, plain HTTP (behind a proxy).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// A second address serving only `/metrics`, without authentication (keep it private).
    /// Without it, `/metrics` is on `listen` for operators' sessions and API tokens.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// `text` for people, `json` (one object per line) for log shippers.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// The certificate the daemon serves (`[tls]`), PEM files, read again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (what `fullchain.pem` holds).
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where plugins run (`[plugin_isolation]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginIsolationConfig {
    pub mode: IsolationMode,
    /// The program started as `<runner> plugin-runner`: this executable unless set (a test
    /// harness or an unusual install names the `porthole` binary here).
    pub runner: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationMode {
    /// Each plugin in a locked-down process of its own; the daemon refuses to start where the
    /// kernel cannot lock one down.
    #[default]
    Process,
    /// In the daemon's process, sandboxed by wasmtime alone.
    InProcess,
}

/// Sign-in policy (`[accounts]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Whether operators must sign in with a second factor (TOTP or a passkey). `required`
    /// sends an operator who has none to enrol one before anything else.
    pub operator_mfa: MfaPolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    /// Anyone may add a second factor; nobody must.
    #[default]
    Optional,
    Required,
}

/// Billing webhooks (`[webhooks]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Deliveries one billing plugin handles at once; more are answered 429, which billing
    /// systems deliver again later. Keeps a flood from taking the plugin pool that
    /// provisioning's DNS, tunnel and cloud-init calls need.
    pub max_in_flight: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self { max_in_flight: 16 }
    }
}

/// The job engine (`[lifecycle]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Jobs run at once.
    pub workers: usize,
    /// A worker that dies loses its jobs to another after this long.
    pub lease_secs: u64,
    /// First retry delay of a failed step; doubles per attempt, with jitter.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Attempts of a step before a provision rolls back or a teardown waits for an operator.
    pub max_attempts: u32,
    /// How long one Proxmox task (a clone) may take.
    pub task_deadline_secs: u64,
    /// The tunnel-provider plugin that gives each VM its tunnel; none: no tunnels.
    pub tunnel_plugin: Option<String>,
    /// The dns-provider plugin that publishes the tunnel's records in `dns_zone`.
    pub dns_plugin: Option<String>,
    pub dns_zone: Option<String>,
    /// VMs are named `<hostname>.<domain>`; defaults to `dns_zone`.
    pub domain: Option<String>,
    /// What customers' SSH clients run to pass through the tunnel provider, shown in the
    /// panel's SSH command, e.g. `cloudflared access ssh --hostname %h` for Cloudflare.
    pub ssh_proxy_command: Option<String>,
    /// How rendered user-data reaches the VM.
    pub cloud_init: CloudInitDelivery,
    /// How often the reconciler compares services with the clusters; 0: only when asked.
    pub reconcile_secs: u64,
    /// The Proxmox storage (with `backup` content) that VMs' backups are written to; without
    /// it, no plan offers backups.
    pub backup_storage: Option<String>,
    /// How often plans' backup schedules are looked at (a due backup waits at most this long).
    pub backup_check_secs: u64,
    /// Address pools (`[[lifecycle.ip_pools]]`): each order draws one address of each family a
    /// pool serves for its VM; without pools, VMs use DHCP.
    pub ip_pools: Vec<IpPoolConfig>,
    /// How long a released address waits before it is handed out again.
    pub address_hold_secs: u64,
    /// The DNS servers (`address:port`) asked whether a customer's reverse-DNS name resolves
    /// back to their address; empty: the system's (`/etc/resolv.conf`).
    pub resolvers: Vec<std::net::SocketAddr>,
}

/// `[[lifecycle.ip_pools]]`: an IPv4 or IPv6 network of a cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpPoolConfig {
    pub name: String,
    pub cluster: String,
    /// The nodes whose VMs it serves; empty (the default): every node of the cluster.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// `192.0.2.0/24` or `2001:db8:1::/64`; its prefix goes into the VM's address.
    pub network: IpNet,
    pub gateway: std::net::IpAddr,
    /// `first-last` ranges handed out, in order; default: the whole network.
    #[serde(default)]
    pub ranges: Vec<String>,
    /// The reverse zone (`2.0.192.in-addr.arpa`) holding the PTR records of the pool's
    /// addresses, which customers may then set; none: no reverse DNS for this pool.
    #[serde(default)]
    pub reverse_zone: Option<String>,
    /// The dns-provider plugin (one that keeps reverse DNS) writing to `reverse_zone`;
    /// default: `lifecycle.dns_plugin`.
    #[serde(default)]
    pub reverse_dns_plugin: Option<String>,
}

/// `[lifecycle.cloud_init]`: `delivery = "nocloud"` (the daemon serves a per-VM seed, named in
/// the VM's `smbios1`) or `delivery = "snippets"` (a file in `dir`, which Proxmox mounts as the
/// `snippets` content of `storage`, named in the VM's `cicustom`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudInitDelivery {
    pub delivery: DeliveryKind,
    pub dir: Option<PathBuf>,
    pub storage: Option<String>,
    /// A NoCloud seed not yet fetched stops answering this long after its VM is first seen
    /// running: time enough to boot and run cloud-init, and no forgotten secret URL for ever.
    pub seed_window_secs: u64,
}

impl Default for CloudInitDelivery {
    fn default() -> Self {
        Self {
            delivery: DeliveryKind::Nocloud,
            dir: None,
            storage: None,
            seed_window_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    Nocloud,
    Snippets,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            lease_secs: 60,
            retry_initial_ms: 2_000,
            retry_max_ms: 300_000,
            max_attempts: 8,
            task_deadline_secs: 900,
            tunnel_plugin: None,
            dns_plugin: None,
            dns_zone: None,
            domain: None,
            ssh_proxy_command: None,
            cloud_init: CloudInitDelivery::default(),
            reconcile_secs: 300,
            backup_storage: None,
            backup_check_secs: 300,
            ip_pools: Vec::new(),
            address_hold_secs: 86_400,
            resolvers: Vec::new(),
        }
    }
}

/// Limits of the console relay (`[console]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// How long a console token may wait to be used; at most 30 s.
    pub token_ttl_secs: u64,
    /// A session with no bytes either way for this long is closed.
    pub idle_timeout_secs: u64,
    /// A session is closed at this age, busy or not.
    pub max_lifetime_secs: u64,
    /// Live sessions one user may have, on all the daemons sharing the database together.
    pub max_sessions_per_user: u32,
    /// Live sessions on all the daemons sharing the database together.
    pub max_sessions_total: u32,
    /// Interval of the WebSocket pings the relay sends on both legs of a session.
    pub keepalive_secs: u64,
    /// A browser that sends nothing, not even the answer to a ping, for this long after a ping
    /// is taken to be gone (a half-open connection) and its session is ended.
    pub pong_timeout_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            token_ttl_secs: 20,
            idle_timeout_secs: 15 * 60,
            max_lifetime_secs: 8 * 60 * 60,
            max_sessions_per_user: 8,
            max_sessions_total: 2000,
            keepalive_secs: 25,
            pong_timeout_secs: 20,
        }
    }
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
    /// Offered to no new order; the services on it keep it.
    #[serde(default)]
    pub retired: bool,
    /// How many snapshots a VM on the plan may keep at once; 0 (the default) offers none.
    #[serde(default)]
    pub max_snapshots: u32,
    /// How many backups of a VM are kept, the oldest removed first; 0 (the default) offers none.
    /// Backups go to `[lifecycle] backup_storage`.
    #[serde(default)]
    pub max_backups: u32,
    /// `none` (the default), `daily` or `weekly`: backups taken without being asked.
    #[serde(default)]
    pub backup_schedule: crate::lifecycle::catalogue::BackupSchedule,
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
    /// Exact non-public addresses (loopback, private, link-local, …) the plugin may connect to,
    /// e.g. a PowerDNS API on `10.0.0.53`. Without an entry here such addresses are refused even
    /// when an allowed host resolves to them.
    #[serde(default)]
    pub allowed_addresses: Vec<std::net::IpAddr>,
    /// How the plugin's outbound HTTPS is trusted; the public web roots by default.
    #[serde(default)]
    pub tls: PluginTlsConfig,
    #[serde(default)]
    pub limits: PluginLimits,
    /// The plugin's own settings; it can read these and nothing else of ours.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingValue>,
}

/// Trust for a plugin's outbound HTTPS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginTlsConfig {
    /// PEM file of CA certificates that replace the public roots for this plugin only, e.g. a
    /// private CA in front of a self-hosted DNS API.
    pub ca_file: Option<PathBuf>,
}

pub use porthole_plugin_host::{PluginLimits, PluginWorld};

/// A plugin setting: plain text, or a secret read from a file or the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    Text(String),
    Secret(SecretSource),
}
