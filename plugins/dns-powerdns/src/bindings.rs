//! The component's WIT face (`dns-provider` world) over [`crate::PowerDns`], with HTTP
//! through `wasi:http`. Compiled for wasm32 only.
#![allow(unsafe_code)] // wit-bindgen's generated ABI glue

use crate::PowerDns;
use exports::porthole::plugin::dns::{Guest, RecordId, StoredRecord};
use porthole::plugin::types::{DnsRecord, PluginError};
use porthole_plugin_support::wasi_http::WasiHttp;

wit_bindgen::generate!({
    path: "../../wit",
    world: "porthole:plugin/dns-provider",
    generate_all,
});

porthole_plugin_support::wit_glue!();
porthole_plugin_support::wit_dns_glue!();

struct Provider;

impl Guest for Provider {
    fn upsert_record(zone: String, entry: DnsRecord) -> Result<RecordId, PluginError> {
        PowerDns::from_settings(&WasiHttp, &HostSettings)
            .and_then(|dns| dns.upsert_record(&zone, &record_from_wit(entry)))
            .map_err(to_wit_error)
    }

    fn delete_record(zone: String, id: RecordId) -> Result<(), PluginError> {
        PowerDns::from_settings(&WasiHttp, &HostSettings)
            .and_then(|dns| dns.delete_record(&zone, &id))
            .map_err(to_wit_error)
    }

    fn list_records(zone: String) -> Result<Vec<StoredRecord>, PluginError> {
        let records = PowerDns::from_settings(&WasiHttp, &HostSettings)
            .and_then(|dns| dns.list_records(&zone))
            .map_err(to_wit_error)?;
        Ok(records
            .into_iter()
            .map(|r| StoredRecord {
                id: r.id,
                entry: record_to_wit(r.entry),
            })
            .collect())
    }
}

export!(Provider);
