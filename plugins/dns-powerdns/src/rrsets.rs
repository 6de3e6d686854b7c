//! Upsert, delete and list through the zone's rrsets.

use crate::content::{from_zone_file, to_zone_file};
use porthole_plugin_support::dns::{self, DnsRecord, PtrRecord, RecordKind, StoredRecord};
use porthole_plugin_support::dns_name::{self, canonical};
use porthole_plugin_support::error::PluginError;
use porthole_plugin_support::http::{HttpClient, Method, Request, Response, encode_component};
use porthole_plugin_support::settings::Settings;
use serde::Deserialize;
use serde_json::{Value, json};

/// `list-records` returns at most this many records.
const MAX_LISTED: usize = 10_000;

/// The DNS provider over one PowerDNS API.
pub struct PowerDns<'a, H: HttpClient> {
    http: &'a H,
    api_url: String,
    api_key: String,
    server_id: String,
    default_ttl: u32,
}

#[derive(Deserialize)]
struct Zone {
    #[serde(default)]
    rrsets: Vec<RrSet>,
}

#[derive(Deserialize)]
struct RrSet {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    records: Vec<RrRecord>,
}

#[derive(Deserialize)]
struct RrRecord {
    content: String,
    #[serde(default)]
    disabled: bool,
}

impl<'a, H: HttpClient> PowerDns<'a, H> {
    pub fn from_settings(http: &'a H, settings: &impl Settings) -> Result<Self, PluginError> {
        let api_url = settings
            .required("api_url")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        let api_key = settings.required("api_key")?.trim().to_owned();
        let server_id = settings
            .get("server_id")
            .unwrap_or_else(|| "localhost".into());
        let default_ttl = match settings.get("default_ttl") {
            Some(ttl) => ttl.trim().parse().map_err(|_| {
                PluginError::invalid(format!("default_ttl {ttl:?} is not a number"))
            })?,
            None => 300,
        };
        Ok(Self {
            http,
            api_url,
            api_key,
            server_id,
            default_ttl,
        })
    }

    /// REPLACEs the record's rrset with this one record; returns `<name>./<TYPE>`.
    pub fn upsert_record(&self, zone: &str, record: &DnsRecord) -> Result<String, PluginError> {
        let zone = dns_name::zone(zone)?;
        let record = record.normalized(&zone)?;
        let ttl = self.ttl(record.ttl);
        let rrset = json!({
            "name": canonical(&record.name),
            "type": record.kind.as_str(),
            "ttl": ttl,
            "changetype": "REPLACE",
            "records": [{"content": to_zone_file(record.kind, &record.content), "disabled": false}],
        });
        self.patch(&zone, rrset)?;
        Ok(record_id(&record.name, record.kind))
    }

    /// DELETEs the rrset `id` names; PowerDNS accepts deleting an rrset that does not exist.
    pub fn delete_record(&self, zone: &str, id: &str) -> Result<(), PluginError> {
        let zone = dns_name::zone(zone)?;
        let (name, kind) = parse_id(id)?;
        let name = dns_name::absolute(&canonical(name), &zone)?;
        let rrset =
            json!({"name": canonical(&name), "type": kind.as_str(), "changetype": "DELETE"});
        self.patch(&zone, rrset)
    }

    /// REPLACEs the PTR rrset at `record.name` in the reverse `zone` with this one record.
    pub fn set_ptr(&self, zone: &str, record: &PtrRecord) -> Result<(), PluginError> {
        let zone = dns_name::zone(zone)?;
        let record = record.normalized(&zone)?;
        let ttl = self.ttl(record.ttl);
        let rrset = json!({
            "name": canonical(&record.name),
            "type": "PTR",
            "ttl": ttl,
            "changetype": "REPLACE",
            "records": [{"content": canonical(&record.target), "disabled": false}],
        });
        self.patch(&zone, rrset)
    }

    /// DELETEs the PTR rrset at `name` in the reverse `zone`.
    pub fn remove_ptr(&self, zone: &str, name: &str) -> Result<(), PluginError> {
        let zone = dns_name::zone(zone)?;
        let name = dns::reverse_name(name, &zone)?;
        let rrset = json!({"name": canonical(&name), "type": "PTR", "changetype": "DELETE"});
        self.patch(&zone, rrset)
    }

    /// The zone's enabled A, AAAA, CNAME and TXT records.
    pub fn list_records(&self, zone: &str) -> Result<Vec<StoredRecord>, PluginError> {
        let zone = dns_name::zone(zone)?;
        let response = self.send(Request::new(Method::Get, self.zone_url(&zone)))?;
        let zone: Zone = serde_json::from_slice(&response.body).map_err(|err| {
            PluginError::from_status(
                502,
                format!("PowerDNS zone is not the expected JSON: {err}"),
            )
        })?;
        Ok(zone
            .rrsets
            .iter()
            .flat_map(stored)
            .take(MAX_LISTED)
            .collect())
    }

    /// The TTL to write: ours for 1, "the provider's automatic value".
    fn ttl(&self, wanted: u32) -> u32 {
        if wanted <= 1 {
            self.default_ttl
        } else {
            wanted
        }
    }

    fn patch(&self, zone: &str, rrset: Value) -> Result<(), PluginError> {
        let request =
            Request::new(Method::Patch, self.zone_url(zone)).json(&json!({"rrsets": [rrset]}));
        self.send(request).map(drop)
    }

    fn zone_url(&self, zone: &str) -> String {
        format!(
            "{}/api/v1/servers/{}/zones/{}",
            self.api_url,
            encode_component(&self.server_id),
            encode_component(&canonical(zone))
        )
    }

    /// Sends with the API key; a non-2xx answer becomes an error with PowerDNS's `error` text.
    fn send(&self, request: Request) -> Result<Response, PluginError> {
        let method = request.method;
        let response = self
            .http
            .send(request.header("X-API-Key", self.api_key.clone()))?;
        if response.is_success() {
            return Ok(response);
        }
        let detail = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|body| body["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| response.snippet());
        Err(PluginError::from_status(
            response.status,
            format!("PowerDNS {method}: HTTP {}: {detail}", response.status),
        ))
    }
}

fn record_id(name: &str, kind: RecordKind) -> String {
    format!("{}/{}", canonical(name), kind.as_str())
}

fn parse_id(id: &str) -> Result<(&str, RecordKind), PluginError> {
    let bad = || PluginError::invalid(format!("{id:?} is not a record id of this plugin"));
    let (name, kind) = id.rsplit_once('/').ok_or_else(bad)?;
    let kind = RecordKind::parse(kind).ok_or_else(bad)?;
    Ok((name, kind))
}

fn stored(rrset: &RrSet) -> Vec<StoredRecord> {
    let Some(kind) = RecordKind::parse(&rrset.kind) else {
        return Vec::new();
    };
    let name = rrset.name.trim_end_matches('.');
    rrset
        .records
        .iter()
        .filter(|record| !record.disabled)
        .map(|record| StoredRecord {
            id: record_id(name, kind),
            entry: DnsRecord {
                name: name.to_owned(),
                kind,
                content: from_zone_file(kind, &record.content),
                ttl: rrset.ttl,
                proxied: false,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use porthole_plugin_support::error::ErrorKind;
    use porthole_plugin_support::settings::MapSettings;
    use porthole_plugin_support::testing::ScriptedHttp;

    fn settings() -> MapSettings {
        MapSettings::new([("api_url", "http://127.0.0.1:8081/"), ("api_key", "secret")])
    }

    fn cname() -> DnsRecord {
        DnsRecord {
            name: "ssh-vm1".into(),
            kind: RecordKind::Cname,
            content: "abc.cfargotunnel.com".into(),
            ttl: 1,
            proxied: true,
        }
    }

    #[test]
    fn upsert_replaces_the_rrset_with_canonical_names() {
        let http = ScriptedHttp::new().reply_raw(204, Vec::new());
        let dns = PowerDns::from_settings(&http, &settings()).unwrap();
        let id = dns.upsert_record("Lab.Example.com.", &cname()).unwrap();
        assert_eq!(id, "ssh-vm1.lab.example.com./CNAME");
        let sent = &http.sent()[0];
        assert_eq!(
            sent.url,
            "http://127.0.0.1:8081/api/v1/servers/localhost/zones/lab.example.com."
        );
        assert!(
            sent.headers
                .contains(&("X-API-Key".into(), "secret".into()))
        );
        let body: Value = serde_json::from_str(&sent.body_text()).unwrap();
        assert_eq!(
            body,
            json!({"rrsets": [{"name": "ssh-vm1.lab.example.com.", "type": "CNAME", "ttl": 300,
                "changetype": "REPLACE", "records": [{"content": "abc.cfargotunnel.com.", "disabled": false}]}]})
        );
    }

    #[test]
    fn delete_uses_the_id_and_stays_inside_the_zone() {
        let http = ScriptedHttp::new().reply_raw(204, Vec::new());
        let dns = PowerDns::from_settings(&http, &settings()).unwrap();
        dns.delete_record("lab.example.com", "ssh-vm1.lab.example.com./CNAME")
            .unwrap();
        let body: Value = serde_json::from_str(&http.sent()[0].body_text()).unwrap();
        assert_eq!(body["rrsets"][0]["changetype"], "DELETE");
        assert_eq!(body["rrsets"][0]["name"], "ssh-vm1.lab.example.com.");
        let outside = dns
            .delete_record("lab.example.com", "www.other.org./A")
            .unwrap_err();
        assert_eq!(outside.kind, ErrorKind::InvalidInput);
        assert!(dns.delete_record("lab.example.com", "garbage").is_err());
    }

    #[test]
    fn lists_enabled_records_of_porthole_types() {
        let http = ScriptedHttp::new().reply(200, json!({"name": "lab.example.com.", "rrsets": [
            {"name": "vm1.lab.example.com.", "type": "A", "ttl": 60, "records": [{"content": "192.0.2.1", "disabled": false}, {"content": "192.0.2.2", "disabled": true}]},
            {"name": "lab.example.com.", "type": "SOA", "ttl": 3600, "records": [{"content": "a. b. 1 2 3 4 5", "disabled": false}]},
            {"name": "t.lab.example.com.", "type": "TXT", "ttl": 60, "records": [{"content": "\"hello\"", "disabled": false}]},
        ]}));
        let dns = PowerDns::from_settings(&http, &settings()).unwrap();
        let records = dns.list_records("lab.example.com").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].id, "vm1.lab.example.com./A");
        assert_eq!(records[1].entry.content, "hello");
    }

    #[test]
    fn api_errors_keep_powerdns_message_and_kind() {
        let http = ScriptedHttp::new()
            .reply(
                404,
                json!({"error": "Could not find domain 'nope.example.'"}),
            )
            .reply_raw(401, b"Unauthorized".to_vec())
            .reply(
                422,
                json!({"error": "RRset x. IN CNAME: Conflicts with pre-existing RRset"}),
            );
        let dns = PowerDns::from_settings(&http, &settings()).unwrap();
        let err = dns.list_records("nope.example").unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.message.contains("Could not find domain"));
        assert_eq!(
            dns.list_records("x.example").unwrap_err().kind,
            ErrorKind::Unauthorized
        );
        assert_eq!(
            dns.upsert_record("example.com", &cname()).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }
}
