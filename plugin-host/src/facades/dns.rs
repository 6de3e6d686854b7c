//! `DnsProvider`: keeps DNS records at a provider.

use super::{invalid, record_from_wit, record_to_wit, reported};
use crate::PluginWorld;
use crate::bindings::worlds::DnsProviderPre;
use crate::data::{DnsRecord, FailureKind, PluginFailure, StoredRecord};
use crate::error::CallError;
use crate::loader::WorldPre;
use crate::runtime::PluginRuntime;
use crate::sandbox::CallState;
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

fn dns_pre(pre: WorldPre) -> wasmtime::Result<DnsProviderPre<CallState>> {
    match pre {
        WorldPre::Dns(pre) => Ok(pre),
        _ => Err(wasmtime::format_err!("not a DNS provider")),
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
        let (zone, record) = (zone.to_owned(), record_to_wit(record));
        self.runtime
            .call(
                name,
                PluginWorld::DnsProvider,
                move |store, pre| {
                    Box::pin(async move {
                        let instance = dns_pre(pre)?.instantiate_async(&mut *store).await?;
                        let dns = instance.porthole_plugin_dns();
                        dns.call_upsert_record(&mut *store, &zone, &record).await
                    })
                },
                |result| {
                    let id = result.map_err(|err| reported(name, err))?;
                    validate::identifier("record id", &id).map_err(|d| invalid(name, d))?;
                    Ok(id)
                },
            )
            .await
    }

    /// Deletes record `id` from `zone`; deleting a missing record succeeds.
    pub async fn delete_record(&self, zone: &str, id: &str) -> Result<(), CallError> {
        let name = self.name.as_str();
        let (zone, id) = (zone.to_owned(), id.to_owned());
        self.runtime
            .call(
                name,
                PluginWorld::DnsProvider,
                move |store, pre| {
                    Box::pin(async move {
                        let instance = dns_pre(pre)?.instantiate_async(&mut *store).await?;
                        let dns = instance.porthole_plugin_dns();
                        dns.call_delete_record(&mut *store, &zone, &id).await
                    })
                },
                |result| result.map_err(|err| reported(name, err)),
            )
            .await
    }

    /// Lists the records of `zone`; every record must lie inside it.
    pub async fn list_records(&self, zone: &str) -> Result<Vec<StoredRecord>, CallError> {
        let name = self.name.as_str();
        let zone_arg = zone.to_owned();
        self.runtime
            .call(
                name,
                PluginWorld::DnsProvider,
                move |store, pre| {
                    Box::pin(async move {
                        let instance = dns_pre(pre)?.instantiate_async(&mut *store).await?;
                        let dns = instance.porthole_plugin_dns();
                        dns.call_list_records(&mut *store, &zone_arg).await
                    })
                },
                |result| {
                    let listed = result.map_err(|err| reported(name, err))?;
                    if listed.len() > validate::MAX_LISTED_RECORDS {
                        return Err(invalid(name, format!("{} records listed", listed.len())));
                    }
                    listed
                        .into_iter()
                        .map(|stored| {
                            let record = record_from_wit(stored.entry);
                            validate::identifier("record id", &stored.id)
                                .and_then(|()| validate::record(&record, Some(zone)))
                                .map_err(|d| invalid(name, d))?;
                            Ok(StoredRecord {
                                id: stored.id,
                                record,
                            })
                        })
                        .collect()
                },
            )
            .await
    }
}
