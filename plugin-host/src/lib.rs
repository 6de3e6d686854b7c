//! The plugin runtime: runs third-party WebAssembly components (cloud-init templates, DNS and
//! tunnel providers, billing adapters) in sandboxes that cannot reach a Proxmox secret, another
//! plugin's settings or data, or any address their manifest does not list.
//!
//! Owns: the WIT bindings (`bindings`), the shared wasmtime engine (`engine`), what each world
//! grants (`worlds`), the capabilities a guest gets (`host_api`, `kv`, `egress`, `stdio`), the
//! per-call sandbox (`sandbox`), loading (`loader`), health (`breaker`), the typed facades and the
//! validation of everything a plugin returns (`validate`).
//!
//! Never touches: the daemon's configuration, database or Proxmox client: this crate depends on
//! none of them, so Cargo itself keeps plugins away from the hypervisor. The daemon maps its
//! configuration into [`PluginSpec`] and lends its database through the traits in [`store`].
//! Plugins see only their own settings and the arguments of a call.

mod bindings;
pub mod breaker;
pub mod data;
pub mod egress;
mod engine;
pub mod error;
#[cfg(feature = "hostile-test-hooks")]
mod escape_hooks;
mod facades;
pub mod harness;
mod host_api;
pub mod invoke;
pub mod isolation;
mod kv;
pub mod loader;
mod runtime;
mod sandbox;
mod spec;
mod stdio;
pub mod store;
pub mod text;
pub mod validate;
pub mod worlds;

pub use data::*;
pub use engine::{MAX_PLUGIN_MEMORY_BYTES, POOL_SLOTS, cache_dir_for};
pub use error::{CallError, LoadError};
pub use facades::{BillingAdapter, CloudInitTemplate, DnsProvider, TunnelProvider};
pub use loader::{Inspection, check_file};
pub use runtime::{
    CallObserver, PluginRuntime, PluginState, PluginStatus, RecentError, RuntimeOptions,
};
pub use spec::{PluginLimits, PluginSpec, PluginWorld, Secret};
