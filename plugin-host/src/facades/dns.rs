//! `DnsProvider`: keeps DNS records at a provider.

use super::{invalid, reported, unexpected};
use crate::PluginWorld;
use crate::data::{DnsRecord, FailureKind, PluginFailure, PtrRecord, StoredRecord};
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
        validate::record(record, Some(zone)).map_err(|message| self.refused_input(message))?;
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
        let invocation = Invocation::DeleteRecord {
            zone: zone.to_owned(),
            id: id.to_owned(),
        };
        self.call(invocation, |answer| self.done(answer)).await
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

    /// Makes `record` the PTR record at its name in the reverse `zone`. Refused before the plugin
    /// runs when the record is not a PTR of that zone, or the plugin keeps no reverse DNS.
    pub async fn set_ptr(&self, zone: &str, record: &PtrRecord) -> Result<(), CallError> {
        self.check_reverse()?;
        validate::ptr(record, zone).map_err(|message| self.refused_input(message))?;
        let invocation = Invocation::SetPtr {
            zone: zone.to_owned(),
            record: record.clone(),
        };
        self.call(invocation, |answer| self.done(answer)).await
    }

    /// Removes the PTR records at `name` in the reverse `zone`; removing none succeeds.
    pub async fn remove_ptr(&self, zone: &str, name: &str) -> Result<(), CallError> {
        self.check_reverse()?;
        validate::ptr_name(name, zone).map_err(|message| self.refused_input(message))?;
        let invocation = Invocation::RemovePtr {
            zone: zone.to_owned(),
            name: name.to_owned(),
        };
        self.call(invocation, |answer| self.done(answer)).await
    }

    /// Refuses a reverse-DNS call to a loaded provider that has no `reverse-dns` (one built
    /// against contract 0.1.0, say) before anything runs: not the plugin's fault, so not
    /// counted. A plugin that is not loaded is left for the call to report as it is.
    fn check_reverse(&self) -> Result<(), CallError> {
        if self.runtime.reverse_dns_support(&self.name) == Some(false) {
            return Err(CallError::Unsupported {
                name: self.name.clone(),
                what: "reverse DNS".to_owned(),
                detail: "it does not export porthole:plugin/reverse-dns (added in contract \
                         0.1.1): rebuild it for the reverse-dns-provider world"
                    .to_owned(),
            });
        }
        Ok(())
    }

    fn refused_input(&self, message: String) -> CallError {
        CallError::Plugin {
            name: self.name.clone(),
            failure: PluginFailure {
                kind: FailureKind::InvalidInput,
                message,
            },
        }
    }

    fn done(&self, answer: Answer) -> Result<(), CallError> {
        match answer {
            Answer::Done(done) => done.map_err(|failure| reported(&self.name, failure)),
            other => Err(unexpected(&self.name, &other)),
        }
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
