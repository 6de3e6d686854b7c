//! Proxmox VE API client.
//!
//! This module is the daemon's only way to talk to a Proxmox VE cluster's HTTP API
//! (`https://node:8006/api2/json/...`). It owns:
//!
//! - TLS trust towards the cluster ([`tls`]): a CA bundle, or pinned SHA-256 fingerprints of the
//!   nodes' self-signed certificates. There is deliberately no "skip verification" mode.
//! - Authentication: an API token header, or a ticket cookie plus CSRF token that it renews on its
//!   own. Secrets never appear in logs, `Debug` output or error messages.
//! - The request engine: endpoint failover, bounded retries of requests that are safe to repeat,
//!   and classification of pveproxy's answers into [`ProxmoxError`] variants callers can act on.
//! - Typed calls for the endpoints the daemon uses, and waiting for the tasks (UPIDs) they start.
//!
//! It never sees customers, plugins, billing or the store: callers pass node names, VMIDs and
//! settings in, and get Proxmox's answers out. Deciding *what* to do (which VM, when, and whether
//! a failure means "try later" or "give up") belongs to the lifecycle engine and the console relay.

mod api;
mod auth;
mod client;
mod console;
mod console_socket;
mod error;
mod task;
pub mod tls;
mod types;
mod update;
mod upid;
mod ws_upgrade;

pub use api::check_snapshot_name;
pub use auth::Credentials;
pub use client::{
    Client, ClientSettings, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_TICKET_RENEW_AFTER, RetryPolicy, SettingsError,
};
pub use console::{
    ConsoleSocket, MAX_FRAME_BYTES, SUBPROTOCOL, Sensitive, TermProxyTicket, UpstreamCloseFrame,
    UpstreamMessage, VncProxyTicket,
};
pub use console_socket::SocketError;
pub use error::{ProxmoxError, TlsFailure};
pub use tls::{
    FingerprintParseError, TlsConfigError, TlsTrust, format_fingerprint, parse_fingerprint,
};
pub use types::{
    BackupVolume, ClusterResource, NodeInfo, PendingChange, ResourceKind, RrdRow, SnapshotInfo,
    TaskOutcome, TaskState, TaskStatus, Timeframe, VersionInfo, VmConfig, VmPowerState, VmStatus,
};
pub use update::{CloneRequest, VmConfigUpdate, encode_sshkeys};
pub use upid::{Upid, UpidParseError};
