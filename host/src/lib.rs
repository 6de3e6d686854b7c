//! Porthole: the hosting-panel daemon for Proxmox VE.

pub mod auth;
pub mod config;
pub mod proxmox;
pub mod store;
