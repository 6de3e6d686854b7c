//! All of the daemon's integration tests, in one binary so the daemon links once.

mod api;
mod config;
mod demo;
mod proxmox_client;
mod store;
