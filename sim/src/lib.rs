//! `porthole-sim`: an in-memory Proxmox VE cluster that answers the PVE API over HTTPS the way
//! pveproxy does — same paths, same parameter validation (from PVE's own schema), same auth
//! rules and error shapes, asynchronous tasks with real UPIDs — plus a separate plain-HTTP
//! control API to inspect requests, inject faults and seed VMs.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = porthole_sim::Simulator::start(porthole_sim::SimConfig::default()).await?;
//! println!("{} pinned by {}", sim.api_url(), sim.cert_fingerprint_sha256());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod cert;
mod cloudflare;
mod cluster;
mod console;
mod control;
mod endpoints;
mod error;
mod faults;
pub mod rfb_client;
mod schema;
mod server;
mod state;
mod tasks;

pub use auth::AuthKind;
pub use cloudflare::{CloudflareDnsRecord, CloudflareTunnel};
pub use cluster::VmSeed;
pub use console::VncPasswordMode;
pub use error::ApiError;
pub use faults::{Fault, FaultKind, Times, TimesName};
pub use state::RecordedRequest;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to run the simulator. `Default` gives a two-node cluster with a template on each node.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: Vec<String>,
    /// Nodes that are part of the cluster but unreachable (calls proxied to them fail with 595).
    pub offline_nodes: Vec<String>,
    /// pveproxy delays every 401 answer by 3 s to slow down password guessing.
    pub auth_failure_delay: Duration,
    pub task_duration: Duration,
    /// Duration of a full clone (linked clones take `task_duration`).
    pub clone_duration: Duration,
    /// How long vzdump takes to back up one VM; the VM carries `lock: backup` meanwhile.
    pub backup_duration: Duration,
    /// How long a restore (`POST /nodes/{node}/qemu` with `archive`) takes.
    pub restore_duration: Duration,
    pub ticket_lifetime: Duration,
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub api_port: u16,
    pub control_port: u16,
    /// Seed the default templates (9000 on the first node, 9001 on the second, …).
    pub templates: bool,
    /// Extra VMs.
    pub vms: Vec<VmSeed>,
    /// Whether `vncproxy` returns a VNC `password` (qemu-server ≥ 9.1.7) or only the ticket.
    pub vnc_password: VncPasswordMode,
    /// A console proxy accepts its one connection this long after `vncproxy`/`termproxy` (10 s),
    /// on the simulator's clock.
    pub console_connect_window: Duration,
    /// A VNC ticket is valid this long (PVE: 40 s), on the simulator's clock.
    pub console_ticket_lifetime: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: vec!["pve1".into(), "pve2".into()],
            offline_nodes: Vec::new(),
            auth_failure_delay: Duration::from_secs(3),
            task_duration: Duration::from_millis(300),
            clone_duration: Duration::from_millis(1500),
            backup_duration: Duration::from_millis(1500),
            restore_duration: Duration::from_millis(1500),
            ticket_lifetime: Duration::from_secs(2 * 3600),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            api_port: 0,
            control_port: 0,
            templates: true,
            vms: Vec::new(),
            vnc_password: VncPasswordMode::default(),
            console_connect_window: Duration::from_secs(10),
            console_ticket_lifetime: Duration::from_secs(40),
        }
    }
}

pub struct Simulator;

impl Simulator {
    /// Builds the cluster, binds both listeners and starts serving.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        let state = Arc::new(state::SimState::new(config)?);
        let tls = cert::SelfSigned::generate()?;
        state.consoles.set_cert_pem(tls.cert_pem.clone());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let api_listener =
            tokio::net::TcpListener::bind((state.config.bind, state.config.api_port)).await?;
        let control_listener =
            tokio::net::TcpListener::bind((state.config.bind, state.config.control_port)).await?;
        let api_addr = api_listener.local_addr()?;
        let control_addr = control_listener.local_addr()?;
        // Cloudflare's API on its own port: plugins get it as their `api_base`.
        let cloudflare = Arc::new(cloudflare::CloudflareState::new());
        let cloudflare_listener = tokio::net::TcpListener::bind((state.config.bind, 0)).await?;
        let cloudflare_addr = cloudflare_listener.local_addr()?;
        let tasks = vec![
            tokio::spawn(cloudflare::serve(
                cloudflare_listener,
                tls.acceptor.clone(),
                cloudflare.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(server::serve(
                api_listener,
                tls.acceptor.clone(),
                state.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(control::serve(control_listener, state.clone(), shutdown_rx)),
        ];
        tracing::info!(%api_addr, %control_addr, "porthole-sim listening");
        Ok(SimHandle {
            inner: Arc::new(HandleInner {
                state,
                api_addr,
                control_addr,
                cloudflare,
                cloudflare_addr,
                cert_pem: tls.cert_pem,
                fingerprint: tls.fingerprint,
                shutdown: shutdown_tx,
                tasks: Mutex::new(tasks),
            }),
        })
    }
}

/// A running simulator. Cheap to clone; `shutdown` stops it for every clone.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    state: Arc<state::SimState>,
    api_addr: SocketAddr,
    control_addr: SocketAddr,
    cloudflare: Arc<cloudflare::CloudflareState>,
    cloudflare_addr: SocketAddr,
    cert_pem: String,
    fingerprint: String,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl SimHandle {
    /// `https://127.0.0.1:PORT/`; clients append `api2/json/…`.
    pub fn api_url(&self) -> url::Url {
        base_url("https", self.inner.api_addr)
    }

    /// `http://127.0.0.1:PORT/` of the control API.
    pub fn control_url(&self) -> url::Url {
        base_url("http", self.inner.control_addr)
    }

    pub fn cert_pem(&self) -> String {
        self.inner.cert_pem.clone()
    }

    /// `AB:CD:…`, as `openssl x509 -fingerprint -sha256` and PVE's GUI show it.
    pub fn cert_fingerprint_sha256(&self) -> String {
        self.inner.fingerprint.clone()
    }

    /// `porthole@pve!daemon`.
    pub fn token_id(&self) -> String {
        self.inner.state.accounts.token_id.clone()
    }

    pub fn token_secret(&self) -> String {
        self.inner.state.accounts.token_secret.clone()
    }

    /// The ticket-auth user, `porthole@pve`.
    pub fn user(&self) -> String {
        self.inner.state.accounts.user.clone()
    }

    pub fn password(&self) -> String {
        self.inner.state.accounts.password.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.state.requests()
    }

    pub fn clear_requests(&self) {
        self.inner.state.clear_requests();
    }

    /// Adds a fault. A `path` that is neither a valid regex nor a template matches nothing.
    pub fn inject(&self, fault: Fault) {
        if let Err(err) = self.inner.state.inject(fault) {
            tracing::warn!(%err, "fault path is not a valid regex; ignored");
        }
    }

    pub fn clear_faults(&self) {
        self.inner.state.clear_faults();
    }

    pub fn add_vm(&self, seed: VmSeed) -> anyhow::Result<()> {
        Ok(self.inner.state.add_vm(&seed)?)
    }

    pub fn vm_config(&self, node: &str, vmid: u32) -> Option<BTreeMap<String, String>> {
        self.inner.state.vm_config(node, vmid)
    }

    /// Edits one key of a VM's configuration behind the API's back (`None` removes it), as an
    /// operator working on the node would; false when there is no such VM.
    pub fn set_vm_config(&self, node: &str, vmid: u32, key: &str, value: Option<&str>) -> bool {
        self.inner.state.set_vm_config(node, vmid, key, value)
    }

    /// `"running"` or `"stopped"`.
    pub fn vm_status(&self, vmid: u32) -> Option<String> {
        self.inner.state.vm_status(vmid)
    }

    /// Whether the guest agent answers, and the passwords it set, as `GET /vms/{vmid}/agent`
    /// on the control API shows them.
    pub fn agent(&self, vmid: u32) -> Option<serde_json::Value> {
        self.inner.state.agent_json(vmid)
    }

    /// Starts or stops the guest agent inside a VM (it runs by default); false when there is no
    /// such VM.
    pub fn set_agent_up(&self, vmid: u32, up: bool) -> bool {
        self.inner.state.set_agent_up(vmid, up)
    }

    /// Moves the simulator's clock forward, e.g. to expire tickets without waiting two hours.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.state.advance_clock(by);
    }

    /// Live upstream console sessions (connected `vncwebsocket`s) of a VM.
    pub fn console_sessions(&self, vmid: u32) -> usize {
        self.inner.state.consoles.live_sessions(vmid)
    }

    /// Cuts a VM's live console sessions mid-stream, without a close frame, as when the node
    /// drops them. Returns how many were cut.
    pub fn drop_console_sessions(&self, vmid: u32) -> usize {
        self.inner.state.consoles.cut_sessions(vmid)
    }

    /// The lines of text on a VM's simulated console screen (trailing spaces trimmed), once a
    /// viewer has connected; lets tests check that typed keys arrived.
    pub fn console_screen_text(&self, vmid: u32) -> Option<Vec<String>> {
        self.inner.state.consoles.screen_text(vmid)
    }

    /// The whole cluster state as the control API's `GET /state` shows it.
    pub fn state_json(&self) -> serde_json::Value {
        self.inner.state.state_json()
    }

    pub async fn shutdown(self) {
        self.inner.shutdown.send_replace(true);
        self.inner.state.consoles.cut_all();
        let tasks = std::mem::take(&mut *state::lock(&self.inner.tasks));
        for task in tasks {
            let _ = task.await;
        }
    }
}

fn base_url(scheme: &str, addr: SocketAddr) -> url::Url {
    let text = format!("{scheme}://{addr}/");
    // A scheme and a socket address always form a valid URL.
    url::Url::parse(&text).unwrap_or_else(|err| unreachable!("{text} is not a URL: {err}"))
}
