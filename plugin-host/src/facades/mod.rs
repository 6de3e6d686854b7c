//! Typed facades, one per world: plain data in, validated plain data out.
//!
//! Each converts its arguments to the generated WIT types, makes the call through
//! `PluginRuntime::call`, and validates the result before anyone sees it.

mod billing;
mod cloud_init;
mod dns;
mod tunnel;

pub use billing::BillingAdapter;
pub use cloud_init::CloudInitTemplate;
pub use dns::DnsProvider;
pub use tunnel::TunnelProvider;

use super::bindings::types as wit;
use super::data::{DnsRecord, FailureKind, PluginFailure, RecordKind};
use super::error::{CallError, MAX_DETAIL};
use crate::text::truncate;

/// A plugin's own `plugin-error`, as a `CallError`.
fn reported(name: &str, error: wit::PluginError) -> CallError {
    let kind = match error.kind {
        wit::ErrorKind::InvalidInput => FailureKind::InvalidInput,
        wit::ErrorKind::NotFound => FailureKind::NotFound,
        wit::ErrorKind::Unauthorized => FailureKind::Unauthorized,
        wit::ErrorKind::Conflict => FailureKind::Conflict,
        wit::ErrorKind::RateLimited => FailureKind::RateLimited,
        wit::ErrorKind::Upstream => FailureKind::Upstream,
        wit::ErrorKind::Internal => FailureKind::Internal,
    };
    CallError::Plugin {
        name: name.to_owned(),
        failure: PluginFailure {
            kind,
            message: truncate(&error.message, MAX_DETAIL).to_owned(),
        },
    }
}

fn invalid(name: &str, detail: String) -> CallError {
    CallError::InvalidOutput {
        name: name.to_owned(),
        detail,
    }
}

fn record_to_wit(record: &DnsRecord) -> wit::DnsRecord {
    wit::DnsRecord {
        name: record.name.clone(),
        kind: match record.kind {
            RecordKind::A => wit::RecordKind::A,
            RecordKind::Aaaa => wit::RecordKind::Aaaa,
            RecordKind::Cname => wit::RecordKind::Cname,
            RecordKind::Txt => wit::RecordKind::Txt,
        },
        content: record.content.clone(),
        ttl: record.ttl,
        proxied: record.proxied,
    }
}

fn record_from_wit(record: wit::DnsRecord) -> DnsRecord {
    DnsRecord {
        name: record.name,
        kind: match record.kind {
            wit::RecordKind::A => RecordKind::A,
            wit::RecordKind::Aaaa => RecordKind::Aaaa,
            wit::RecordKind::Cname => RecordKind::Cname,
            wit::RecordKind::Txt => RecordKind::Txt,
        },
        content: record.content,
        ttl: record.ttl,
        proxied: record.proxied,
    }
}
