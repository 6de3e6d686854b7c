//! `DnsProvider`: keeps DNS records at a provider.

use super::{invalid, reported, unexpected};
use crate::PluginWorld;
use crate::data::{DnsRecord, FailureKind, PluginFailure, StoredRecord};
use crate::error::CallError;
use crate::invoke::{Answer, Invocation};
use crate::runtime::PluginRuntime;
use crate::validate;

/// A DNS provider plugin, by name.
#[derive(Clone)]
pub struct DnsProvider {
    runtime: PluginRuntime,
    name: String,
}

impl PluginRuntime {
    pub fn dns_provider(&self, name: &str) -> DnsProvider {
        DnsProvider {
            runtime: self.clone(),
            name: name.to_owned(),
        }
    }
}

impl DnsProvider {
    /// Creates or updates `record` in `zone`; returns the provider's record id. A record outside
    /// `zone` is refused before the plugin runs.
    pub async fn upsert_record(&self, zone: &str, record: &DnsRecord) -> Result<String, CallError> {
        let name = self.name.as_str();
        validate::record(record, Some(zone)).map_err(|message| CallError::Plugin {
            name: name.to_owned(),
            failure: PluginFailure {
                kind: FailureKind::InvalidInput,
                message,
            },
        })?;
        let invocation = Invocation::UpsertRecord {
            zone: zone.to_owned(),
            record: record.clone(),
        };
        let check = |answer| match answer {
            Answer::RecordId(id) => {
                let id = id.map_err(|failure| reported(name, failure))?;
                validate::identifier("record id", &id).map_err(|d| invalid(name, d))?;
                Ok(id)
            }
            other => Err(unexpected(name, &other)),
        };
        self.call(invocation, check).await
    }

    /// Deletes record `id` from `zone`; deleting a missing record succeeds.
    pub async fn delete_record(&self, zone: &str, id: &str) -> Result<(), CallError> {
        let name = self.name.as_str();
        let invocation = Invocation::DeleteRecord {
            zone: zone.to_owned(),
            id: id.to_owned(),
        };
        let check = |answer| match answer {
            Answer::Done(done) => done.map_err(|failure| reported(name, failure)),
            other => Err(unexpected(name, &other)),
        };
        self.call(invocation, check).await
    }

    /// Lists the records of `zone`; every record must lie inside it.
    pub async fn list_records(&self, zone: &str) -> Result<Vec<StoredRecord>, CallError> {
        let name = self.name.as_str();
        let invocation = Invocation::ListRecords {
            zone: zone.to_owned(),
        };
        let check = |answer| match answer {
            Answer::Records(listed) => {
                let listed = listed.map_err(|failure| reported(name, failure))?;
                if listed.len() > validate::MAX_LISTED_RECORDS {
                    return Err(invalid(name, format!("{} records listed", listed.len())));
                }
                for stored in &listed {
                    validate::identifier("record id", &stored.id)
                        .and_then(|()| validate::record(&stored.record, Some(zone)))
                        .map_err(|d| invalid(name, d))?;
                }
                Ok(listed)
            }
            other => Err(unexpected(name, &other)),
        };
        self.call(invocation, check).await
    }

    async fn call<T>(
        &self,
        invocation: Invocation,
        check: impl FnOnce(Answer) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let world = PluginWorld::DnsProvider;
        self.runtime
            .call(&self.name, world, invocation, check)
            .await
    }
}
