//! A `dns-provider` built against the contract as `porthole:plugin@0.1.0` shipped it (frozen in
//! `wit/`), to prove that a daemon implementing a later `0.1.x` keeps loading and calling it.
//! It keeps its records in `kv`, one key per name and kind, so it needs no DNS server.

wit_bindgen::generate!({
    path: [
        "../../../wit/deps/io.wit",
        "../../../wit/deps/clocks.wit",
        "../../../wit/deps/random.wit",
        "../../../wit/deps/filesystem.wit",
        "../../../wit/deps/sockets.wit",
        "../../../wit/deps/cli.wit",
        "../../../wit/deps/http.wit",
        "wit/porthole-0.1.0.wit",
    ],
    world: "porthole:plugin/dns-provider@0.1.0",
    generate_all,
});

use exports::porthole::plugin::dns::{Guest, RecordId, StoredRecord};
use porthole::plugin::types::{DnsRecord, ErrorKind, PluginError, RecordKind};

const PREFIX: &str = "record/";

struct KvDns;

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::A => "A",
        RecordKind::Aaaa => "AAAA",
        RecordKind::Cname => "CNAME",
        RecordKind::Txt => "TXT",
    }
}

fn kind_of(name: &str) -> Option<RecordKind> {
    match name {
        "A" => Some(RecordKind::A),
        "AAAA" => Some(RecordKind::Aaaa),
        "CNAME" => Some(RecordKind::Cname),
        "TXT" => Some(RecordKind::Txt),
        _ => None,
    }
}

fn failure(message: String) -> PluginError {
    PluginError {
        kind: ErrorKind::Upstream,
        message,
    }
}

/// A stored record is `ttl content`; its key `record/<name>/<KIND>` is its id.
fn decode(id: &str, value: &[u8]) -> Option<StoredRecord> {
    let (name, kind) = id.strip_prefix(PREFIX)?.rsplit_once('/')?;
    let (ttl, content) = std::str::from_utf8(value).ok()?.split_once(' ')?;
    Some(StoredRecord {
        id: id.to_owned(),
        entry: DnsRecord {
            name: name.to_owned(),
            kind: kind_of(kind)?,
            content: content.to_owned(),
            ttl: ttl.parse().ok()?,
            proxied: false,
        },
    })
}

impl Guest for KvDns {
    fn upsert_record(_zone: String, entry: DnsRecord) -> Result<RecordId, PluginError> {
        let id = format!("{PREFIX}{}/{}", entry.name, kind_name(entry.kind));
        let value = format!("{} {}", entry.ttl, entry.content);
        porthole::plugin::kv::set(&id, value.as_bytes())
            .map_err(|err| failure(format!("kv: {err:?}")))?;
        Ok(id)
    }

    fn delete_record(_zone: String, id: RecordId) -> Result<(), PluginError> {
        porthole::plugin::kv::delete(&id).map_err(|err| failure(format!("kv: {err:?}")))
    }

    fn list_records(zone: String) -> Result<Vec<StoredRecord>, PluginError> {
        let keys = porthole::plugin::kv::list_keys(PREFIX, 1000)
            .map_err(|err| failure(format!("kv: {err:?}")))?;
        let mut records = Vec::new();
        for key in keys {
            let value = porthole::plugin::kv::get(&key)
                .map_err(|err| failure(format!("kv: {err:?}")))?
                .unwrap_or_default();
            match decode(&key, &value) {
                Some(stored) if stored.entry.name.ends_with(&zone) => records.push(stored),
                _ => {}
            }
        }
        Ok(records)
    }
}

export!(KvDns);
