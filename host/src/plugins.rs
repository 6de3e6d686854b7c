//! The plugin runtime, which lives in its own crate (`porthole-plugin-host`) so that Cargo keeps
//! it away from the daemon's configuration, database and Proxmox client.

pub use porthole_plugin_host::*;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::store::{Notice, Store};

/// The notice a daemon sends every daemon after it wrote a plugin's breaker state:
/// `breaker <plugin>`.
pub const BREAKER_CHANGED: &str = "breaker ";

/// How often breakers are read from the database regardless of notices, for the notices that
/// never come (several processes on one SQLite file, a listener reconnecting).
const BREAKER_SWEEP: Duration = Duration::from_secs(10);

/// Runtime options whose plugins' `kv` and breaker trips live in the daemon's `store`.
pub fn backed_by(store: &Store) -> RuntimeOptions {
    RuntimeOptions {
        kv: Some(Arc::new(store.clone())),
        trips: Some(Arc::new(store.clone())),
        ..RuntimeOptions::default()
    }
}

/// Keeps this daemon's plugin breakers in step with the database, which every daemon sharing it
/// writes: a plugin switched off by one daemon is off on all of them, and a reset anywhere
/// switches it on everywhere. Runs until the store's notices end.
pub async fn follow_breakers(runtime: PluginRuntime, store: Store) {
    let mut notices = store.subscribe();
    let mut sweep = tokio::time::interval(BREAKER_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sweep.tick() => sync_all(&runtime).await,
            notice = notices.recv() => match notice {
                Ok(Notice::Message(payload)) => {
                    if let Some(plugin) = payload.strip_prefix(BREAKER_CHANGED) {
                        runtime.sync_trip(plugin).await;
                    }
                }
                Ok(Notice::Resync) | Err(RecvError::Lagged(_)) => sync_all(&runtime).await,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

async fn sync_all(runtime: &PluginRuntime) {
    for plugin in runtime.names() {
        runtime.sync_trip(&plugin).await;
    }
}
