//! The plugin runtime: runs third-party WebAssembly components (cloud-init templates, DNS and
//! tunnel providers, billing adapters) in sandboxes that cannot reach a Proxmox secret, another
//! plugin's settings or data, or any address their manifest does not list.
//!
//! Owns: the WIT bindings (`bindings`), the shared wasmtime engine (`engine`), what each world
//! grants (`worlds`), the capabilities a guest gets (`host_api`, `kv`, `egress`, `stdio`), the
//! per-call sandbox (`sandbox`), loading (`loader`), health (`breaker`), the typed facades and the
//! validation of everything a plugin returns (`validate`).
//!
//! Never touches: `proxmox` types or credentials. Plugins see only their own settings and the
//! arguments of a call, and the runtime's API is plain serde data (`data`) so it can move into a
//! separate, locked-down process later.

mod bindings;
pub mod breaker;
pub mod data;
pub mod egress;
mod engine;
pub mod error;
mod facades;
mod host_api;
mod kv;
pub mod loader;
mod runtime;
mod sandbox;
mod stdio;
pub mod validate;
pub mod worlds;

pub use data::*;
pub use engine::{MAX_PLUGIN_MEMORY_BYTES, POOL_SLOTS, cache_dir_for};
pub use error::{CallError, LoadError};
pub use facades::{BillingAdapter, CloudInitTemplate, DnsProvider, TunnelProvider};
pub use loader::{Inspection, check_file};
pub use runtime::{PluginRuntime, PluginState, PluginStatus, RecentError, RuntimeOptions};
