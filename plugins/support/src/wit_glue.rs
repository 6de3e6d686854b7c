//! Glue every plugin's `wit-bindgen` layer needs. Each plugin generates its own copy of the WIT
//! types, so this is a macro expanded inside the plugin, next to its generated `porthole` module.

/// Defines, in the calling module (which must have the generated `porthole::plugin` in scope):
/// `HostSettings` (settings through `host.setting`), `to_wit_error` (our error → WIT's), and
/// with `kv` also `HostKv` (the `kv` import).
#[macro_export]
macro_rules! wit_glue {
    () => {
        /// This plugin's settings, read through `host.setting`.
        struct HostSettings;

        impl $crate::settings::Settings for HostSettings {
            fn get(&self, key: &str) -> Option<String> {
                porthole::plugin::host::setting(key)
            }
        }

        /// Our error as the WIT `plugin-error`.
        fn to_wit_error(err: $crate::error::PluginError) -> porthole::plugin::types::PluginError {
            use porthole::plugin::types::ErrorKind as Wit;
            use $crate::error::ErrorKind as Ours;
            let kind = match err.kind {
                Ours::InvalidInput => Wit::InvalidInput,
                Ours::NotFound => Wit::NotFound,
                Ours::Unauthorized => Wit::Unauthorized,
                Ours::Conflict => Wit::Conflict,
                Ours::RateLimited => Wit::RateLimited,
                Ours::Upstream => Wit::Upstream,
                Ours::Internal => Wit::Internal,
            };
            porthole::plugin::types::PluginError {
                kind,
                message: err.message,
            }
        }
    };
    (kv) => {
        $crate::wit_glue!();

        /// This plugin's key-value store, through the `kv` import.
        struct HostKv;

        impl HostKv {
            fn error(err: porthole::plugin::kv::KvError) -> $crate::error::PluginError {
                use porthole::plugin::kv::KvError;
                match err {
                    KvError::InvalidKey(m) => $crate::error::PluginError::new(
                        $crate::error::ErrorKind::Internal,
                        format!("kv: invalid key: {m}"),
                    ),
                    KvError::QuotaExceeded(m) => $crate::error::PluginError::new(
                        $crate::error::ErrorKind::Internal,
                        format!("kv: quota exceeded: {m}"),
                    ),
                    KvError::Unavailable(m) => $crate::error::PluginError::new(
                        $crate::error::ErrorKind::Upstream,
                        format!("kv: unavailable: {m}"),
                    ),
                }
            }
        }

        impl $crate::settings::Kv for HostKv {
            fn get(&self, key: &str) -> Result<Option<Vec<u8>>, $crate::error::PluginError> {
                porthole::plugin::kv::get(key).map_err(Self::error)
            }

            fn set(&self, key: &str, value: &[u8]) -> Result<(), $crate::error::PluginError> {
                porthole::plugin::kv::set(key, value).map_err(Self::error)
            }

            fn delete(&self, key: &str) -> Result<(), $crate::error::PluginError> {
                porthole::plugin::kv::delete(key).map_err(Self::error)
            }
        }
    };
}

/// Defines `record_from_wit` and `record_to_wit` between the generated
/// `porthole::plugin::types::DnsRecord` and [`crate::dns::DnsRecord`].
#[macro_export]
macro_rules! wit_dns_glue {
    () => {
        #[allow(dead_code)] // not every plugin takes records
        fn record_from_wit(record: porthole::plugin::types::DnsRecord) -> $crate::dns::DnsRecord {
            use porthole::plugin::types::RecordKind as Wit;
            use $crate::dns::RecordKind as Ours;
            $crate::dns::DnsRecord {
                name: record.name,
                kind: match record.kind {
                    Wit::A => Ours::A,
                    Wit::Aaaa => Ours::Aaaa,
                    Wit::Cname => Ours::Cname,
                    Wit::Txt => Ours::Txt,
                },
                content: record.content,
                ttl: record.ttl,
                proxied: record.proxied,
            }
        }

        #[allow(dead_code)] // not every plugin returns records
        fn record_to_wit(record: $crate::dns::DnsRecord) -> porthole::plugin::types::DnsRecord {
            use porthole::plugin::types::RecordKind as Wit;
            use $crate::dns::RecordKind as Ours;
            porthole::plugin::types::DnsRecord {
                name: record.name,
                kind: match record.kind {
                    Ours::A => Wit::A,
                    Ours::Aaaa => Wit::Aaaa,
                    Ours::Cname => Wit::Cname,
                    Ours::Txt => Wit::Txt,
                },
                content: record.content,
                ttl: record.ttl,
                proxied: record.proxied,
            }
        }
    };
}

/// A whole `reverse-dns-provider` component (a `dns-provider` that also keeps PTR records) over
/// `$provider` (in scope at the call), a type with `from_settings(&http, &settings)`,
/// `upsert_record`, `delete_record` and `list_records` on [`crate::dns::DnsRecord`]s, and
/// `set_ptr` and `remove_ptr` on [`crate::dns::PtrRecord`]s. Expanded in the plugin's bindings
/// module, whose crate depends on `wit-bindgen` and keeps the WIT at `../../wit`.
#[macro_export]
macro_rules! dns_provider_component {
    ($provider:ident) => {
        use exports::porthole::plugin::dns::{Guest as Dns, RecordId, StoredRecord};
        use exports::porthole::plugin::reverse_dns::{Guest as ReverseDns, PtrRecord};
        use porthole::plugin::types::{DnsRecord, PluginError};
        use $crate::wasi_http::WasiHttp;

        wit_bindgen::generate!({
            path: "../../wit",
            world: "porthole:plugin/reverse-dns-provider",
            generate_all,
        });

        $crate::wit_glue!();
        $crate::wit_dns_glue!();

        struct Provider;

        impl Dns for Provider {
            fn upsert_record(zone: String, entry: DnsRecord) -> Result<RecordId, PluginError> {
                $provider::from_settings(&WasiHttp, &HostSettings)
                    .and_then(|dns| dns.upsert_record(&zone, &record_from_wit(entry)))
                    .map_err(to_wit_error)
            }

            fn delete_record(zone: String, id: RecordId) -> Result<(), PluginError> {
                $provider::from_settings(&WasiHttp, &HostSettings)
                    .and_then(|dns| dns.delete_record(&zone, &id))
                    .map_err(to_wit_error)
            }

            fn list_records(zone: String) -> Result<Vec<StoredRecord>, PluginError> {
                let records = $provider::from_settings(&WasiHttp, &HostSettings)
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

        impl ReverseDns for Provider {
            fn set_ptr(zone: String, entry: PtrRecord) -> Result<(), PluginError> {
                let entry = $crate::dns::PtrRecord {
                    name: entry.name,
                    target: entry.target,
                    ttl: entry.ttl,
                };
                $provider::from_settings(&WasiHttp, &HostSettings)
                    .and_then(|dns| dns.set_ptr(&zone, &entry))
                    .map_err(to_wit_error)
            }

            fn remove_ptr(zone: String, name: String) -> Result<(), PluginError> {
                $provider::from_settings(&WasiHttp, &HostSettings)
                    .and_then(|dns| dns.remove_ptr(&zone, &name))
                    .map_err(to_wit_error)
            }
        }

        export!(Provider);
    };
}
