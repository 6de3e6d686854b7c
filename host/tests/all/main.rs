//! All of the daemon's integration tests, in one binary so the daemon links once.

// A test that cannot arrange its fixture should fail loudly, right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod api;
mod authoring;
mod backup;
mod cli;
mod cluster;
mod config;
mod console;
mod demo;
mod deploy;
mod first_party;
mod front_door;
mod lifecycle;
mod lifecycle_acceptance;
mod metrics;
mod openapi;
mod plugins_examples;
mod plugins_first_party;
mod plugins_isolation;
mod plugins_runner;
mod plugins_sandbox;
mod proxmox_client;
mod qemu;
mod self_service;
mod store;
mod tls;
