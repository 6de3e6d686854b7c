//! The runtime's errors: why a plugin was refused at load, and why a call failed.
//!
//! Both are plain data (serde) so they survive a process boundary. Guest-visible errors (a
//! plugin's own `plugin-error`) are kept apart from sandbox faults (traps, limits, bad output):
//! only the latter count against the plugin's circuit breaker.

use serde::{Deserialize, Serialize};

use super::data::{FailureKind, PluginFailure};
use super::worlds::ImportRefused;

/// Why a plugin was not loaded. The daemon starts without it and shows this in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum LoadError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("SHA-256 mismatch: the manifest expects {expected}, the file is {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("not a usable WebAssembly component: {detail}")]
    Compile { detail: String },
    #[error("the manifest says world {declared}, but the component exports {found}")]
    WrongWorld { declared: String, found: String },
    #[error("the component {0}")]
    Import(String),
    #[error("cannot prepare the component for its world: {detail}")]
    Link { detail: String },
    #[error("outbound TLS: {detail}")]
    Tls { detail: String },
}

impl From<ImportRefused> for LoadError {
    fn from(refused: ImportRefused) -> Self {
        Self::Import(refused.to_string())
    }
}

/// Why a plugin call did not produce a usable result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum CallError {
    #[error("no plugin named {name:?} is configured")]
    Unknown { name: String },
    #[error("plugin {name:?} was refused at load: {reason}")]
    Refused { name: String, reason: String },
    #[error("plugin {name:?} is a {actual} plugin, not a {expected}")]
    WrongWorld {
        name: String,
        expected: String,
        actual: String,
    },
    #[error("plugin {name:?} is switched off after repeated failures; an operator can reset it")]
    Tripped { name: String },
    #[error("plugin {name:?} ran past its {limit_ms} ms time limit")]
    Timeout { name: String, limit_ms: u64 },
    #[error("plugin {name:?} exceeded a resource limit: {detail}")]
    ResourceLimit { name: String, detail: String },
    #[error("plugin {name:?} crashed: {detail}")]
    Trap { name: String, detail: String },
    #[error("plugin {name:?} returned unusable output: {detail}")]
    InvalidOutput { name: String, detail: String },
    #[error("plugin {name:?} reported {:?}: {}", failure.kind, failure.message)]
    Plugin {
        name: String,
        failure: PluginFailure,
    },
    #[error("too many plugin calls are running; try again")]
    Busy,
}

impl CallError {
    /// Whether this failure is the plugin misbehaving (and so counts against its breaker).
    pub fn is_misbehaviour(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::ResourceLimit { .. }
            | Self::Trap { .. }
            | Self::InvalidOutput { .. } => true,
            Self::Plugin { failure, .. } => failure.kind == FailureKind::Internal,
            _ => false,
        }
    }

    /// Whether trying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Busy | Self::Timeout { .. } => true,
            Self::Plugin { failure, .. } => failure.kind.is_retryable(),
            _ => false,
        }
    }
}

/// Longest error detail kept from a guest or from wasmtime.
pub const MAX_DETAIL: usize = 1024;

/// The cause of an error without wasmtime's wasm backtrace, which names only function indices.
fn without_backtrace(detail: &str) -> String {
    match detail.split_once("wasm backtrace:") {
        Some((_, rest)) => rest.rsplit(": ").next().unwrap_or(rest).trim().to_owned(),
        None => detail.to_owned(),
    }
}

/// Classifies a wasmtime error from instantiating or calling a plugin.
pub fn classify_trap(name: &str, limit_ms: u64, error: &wasmtime::Error) -> CallError {
    let name = name.to_owned();
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => CallError::Timeout { name, limit_ms },
            wasmtime::Trap::StackOverflow => CallError::ResourceLimit {
                name,
                detail: "call stack exhausted (recursion too deep)".into(),
            },
            other => CallError::Trap {
                name,
                detail: other.to_string(),
            },
        };
    }
    if error
        .downcast_ref::<wasmtime::component::ResourceTableError>()
        .is_some()
    {
        return CallError::ResourceLimit {
            name,
            detail: "too many open resources".into(),
        };
    }
    let detail = without_backtrace(&format!("{error:#}"));
    let lower = detail.to_ascii_lowercase();
    if lower.contains("maximum concurrent") || lower.contains("pooling allocator") {
        return CallError::Busy;
    }
    if lower.contains("growing memory")
        || lower.contains("memory limit")
        || lower.contains("hostcall fuel")
        || lower.contains("resource limit")
        || lower.contains("growing table")
    {
        return CallError::ResourceLimit {
            name,
            detail: super::host_api::truncate(&detail, MAX_DETAIL).to_owned(),
        };
    }
    CallError::Trap {
        name,
        detail: super::host_api::truncate(&detail, MAX_DETAIL).to_owned(),
    }
}
