//! The plugin runtime, which lives in its own crate (`porthole-plugin-host`) so that Cargo keeps
//! it away from the daemon's configuration, database and Proxmox client.

pub use porthole_plugin_host::*;

use std::sync::Arc;

use crate::store::Store;

/// Runtime options whose plugins' `kv` and breaker trips live in the daemon's `store`.
pub fn backed_by(store: &Store) -> RuntimeOptions {
    RuntimeOptions {
        kv: Some(Arc::new(store.clone())),
        trips: Some(Arc::new(store.clone())),
        ..RuntimeOptions::default()
    }
}
