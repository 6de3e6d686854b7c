//! The `host` interface: a plugin's log lines and its own settings, nothing else.
//!
//! Settings are handed over per call from the plugin's own manifest, so there is no lookup path
//! by which one plugin could name another's.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::host::{self, LogLevel};
use super::sandbox::CallState;
use crate::config::Secret;

/// Longest log line kept; the rest is cut.
const MAX_LINE_BYTES: usize = 4 * 1024;
/// Log bytes one call may write through `host.log`.
const MAX_LOG_BYTES_PER_CALL: usize = 64 * 1024;

/// What the `host` interface needs for one call.
pub struct HostState {
    plugin: Arc<str>,
    settings: Arc<BTreeMap<String, Secret>>,
    logged_bytes: usize,
    dropped_lines: u64,
}

impl HostState {
    pub fn new(plugin: Arc<str>, settings: Arc<BTreeMap<String, Secret>>) -> Self {
        Self {
            plugin,
            settings,
            logged_bytes: 0,
            dropped_lines: 0,
        }
    }

    /// Says once, at the end of the call, how much was dropped.
    pub fn finish(&self) {
        if self.dropped_lines > 0 {
            tracing::warn!(
                plugin = &*self.plugin,
                dropped_lines = self.dropped_lines,
                "plugin exceeded its log budget for one call; lines were dropped"
            );
        }
    }
}

pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    host::add_to_linker::<CallState, HasSelf<HostState>>(linker, |state| &mut state.host)?;
    super::bindings::types::add_to_linker::<CallState, HasSelf<HostState>>(linker, |state| {
        &mut state.host
    })
}

impl super::bindings::types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        if self.logged_bytes >= MAX_LOG_BYTES_PER_CALL {
            self.dropped_lines += 1;
            return Ok(());
        }
        let line = truncate(&message, MAX_LINE_BYTES);
        self.logged_bytes += line.len();
        let plugin = &*self.plugin;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{line}"),
            LogLevel::Debug => tracing::debug!(plugin, "{line}"),
            LogLevel::Info => tracing::info!(plugin, "{line}"),
            LogLevel::Warn => tracing::warn!(plugin, "{line}"),
            LogLevel::Error => tracing::error!(plugin, "{line}"),
        }
        Ok(())
    }

    fn setting(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .settings
            .get(&key)
            .map(|secret| secret.expose().to_owned()))
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
