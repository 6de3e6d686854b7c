//! `{{name}}`: a Porthole DNS provider (world `dns-provider`) for the PowerDNS Authoritative
//! HTTP API. PowerDNS has no record ids: a record is an rrset, identified as `<name>./<TYPE>`.
//!
//! Settings: `api_url` (e.g. `http://127.0.0.1:8081`), `api_key`, `server_id` (default
//! `localhost`).

mod http;

use serde_json::{Value, json};

wit_bindgen::generate!({
    path: "wit",
    world: "porthole:plugin/dns-provider",
    generate_all,
});

use exports::porthole::plugin::dns::{Guest, RecordId, StoredRecord};
use porthole::plugin::host::{self, LogLevel};
use porthole::plugin::types::{DnsRecord, ErrorKind, PluginError, RecordKind};

struct Provider;

export!(Provider);

impl Guest for Provider {
    fn upsert_record(zone: String, entry: DnsRecord) -> Result<RecordId, PluginError> {
        let api = Api::from_settings()?;
        let name = absolute(&entry.name);
        let kind = kind_name(entry.kind);
        let rrset = json!({
            "name": name,
            "type": kind,
            "ttl": if entry.ttl <= 1 { 300 } else { entry.ttl },
            "changetype": "REPLACE",
            "records": [{ "content": to_zone_file(entry.kind, &entry.content), "disabled": false }],
        });
        api.patch_zone(&zone, rrset)?;
        host::log(LogLevel::Info, &format!("upserted {name} {kind}"));
        Ok(format!("{name}/{kind}"))
    }

    fn delete_record(zone: String, id: RecordId) -> Result<(), PluginError> {
        let api = Api::from_settings()?;
        let (name, kind) = id
            .rsplit_once('/')
            .ok_or_else(|| error(ErrorKind::InvalidInput, format!("bad record id {id:?}")))?;
        // Deleting an rrset that does not exist succeeds: PowerDNS ignores it.
        api.patch_zone(
            &zone,
            json!({ "name": name, "type": kind, "changetype": "DELETE" }),
        )
    }

    fn list_records(zone: String) -> Result<Vec<StoredRecord>, PluginError> {
        let api = Api::from_settings()?;
        let zone_data = api.get_zone(&zone)?;
        let mut listed = Vec::new();
        for rrset in zone_data["rrsets"].as_array().into_iter().flatten() {
            let (Some(name), Some(kind)) = (rrset["name"].as_str(), rrset["type"].as_str()) else {
                continue;
            };
            let Some(record_kind) = kind_from_name(kind) else {
                continue; // SOA, NS, MX…: not Porthole's
            };
            for record in rrset["records"].as_array().into_iter().flatten() {
                let content = record["content"].as_str().unwrap_or_default();
                listed.push(StoredRecord {
                    id: format!("{name}/{kind}"),
                    entry: DnsRecord {
                        name: name.trim_end_matches('.').to_owned(),
                        kind: record_kind,
                        content: from_zone_file(record_kind, content),
                        ttl: rrset["ttl"].as_u64().unwrap_or(300) as u32,
                        proxied: false,
                    },
                });
            }
        }
        Ok(listed)
    }
}

/// The PowerDNS API as the settings describe it.
struct Api {
    url: String,
    key: String,
    server: String,
}

impl Api {
    fn from_settings() -> Result<Self, PluginError> {
        let required = |key: &str| {
            host::setting(key).ok_or_else(|| {
                error(
                    ErrorKind::InvalidInput,
                    format!("the setting `{key}` is not set"),
                )
            })
        };
        Ok(Self {
            url: required("api_url")?.trim_end_matches('/').to_owned(),
            key: required("api_key")?,
            server: host::setting("server_id").unwrap_or_else(|| "localhost".into()),
        })
    }

    fn zone_url(&self, zone: &str) -> String {
        format!(
            "{}/api/v1/servers/{}/zones/{}",
            self.url,
            self.server,
            absolute(zone)
        )
    }

    fn patch_zone(&self, zone: &str, rrset: Value) -> Result<(), PluginError> {
        let body = json!({ "rrsets": [rrset] }).to_string();
        let response = http::send("PATCH", &self.zone_url(zone), &self.key, Some(&body))
            .map_err(|e| error(ErrorKind::Upstream, e))?;
        check(response.status, &response.body).map(drop)
    }

    fn get_zone(&self, zone: &str) -> Result<Value, PluginError> {
        let response = http::send("GET", &self.zone_url(zone), &self.key, None)
            .map_err(|e| error(ErrorKind::Upstream, e))?;
        let body = check(response.status, &response.body)?;
        serde_json::from_slice(body).map_err(|e| {
            error(
                ErrorKind::Upstream,
                format!("PowerDNS sent unusable JSON: {e}"),
            )
        })
    }
}

/// The response body when the status is a success, else the error kind that status means.
fn check(status: u16, body: &[u8]) -> Result<&[u8], PluginError> {
    let kind = match status {
        200..=299 => return Ok(body),
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        422 | 400 => ErrorKind::InvalidInput,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Upstream,
    };
    let detail = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    Err(error(kind, format!("PowerDNS answered {status}: {detail}")))
}

fn error(kind: ErrorKind, message: impl Into<String>) -> PluginError {
    PluginError {
        kind,
        message: message.into(),
    }
}

/// `vm1.example.com` → `vm1.example.com.`
fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::A => "A",
        RecordKind::Aaaa => "AAAA",
        RecordKind::Cname => "CNAME",
        RecordKind::Txt => "TXT",
    }
}

fn kind_from_name(name: &str) -> Option<RecordKind> {
    Some(match name {
        "A" => RecordKind::A,
        "AAAA" => RecordKind::Aaaa,
        "CNAME" => RecordKind::Cname,
        "TXT" => RecordKind::Txt,
        _ => return None,
    })
}

/// PowerDNS wants CNAME targets absolute and TXT data quoted.
fn to_zone_file(kind: RecordKind, content: &str) -> String {
    match kind {
        RecordKind::Cname => absolute(content),
        RecordKind::Txt => format!("\"{}\"", content.replace('\\', "\\\\").replace('"', "\\\"")),
        RecordKind::A | RecordKind::Aaaa => content.to_owned(),
    }
}

fn from_zone_file(kind: RecordKind, content: &str) -> String {
    match kind {
        RecordKind::Cname => content.trim_end_matches('.').to_owned(),
        RecordKind::Txt => content
            .trim_matches('"')
            .replace("\\\"", "\"")
            .replace("\\\\", "\\"),
        RecordKind::A | RecordKind::Aaaa => content.to_owned(),
    }
}
