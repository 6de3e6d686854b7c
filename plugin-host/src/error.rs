//! The runtime's errors: why a plugin was refused at load, and why a call failed.
//!
//! Both are plain data (serde) so they survive a process boundary. Guest-visible errors (a
//! plugin's own `plugin-error`) are kept apart from sandbox faults (traps, limits, bad output):
//! only the latter count against the plugin's circuit breaker.

use serde::{Deserialize, Serialize};

use crate::data::{FailureKind, PluginFailure};
use crate::worlds::ImportRefused;

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
    #[error(
        "expected world {declared}, but the component exports {found}: build it for the \
         {declared} world, or configure it as the world it implements"
    )]
    WrongWorld { declared: String, found: String },
    #[error("the component {0}")]
    Import(String),
    #[error("cannot prepare the component for its world: {detail}")]
    Link { detail: String },
    #[error("outbound TLS: {detail}")]
    Tls { detail: String },
    #[error("its runner process: {detail}")]
    Runner { detail: String },
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
    #[error("plugin {name:?} does not offer {what}: {detail}")]
    Unsupported {
        name: String,
        what: String,
        detail: String,
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
    #[error("plugin {name:?}'s process failed: {detail}")]
    Runner { name: String, detail: String },
    /// The call was in flight when the plugin's process failed; that failure is counted
    /// against the plugin once (as `Runner`, on one of its calls), not once per call.
    #[error("plugin {name:?}'s process stopped during the call, or is starting again; try again")]
    Interrupted { name: String },
}

impl CallError {
    /// The failure's class, as its serialised `error` tag names it: for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "unknown",
            Self::Refused { .. } => "refused",
            Self::WrongWorld { .. } => "wrong-world",
            Self::Unsupported { .. } => "unsupported",
            Self::Tripped { .. } => "tripped",
            Self::Timeout { .. } => "timeout",
            Self::ResourceLimit { .. } => "resource-limit",
            Self::Trap { .. } => "trap",
            Self::InvalidOutput { .. } => "invalid-output",
            Self::Plugin { .. } => "plugin",
            Self::Busy => "busy",
            Self::Runner { .. } => "runner",
            Self::Interrupted { .. } => "interrupted",
        }
    }

    /// Whether this failure is the plugin misbehaving (and so counts against its breaker).
    pub fn is_misbehaviour(&self) -> bool {
        match self {
            Self::Timeout { .. }
            | Self::ResourceLimit { .. }
            | Self::Trap { .. }
            | Self::InvalidOutput { .. }
            | Self::Runner { .. } => true,
            Self::Plugin { failure, .. } => failure.kind == FailureKind::Internal,
            _ => false,
        }
    }

    /// Whether trying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Busy | Self::Timeout { .. } | Self::Interrupted { .. } => true,
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

/// The limits a call ran under, for naming the one it hit.
#[derive(Debug, Clone, Copy)]
pub struct CallBudget {
    pub timeout_ms: u64,
    pub memory_bytes: usize,
    /// Bytes the guest may hand the host in one host call (wasmtime's hostcall fuel).
    pub hostcall_bytes: usize,
}

/// Classifies a wasmtime error from instantiating or calling a plugin.
///
/// Everything the guest can cause is the plugin's fault and counts against its breaker; only an
/// exhausted instance pool is the host's (`Busy`). A limit says which limit, in the operator's
/// units, rather than wasmtime's wording.
pub fn classify_trap(name: &str, budget: &CallBudget, error: &wasmtime::Error) -> CallError {
    let name = name.to_owned();
    let limit = |detail: String| CallError::ResourceLimit {
        name: name.clone(),
        detail,
    };
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => CallError::Timeout {
                name,
                limit_ms: budget.timeout_ms,
            },
            wasmtime::Trap::StackOverflow => {
                limit("call stack exhausted (recursion too deep)".into())
            }
            wasmtime::Trap::OutOfFuel => limit("instruction fuel exhausted".into()),
            wasmtime::Trap::AllocationTooLarge => {
                limit("asked for an allocation larger than any limit allows".into())
            }
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
        return limit("too many open resources".into());
    }
    let detail = without_backtrace(&format!("{error:#}"));
    let lower = detail.to_ascii_lowercase();
    if lower.contains("maximum concurrent") || lower.contains("pooling allocator") {
        return CallError::Busy;
    }
    // wasmtime's own words for running out of hostcall fuel ("… fuel allocated for hostcalls has
    // been exhausted"); its error type is private, so the message is all there is to match.
    if lower.contains("fuel allocated for hostcalls") || lower.contains("hostcall fuel") {
        return limit(format!(
            "handed the host more than {} in one host call (the hostcall data limit)",
            in_mib(budget.hostcall_bytes)
        ));
    }
    if lower.contains("growing memory") || lower.contains("memory growth") {
        return limit(format!(
            "memory limit of {} reached",
            in_mib(budget.memory_bytes)
        ));
    }
    if lower.contains("growing table") || lower.contains("table growth") {
        return limit("table size limit reached".into());
    }
    if lower.contains("resource limit") {
        return limit(crate::text::truncate(&detail, MAX_DETAIL).to_owned());
    }
    CallError::Trap {
        name,
        detail: crate::text::truncate(&detail, MAX_DETAIL).to_owned(),
    }
}

/// `bytes` as the operator's configuration states sizes.
fn in_mib(bytes: usize) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib.fract() == 0.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{mib:.1} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: CallBudget = CallBudget {
        timeout_ms: 1_500,
        memory_bytes: 32 << 20,
        hostcall_bytes: 8 << 20,
    };

    fn classify(error: wasmtime::Error) -> CallError {
        classify_trap("p", &BUDGET, &error)
    }

    fn detail_of(error: CallError) -> String {
        match error {
            CallError::ResourceLimit { detail, .. } => detail,
            other => panic!("expected a resource limit, got {other:?}"),
        }
    }

    #[test]
    fn the_epoch_deadline_is_a_timeout_even_under_wasmtimes_context() {
        let error = wasmtime::Error::from(wasmtime::Trap::Interrupt)
            .context("wasm backtrace:\n    0: 0x1234 - <unknown>!render");
        assert_eq!(
            classify(error),
            CallError::Timeout {
                name: "p".into(),
                limit_ms: 1_500
            }
        );
    }

    #[test]
    fn limits_are_named_in_the_operators_units_and_count_as_misbehaviour() {
        let memory = classify(wasmtime::format_err!(
            "forcing trap when growing memory to 34078720 bytes"
        ));
        assert!(memory.is_misbehaviour());
        assert_eq!(detail_of(memory), "memory limit of 32 MiB reached");

        let fuel = classify(wasmtime::format_err!(
            "too much data is being copied between the host and the guest: \
             fuel allocated for hostcalls has been exhausted"
        ));
        assert!(fuel.is_misbehaviour());
        assert!(detail_of(fuel).contains("more than 8 MiB in one host call"));

        let stack = classify(wasmtime::Trap::StackOverflow.into());
        assert!(detail_of(stack).contains("stack"));
        let table = classify(wasmtime::format_err!(
            "forcing trap when growing table to 200000 elements"
        ));
        assert!(detail_of(table).contains("table"));
    }

    #[test]
    fn other_traps_are_crashes_and_an_exhausted_pool_is_the_hosts_problem() {
        let crash = classify(wasmtime::Trap::UnreachableCodeReached.into());
        assert!(matches!(&crash, CallError::Trap { detail, .. } if detail.contains("unreachable")));
        assert!(crash.is_misbehaviour());
        let busy = classify(wasmtime::format_err!(
            "maximum concurrent component instance limit of 128 reached for pooling allocator"
        ));
        assert_eq!(busy, CallError::Busy);
        assert!(!busy.is_misbehaviour());
    }
}
