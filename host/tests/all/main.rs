//! All of the daemon's integration tests, in one binary so the daemon links once.

// A test that cannot arrange its fixture should fail loudly, right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod cli;
mod config;
mod demo;
mod proxmox_client;
mod store;
