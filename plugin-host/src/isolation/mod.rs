//! Plugins in processes of their own: each plugin runs in a `porthole plugin-runner` child that
//! locks itself down before it reads the plugin (no file, no socket, no other process, a
//! seccomp allow-list) and asks the daemon for every capability over its one descriptor.
//!
//! A wasmtime or Cranelift bug that lets a guest out of its sandbox then finds an empty process:
//! no Proxmox secret, no database, no other plugin's settings, and no way to reach the network
//! past the daemon's egress policy.
//!
//! `protocol` is the channel, `lockdown` what a runner does to itself, `runner` the child's side
//! and `supervisor` the daemon's: starting runners, relaying their capabilities, and killing and
//! restarting one that crashes, hangs or speaks nonsense.

mod lockdown;
pub mod protocol;
pub mod runner;
pub(crate) mod supervisor;

pub use protocol::Confinement;
pub use supervisor::{RunnerCommand, RunnerStatus, Supervisor, probe};

/// Where plugins run.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// In the daemon's own process, sandboxed by wasmtime alone.
    #[default]
    InProcess,
    /// Each in a locked-down runner process, started with this command.
    Process(RunnerCommand),
}
