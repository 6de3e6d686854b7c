//! Porthole: the hosting-panel daemon for Proxmox VE.
//!
//! Data flows one way: `api` → `inventory` → `proxmox`, with `store` beneath all of them.

pub mod admin;
pub mod api;
pub mod audit;
pub mod auth;
pub mod authoring;
pub mod config;
pub mod console;
pub mod daemon;
pub mod demo;
pub mod guest_password;
pub mod http_server;
pub mod inventory;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod plugins;
pub mod proxmox;
pub mod sealed;
pub mod service_state;
pub mod ssh_keys;
pub mod store;
pub mod tls;
pub use porthole_plugin_host::text;
