//! The runtime's public data: plain serde types in and out of every plugin call, so the runtime
//! can move into a child process without changing its callers.
//!
//! These mirror the WIT types in `wit/porthole.wit`; `convert` maps between them.

use serde::{Deserialize, Serialize};

/// What kind of failure a plugin reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    InvalidInput,
    NotFound,
    Unauthorized,
    Conflict,
    RateLimited,
    Upstream,
    Internal,
}

impl FailureKind {
    /// Whether the caller should try again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Upstream)
    }
}

/// A failure the plugin itself reported (as opposed to a sandbox fault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFailure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSize {
    pub cores: u16,
    pub memory_mib: u32,
    pub disk_gib: u32,
}

/// The input of a cloud-init render.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderContext {
    pub hostname: String,
    pub fqdn: String,
    pub username: String,
    pub ssh_keys: Vec<String>,
    pub password_hash: Option<String>,
    pub tunnel_token: Option<String>,
    pub plan: PlanSize,
    pub os: String,
    pub extra: Vec<(String, String)>,
}

impl std::fmt::Debug for RenderContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderContext")
            .field("hostname", &self.hostname)
            .field("fqdn", &self.fqdn)
            .field("os", &self.os)
            .finish_non_exhaustive()
    }
}

/// Validated cloud-init documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedCloudInit {
    pub user_data: String,
    pub network_config: Option<String>,
    pub meta_data: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Txt,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub name: String,
    pub kind: RecordKind,
    pub content: String,
    pub ttl: u32,
    pub proxied: bool,
}

/// A PTR record: `name` (an address's reverse name) points back to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtrRecord {
    pub name: String,
    pub target: String,
    pub ttl: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub id: String,
    /// Named as in the WIT contract, which authors read.
    #[serde(rename = "entry")]
    pub record: DnsRecord,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSpec {
    pub idempotency_key: String,
    pub name: String,
    pub hostnames: Vec<String>,
    pub http_service: Option<String>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    pub id: String,
    /// Secret: goes to cloud-init and to the database encrypted, never to a log.
    pub connector_token: String,
    pub hostnames: Vec<String>,
    pub dns_records: Vec<DnsRecord>,
}

impl std::fmt::Debug for TunnelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelInfo")
            .field("id", &self.id)
            .field("connector_token", &"…")
            .field("hostnames", &self.hostnames)
            .field("dns_records", &self.dns_records)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub external_id: String,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub event_id: String,
    pub customer: Customer,
    pub plan: String,
    pub template: String,
    pub hostname: Option<String>,
    pub ssh_keys: Vec<String>,
    pub external_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRef {
    pub event_id: String,
    pub external_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    pub event_id: String,
    pub external_ref: String,
    pub plan: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BillingEvent {
    Activate(Order),
    Suspend(ServiceRef),
    Unsuspend(ServiceRef),
    Terminate(ServiceRef),
    ChangePlan(PlanChange),
}

impl BillingEvent {
    /// The billing system's event id, for deduplication.
    pub fn event_id(&self) -> &str {
        match self {
            Self::Activate(order) => &order.event_id,
            Self::Suspend(r) | Self::Unsuspend(r) | Self::Terminate(r) => &r.event_id,
            Self::ChangePlan(change) => &change.event_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    pub response: WebhookResponse,
    pub events: Vec<BillingEvent>,
}
