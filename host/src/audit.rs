//! The audit trail: every sign-in, account change, console session and lifecycle action, with the
//! acting user. Writing an entry never fails the action it records; a failure to write is logged
//! loudly instead, because refusing service over a log row would turn the audit log into an
//! outage switch.

use crate::store::{Store, audit};

pub use audit::{Entry, Record};

/// The most of a target the log keeps: targets name objects, and an oversized one is an attack
/// on the database's size.
const MAX_TARGET_BYTES: usize = 256;

pub async fn record(store: &Store, mut entry: audit::Entry<'_>) {
    let truncated;
    if let Some(target) = entry.target
        && target.len() > MAX_TARGET_BYTES
    {
        truncated = format!("{}…", crate::text::truncate(target, MAX_TARGET_BYTES));
        entry.target = Some(&truncated);
    }
    if let Err(err) = audit::record(store, &entry).await {
        tracing::error!(action = entry.action, error = %err, "could not write an audit entry");
    }
}
