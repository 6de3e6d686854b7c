//! The `host` interface: a plugin's log lines and its own settings, nothing else.
//!
//! Settings are handed over per call from the plugin's own manifest, so there is no lookup path
//! by which one plugin could name another's.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::Secret;
use crate::bindings::host::{self, LogLevel};
use crate::isolation::protocol::LogLevel as Level;
use crate::sandbox::CallState;
use crate::text::{escape_controls, truncate};

/// Longest log line kept; the rest is cut.
pub const MAX_LINE_BYTES: usize = 4 * 1024;
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

/// Writes `line`, already escaped and cut, as plugin `plugin`'s at `level`.
pub(crate) fn write_log(plugin: &str, level: Level, line: &str) {
    match level {
        Level::Trace => tracing::trace!(plugin, "{line}"),
        Level::Debug => tracing::debug!(plugin, "{line}"),
        Level::Info => tracing::info!(plugin, "{line}"),
        Level::Warn => tracing::warn!(plugin, "{line}"),
        Level::Error => tracing::error!(plugin, "{line}"),
    }
}

pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    host::add_to_linker::<CallState, HasSelf<HostState>>(linker, |state| &mut state.host)?;
    crate::bindings::types::add_to_linker::<CallState, HasSelf<HostState>>(linker, |state| {
        &mut state.host
    })
}

impl crate::bindings::types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        if self.logged_bytes >= MAX_LOG_BYTES_PER_CALL {
            self.dropped_lines += 1;
            return Ok(());
        }
        let kept = truncate(&message, MAX_LINE_BYTES);
        let cut = message.len() - kept.len();
        let kept = escape_controls(kept);
        // What reaches the log counts, escapes included.
        self.logged_bytes += kept.len();
        // Marked like a cut stdout line, so a reader never takes a cut message for the whole.
        let line = match cut {
            0 => kept,
            cut => std::borrow::Cow::Owned(format!("{kept} [… {cut} more bytes of this line cut]")),
        };
        let level = match level {
            LogLevel::Trace => Level::Trace,
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warn => Level::Warn,
            LogLevel::Error => Level::Error,
        };
        write_log(&self.plugin, level, &line);
        Ok(())
    }

    fn setting(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self
            .settings
            .get(&key)
            .map(|secret| secret.expose().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use host::Host as _;

    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut log) = self.0.lock() {
                log.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What the daemon's log shows after the plugin logs `message`.
    fn logged(message: String) -> wasmtime::Result<String> {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let mut state = HostState::new(Arc::from("p"), Arc::default());
        {
            let _here = tracing::subscriber::set_default(subscriber);
            state.log(LogLevel::Info, message)?;
        }
        let text = log.0.lock().map(|l| l.clone()).unwrap_or_default();
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    #[test]
    fn a_cut_log_message_says_how_much_was_cut() -> wasmtime::Result<()> {
        let text = logged("x".repeat(MAX_LINE_BYTES + 5))?;
        let cut = format!(
            "{} [… 5 more bytes of this line cut]",
            "x".repeat(MAX_LINE_BYTES)
        );
        assert!(text.contains(&cut), "{text}");
        Ok(())
    }

    #[test]
    fn a_plugin_cannot_forge_a_line_of_the_daemons_log() -> wasmtime::Result<()> {
        let text = logged("fine\n2026-12-03T00:00:00Z ERROR porthole: forged".into())?;
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("fine\\n2026-12-03T00:00:00Z ERROR porthole: forged"),
            "{text}"
        );
        Ok(())
    }
}
