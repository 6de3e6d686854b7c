//! The audit trail: every sign-in, account change, console session and lifecycle action, with the
//! acting user. Writing an entry never fails the action it records; a failure to write is logged
//! loudly instead, because refusing service over a log row would turn the audit log into an
//! outage switch.

use crate::store::{Store, audit};

pub use audit::{Entry, Record};

/// The most of a target the log keeps: targets name objects, and an oversized one is an attack
/// on the database's size.
const MAX_TARGET_BYTES: usize = 256;

pub async fn record(store: &Store, entry: audit::Entry<'_>) {
    let action = entry.action.to_owned();
    let mut owned = OwnedEntry::from(&entry);
    if let Some(target) = &mut owned.target
        && target.len() > MAX_TARGET_BYTES
    {
        *target = format!("{}…", crate::text::truncate(target, MAX_TARGET_BYTES));
    }
    let result = store
        .call(move |conn| audit::record(conn, &owned.as_entry()))
        .await;
    if let Err(err) = result {
        tracing::error!(action, error = %err, "could not write an audit entry");
    }
}

/// `Entry` borrows; the store thread needs owned data.
struct OwnedEntry {
    actor: String,
    action: String,
    target: Option<String>,
    detail: serde_json::Value,
    client: Option<String>,
}

impl From<&audit::Entry<'_>> for OwnedEntry {
    fn from(entry: &audit::Entry<'_>) -> Self {
        Self {
            actor: entry.actor.to_owned(),
            action: entry.action.to_owned(),
            target: entry.target.map(str::to_owned),
            detail: entry.detail.clone(),
            client: entry.client.map(str::to_owned),
        }
    }
}

impl OwnedEntry {
    fn as_entry(&self) -> audit::Entry<'_> {
        audit::Entry {
            actor: &self.actor,
            action: &self.action,
            target: self.target.as_deref(),
            detail: self.detail.clone(),
            client: self.client.as_deref(),
        }
    }
}
