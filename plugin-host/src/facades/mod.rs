//! Typed facades, one per world: plain data in, validated plain data out.
//!
//! Each names its call as an [`Invocation`](crate::invoke::Invocation), makes it through
//! `PluginRuntime::call`, and validates the answer before anyone sees it, whichever process the
//! plugin ran in.

mod billing;
mod cloud_init;
mod dns;
mod tunnel;

pub use billing::BillingAdapter;
pub use cloud_init::CloudInitTemplate;
pub use dns::DnsProvider;
pub use tunnel::TunnelProvider;

use crate::data::PluginFailure;
use crate::error::{CallError, MAX_DETAIL};
use crate::invoke::Answer;
use crate::text::truncate;

/// A plugin's own `plugin-error`, as a `CallError`.
fn reported(name: &str, failure: PluginFailure) -> CallError {
    CallError::Plugin {
        name: name.to_owned(),
        failure: PluginFailure {
            kind: failure.kind,
            message: truncate(&failure.message, MAX_DETAIL).to_owned(),
        },
    }
}

fn invalid(name: &str, detail: String) -> CallError {
    CallError::InvalidOutput {
        name: name.to_owned(),
        detail,
    }
}

/// An answer to another call than the one made: only a runner that is not ours sends one.
fn unexpected(name: &str, answer: &Answer) -> CallError {
    let kind = match answer {
        Answer::Instantiated => "instantiated",
        Answer::Rendered(_) => "rendered",
        Answer::RecordId(_) => "record-id",
        Answer::Done(_) => "done",
        Answer::Records(_) => "records",
        Answer::Tunnel(_) => "tunnel",
        Answer::Webhook(_) => "webhook",
    };
    invalid(
        name,
        format!("answered {kind:?}, which is not an answer to this call"),
    )
}
