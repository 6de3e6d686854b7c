//! The lifecycle engine: orders and billing events become durable jobs that provision, suspend,
//! unsuspend, terminate and re-plan VMs, idempotently and without leaving anything orphaned.
//!
//! It owns the `jobs`, `job_events`, catalogue and `service_resources` tables. It drives Proxmox
//! through `proxmox` and tunnels, DNS and cloud-init through the plugin runtime's facades; it
//! never answers HTTP itself (the `api` module turns requests into [`Lifecycle`] calls).
//!
//! Invariants (DESIGN §1.5): an operation is keyed, so the same key twice is one job; every step
//! records what it created before the next starts; a provision that gives up removes what it
//! created, in reverse; a VM is only ever stopped or destroyed when it carries this service's
//! marker, so a reused VM id never costs someone else their VM.

pub mod access;
pub mod addresses;
pub mod adopt;
mod backoff;
pub mod backups;
mod billing;
pub mod catalogue;
pub mod control;
mod engine;
mod extras;
pub mod job;
mod orders;
mod placement;
pub mod power;
pub mod reconcile;
pub mod reverse_dns;
mod seed;
pub mod self_service;
pub mod steps;
mod vm;
mod worker_id;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use backoff::Backoff;
pub use billing::{Applied, WebhookOutcome};
pub use engine::Workers;
pub use orders::{Operation, OrderError, OrderReceipt, TakenHostname};
pub use reconcile::{Drift, DriftReport};

use url::Url;

use crate::config::{DataKey, LifecycleConfig};
use crate::console::ConsoleHub;
use crate::inventory::Inventory;
use crate::plugins::PluginRuntime;
use crate::proxmox::ProxmoxError;
use crate::store::{Store, StoreError};

/// What a customer ordered, carried by the provision job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSpec {
    pub plan: String,
    pub template: String,
    /// Short host name of the VM; also its Proxmox name.
    pub hostname: String,
    /// The user cloud-init creates.
    pub username: String,
    pub ssh_keys: Vec<String>,
    /// A crypt(3) hash, never a plain password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub workers: usize,
    /// How long a claimed job stays with its worker without a renewal.
    pub lease: Duration,
    pub backoff: Backoff,
    /// How long a Proxmox task (a clone) may run before the step counts as failed this attempt.
    pub task_deadline: Duration,
    /// How often idle workers look for due jobs (they are also woken when a job is queued).
    pub poll_interval: Duration,
    /// How often services are compared with the clusters; `None`: only when asked.
    pub reconcile_interval: Option<Duration>,
    /// How often plans' backup schedules are looked at.
    pub backup_check_interval: Duration,
}

impl Settings {
    pub fn from_config(config: &crate::config::LifecycleConfig) -> Self {
        Self {
            workers: config.workers,
            lease: Duration::from_secs(config.lease_secs),
            backoff: Backoff {
                initial: Duration::from_millis(config.retry_initial_ms),
                max: Duration::from_millis(config.retry_max_ms),
                max_attempts: config.max_attempts,
            },
            task_deadline: Duration::from_secs(config.task_deadline_secs),
            poll_interval: Duration::from_secs(1)
                .min(Duration::from_millis(config.retry_initial_ms)),
            reconcile_interval: (config.reconcile_secs > 0)
                .then(|| Duration::from_secs(config.reconcile_secs)),
            backup_check_interval: Duration::from_secs(config.backup_check_secs.max(1)),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            workers: 4,
            lease: Duration::from_secs(60),
            backoff: Backoff::default(),
            task_deadline: Duration::from_secs(15 * 60),
            poll_interval: Duration::from_secs(1),
            reconcile_interval: Some(Duration::from_secs(300)),
            backup_check_interval: Duration::from_secs(300),
        }
    }
}

/// The notice every daemon hears when a step of one of `service_id`'s jobs is recorded, so a
/// progress stream on any daemon reads it at once.
pub fn progress_notice(service_id: i64) -> String {
    format!("job-event {service_id}")
}

/// Handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

/// What the engine works with.
pub struct Parts {
    pub store: Store,
    pub inventory: Inventory,
    pub plugins: PluginRuntime,
    /// Suspension and termination close the service's live consoles through it.
    pub console: Arc<ConsoleHub>,
    pub settings: Settings,
    /// Which plugins provide tunnels and DNS, and how cloud-init is delivered.
    pub provisioning: LifecycleConfig,
    /// Where VMs fetch a NoCloud seed from.
    pub public_url: Url,
    /// Seals what the database keeps of rendered user-data (it may hold a tunnel token).
    pub data_key: DataKey,
}

struct Inner {
    store: Store,
    inventory: Inventory,
    plugins: PluginRuntime,
    console: Arc<ConsoleHub>,
    settings: Settings,
    provisioning: LifecycleConfig,
    public_url: Url,
    data_key: DataKey,
    wake: Notify,
    /// Queues this daemon's submissions one at a time (see [`Lifecycle::submit`]).
    submissions: tokio::sync::Mutex<()>,
    /// Set when the daemon stops, so long-lived progress streams end with it.
    closing: tokio::sync::watch::Sender<bool>,
    /// The reconciler's last report.
    drift: reconcile::LastReport,
    /// The address pools of `provisioning.ip_pools`, parsed.
    pools: Vec<addresses::Pool>,
}

impl Lifecycle {
    pub fn new(parts: Parts) -> Self {
        let Parts {
            store,
            inventory,
            plugins,
            console,
            settings,
            provisioning,
            public_url,
            data_key,
        } = parts;
        // The configuration was checked when it was loaded, so every pool parses.
        let pools = provisioning
            .ip_pools
            .iter()
            .filter_map(|pool| {
                addresses::Pool::from_config(pool, provisioning.dns_plugin.as_deref()).ok()
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                pools,
                store,
                inventory,
                plugins,
                console,
                settings,
                provisioning,
                public_url,
                data_key,
                wake: Notify::new(),
                submissions: tokio::sync::Mutex::new(()),
                closing: tokio::sync::watch::Sender::new(false),
                drift: tokio::sync::watch::Sender::new(None),
            }),
        }
    }

    /// Resolves when the daemon is stopping.
    pub async fn closing(&self) {
        let mut closing = self.inner.closing.subscribe();
        let _ = closing.wait_for(|&closed| closed).await;
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The address pools and how much of each is in use.
    pub async fn pool_use(&self) -> Result<Vec<addresses::PoolUse>, StoreError> {
        addresses::pool_use(&self.inner.store, &self.inner.pools, self.address_hold()).await
    }

    /// A VM's name: `<hostname>.<domain>` (`domain` defaults to `dns_zone`), or the bare
    /// hostname without either.
    pub(crate) fn fqdn(&self, hostname: &str) -> String {
        let config = &self.inner.provisioning;
        match config.domain.as_ref().or(config.dns_zone.as_ref()) {
            Some(domain) => format!("{hostname}.{domain}"),
            None => hostname.to_owned(),
        }
    }

    fn address_hold(&self) -> i64 {
        i64::try_from(self.inner.provisioning.address_hold_secs).unwrap_or(i64::MAX)
    }
}

/// Why a step did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    /// Worth another attempt later: a 5xx, a timeout, a lock, a task still running.
    #[error("{0}")]
    Transient(String),
    /// Another attempt would fail the same way.
    #[error("{0}")]
    Permanent(String),
    /// The worker's lease on the job ran out and another worker may hold it.
    #[error("the job's lease was lost")]
    LeaseLost,
}

impl From<ProxmoxError> for StepError {
    fn from(err: ProxmoxError) -> Self {
        if err.is_transient() {
            StepError::Transient(err.to_string())
        } else {
            StepError::Permanent(err.to_string())
        }
    }
}

impl From<StoreError> for StepError {
    fn from(err: StoreError) -> Self {
        StepError::Transient(err.to_string())
    }
}
