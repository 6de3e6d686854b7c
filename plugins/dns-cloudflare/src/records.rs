//! Upsert, delete and list of `dns_records` in one zone.

use crate::zones;
use porthole_plugin_support::cloudflare::{Cloudflare, DEFAULT_API_BASE};
use porthole_plugin_support::dns::{self, DnsRecord, PtrRecord, RecordKind, StoredRecord};
use porthole_plugin_support::dns_name;
use porthole_plugin_support::error::PluginError;
use porthole_plugin_support::http::{HttpClient, Method, encode_component};
use porthole_plugin_support::settings::Settings;
use serde::Deserialize;
use serde_json::{Value, json};

/// Cloudflare: "Record does not exist." / "Invalid dns record identifier".
const RECORD_GONE: [i64; 2] = [81044, 7003];
/// Cloudflare: "An identical record already exists." (a concurrent create won the race).
const RECORD_EXISTS: i64 = 81057;
/// `list-records` returns at most this many records.
const MAX_LISTED: usize = 10_000;

/// A record as the API returns it.
#[derive(Debug, Deserialize)]
struct ApiRecord {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    proxied: bool,
}

/// The DNS provider over one API token.
pub struct CloudflareDns<'a, H: HttpClient> {
    api: Cloudflare<'a, H>,
    zone_id: Option<String>,
}

impl<'a, H: HttpClient> CloudflareDns<'a, H> {
    pub fn from_settings(http: &'a H, settings: &impl Settings) -> Result<Self, PluginError> {
        let token = settings.required("api_token")?;
        let base = settings
            .get("api_base")
            .unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        let zone_id = settings.get("zone_id").filter(|id| !id.trim().is_empty());
        if let Some(id) = &zone_id {
            zones::check_id(id, "zone_id setting")?;
        }
        Ok(Self {
            api: Cloudflare::new(http, &base, token.trim()),
            zone_id,
        })
    }

    /// Makes `record` exist in `zone` exactly once for its type and name; returns its id.
    pub fn upsert_record(&self, zone: &str, record: &DnsRecord) -> Result<String, PluginError> {
        let zone = dns_name::zone(zone)?;
        let record = record.normalized(&zone)?;
        let zone_id = self.zone_id(&zone)?;
        if let Some(id) = self.reconcile(&zone_id, &record)? {
            return Ok(id);
        }
        let created = self.api.call_as::<ApiRecord>(
            Method::Post,
            &format!("/zones/{zone_id}/dns_records"),
            Some(&body(&record)),
        );
        match created {
            Ok(created) => Ok(created.id),
            // Someone created it between our lookup and our create: converge on theirs.
            Err(err) if err.has_code(RECORD_EXISTS) => self
                .reconcile(&zone_id, &record)?
                .ok_or_else(|| PluginError::from(err)),
            Err(err) => Err(err.into()),
        }
    }

    /// Updates the existing record of the same type and name to match, if there is one.
    fn reconcile(&self, zone_id: &str, record: &DnsRecord) -> Result<Option<String>, PluginError> {
        let Some(existing) = self.find(zone_id, record)? else {
            return Ok(None);
        };
        if !matches(&existing, record) {
            self.api.call(
                Method::Put,
                &format!("/zones/{zone_id}/dns_records/{}", existing.id),
                Some(&body(record)),
            )?;
        }
        Ok(Some(existing.id))
    }

    fn find(&self, zone_id: &str, record: &DnsRecord) -> Result<Option<ApiRecord>, PluginError> {
        let found = self.records_at(zone_id, record.kind.as_str(), &record.name)?;
        Ok(found.into_iter().next())
    }

    /// The zone's records of type `kind` named `name`.
    fn records_at(
        &self,
        zone_id: &str,
        kind: &str,
        name: &str,
    ) -> Result<Vec<ApiRecord>, PluginError> {
        let path = format!(
            "/zones/{zone_id}/dns_records?type={kind}&name={}",
            encode_component(name)
        );
        let found: Vec<ApiRecord> = self.api.list(&path)?;
        Ok(found
            .into_iter()
            .filter(|r| r.kind == kind && r.name.eq_ignore_ascii_case(name))
            .collect())
    }

    /// Deletes record `id`; a record that is already gone counts as deleted.
    pub fn delete_record(&self, zone: &str, id: &str) -> Result<(), PluginError> {
        zones::check_id(id, "record id")?;
        let zone_id = self.zone_id(&dns_name::zone(zone)?)?;
        self.delete_by_id(&zone_id, id)
    }

    /// Deletes record `id` of zone `zone_id`; one already gone counts as deleted.
    fn delete_by_id(&self, zone_id: &str, id: &str) -> Result<(), PluginError> {
        let path = format!("/zones/{zone_id}/dns_records/{id}");
        match self.api.call(Method::Delete, &path, None) {
            Ok(_) => Ok(()),
            Err(err)
                if err.status() == Some(404) || RECORD_GONE.iter().any(|c| err.has_code(*c)) =>
            {
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The zone's A, AAAA, CNAME and TXT records (other types are not Porthole's).
    pub fn list_records(&self, zone: &str) -> Result<Vec<StoredRecord>, PluginError> {
        let zone_id = self.zone_id(&dns_name::zone(zone)?)?;
        let records: Vec<ApiRecord> = self.api.list(&format!("/zones/{zone_id}/dns_records"))?;
        Ok(records
            .into_iter()
            .filter_map(stored)
            .take(MAX_LISTED)
            .collect())
    }

    /// Makes `record` the one PTR record at its name in the reverse `zone`: updates the first
    /// one there (or creates it) and deletes any others. A reverse zone is always looked up by
    /// name: the `zone_id` setting is the forward zone's.
    pub fn set_ptr(&self, zone: &str, record: &PtrRecord) -> Result<(), PluginError> {
        let zone = dns_name::zone(zone)?;
        let record = record.normalized(&zone)?;
        let zone_id = zones::lookup(&self.api, &zone)?;
        let body = json!({
            "type": "PTR", "name": record.name, "content": record.target, "ttl": record.ttl.max(1),
        });
        let mut existing = self.records_at(&zone_id, "PTR", &record.name)?.into_iter();
        match existing.next() {
            Some(first) => {
                let unchanged = first
                    .content
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(&record.target)
                    && first.ttl == record.ttl.max(1);
                if !unchanged {
                    let path = format!("/zones/{zone_id}/dns_records/{}", first.id);
                    self.api.call(Method::Put, &path, Some(&body))?;
                }
            }
            None => match self.api.call(
                Method::Post,
                &format!("/zones/{zone_id}/dns_records"),
                Some(&body),
            ) {
                Ok(_) => {}
                // A retry after a lost answer: the record is already there.
                Err(err) if err.has_code(RECORD_EXISTS) => {}
                Err(err) => return Err(err.into()),
            },
        }
        for extra in existing {
            self.delete_by_id(&zone_id, &extra.id)?;
        }
        Ok(())
    }

    /// Deletes every PTR record at `name` in the reverse `zone`.
    pub fn remove_ptr(&self, zone: &str, name: &str) -> Result<(), PluginError> {
        let zone = dns_name::zone(zone)?;
        let name = dns::reverse_name(name, &zone)?;
        let zone_id = zones::lookup(&self.api, &zone)?;
        for record in self.records_at(&zone_id, "PTR", &name)? {
            self.delete_by_id(&zone_id, &record.id)?;
        }
        Ok(())
    }

    fn zone_id(&self, zone: &str) -> Result<String, PluginError> {
        match &self.zone_id {
            Some(id) => Ok(id.clone()),
            None => zones::lookup(&self.api, zone),
        }
    }
}

/// The API's `{type, name, content, ttl, proxied}`; only address and CNAME records can be
/// proxied.
fn body(record: &DnsRecord) -> Value {
    let mut body = json!({
        "type": record.kind.as_str(),
        "name": record.name,
        "content": record.content,
        "ttl": record.ttl.max(1),
    });
    if record.kind != RecordKind::Txt {
        body["proxied"] = json!(record.proxied);
    }
    body
}

/// Whether the existing record already is what we want. Proxied records always have the
/// automatic TTL at Cloudflare, so their TTL is not compared.
fn matches(existing: &ApiRecord, wanted: &DnsRecord) -> bool {
    let content = if wanted.kind == RecordKind::Cname {
        existing
            .content
            .trim_end_matches('.')
            .eq_ignore_ascii_case(&wanted.content)
    } else {
        existing.content == wanted.content
    };
    let proxied = wanted.kind == RecordKind::Txt || existing.proxied == wanted.proxied;
    let ttl = wanted.proxied || existing.ttl == wanted.ttl.max(1);
    content && proxied && ttl
}

fn stored(record: ApiRecord) -> Option<StoredRecord> {
    let kind = RecordKind::parse(&record.kind)?;
    Some(StoredRecord {
        id: record.id,
        entry: DnsRecord {
            name: record.name,
            kind,
            content: record.content,
            ttl: record.ttl,
            proxied: record.proxied,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use porthole_plugin_support::error::ErrorKind;
    use porthole_plugin_support::settings::MapSettings;
    use porthole_plugin_support::testing::ScriptedHttp;

    fn ok(result: Value) -> Value {
        json!({"success": true, "errors": [], "messages": [], "result": result,
               "result_info": {"page": 1, "per_page": 100, "count": 1, "total_count": 1, "total_pages": 1}})
    }

    fn settings() -> MapSettings {
        MapSettings::new([
            ("api_token", "tok"),
            ("api_base", "https://cf.test/client/v4"),
        ])
    }

    fn a_record() -> DnsRecord {
        DnsRecord {
            name: "vm1.example.com".into(),
            kind: RecordKind::A,
            content: "192.0.2.10".into(),
            ttl: 300,
            proxied: false,
        }
    }

    #[test]
    fn creates_a_missing_record_after_looking_up_the_zone() {
        let http = ScriptedHttp::new()
            .reply(200, ok(json!([{"id": "zone1", "name": "example.com"}])))
            .reply(200, ok(json!([])))
            .reply(200, ok(json!({"id": "rec1", "name": "vm1.example.com", "type": "A", "content": "192.0.2.10", "ttl": 300, "proxied": false})));
        let dns = CloudflareDns::from_settings(&http, &settings()).unwrap();
        assert_eq!(
            dns.upsert_record("example.com", &a_record()).unwrap(),
            "rec1"
        );
        let lines = http.lines();
        assert_eq!(
            lines[0],
            "GET https://cf.test/client/v4/zones?name=example.com&per_page=100&page=1"
        );
        assert_eq!(
            lines[1],
            "GET https://cf.test/client/v4/zones/zone1/dns_records?type=A&name=vm1.example.com&per_page=100&page=1"
        );
        assert_eq!(
            lines[2],
            "POST https://cf.test/client/v4/zones/zone1/dns_records"
        );
        let body: Value = serde_json::from_str(&http.sent()[2].body_text()).unwrap();
        assert_eq!(
            body,
            json!({"type": "A", "name": "vm1.example.com", "content": "192.0.2.10", "ttl": 300, "proxied": false})
        );
    }

    #[test]
    fn updates_a_differing_record_and_leaves_a_matching_one() {
        let existing = |content: &str| {
            ok(
                json!([{"id": "rec1", "name": "vm1.example.com", "type": "A", "content": content, "ttl": 300, "proxied": false}]),
            )
        };
        let settings = MapSettings::new([("api_token", "tok"), ("zone_id", "zone1")]);
        let http = ScriptedHttp::new()
            .reply(200, existing("192.0.2.99"))
            .reply(200, ok(json!({"id": "rec1"})))
            .reply(200, existing("192.0.2.10"));
        let dns = CloudflareDns::from_settings(&http, &settings).unwrap();
        assert_eq!(
            dns.upsert_record("example.com", &a_record()).unwrap(),
            "rec1"
        );
        assert_eq!(
            dns.upsert_record("example.com", &a_record()).unwrap(),
            "rec1"
        );
        let lines = http.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[1],
            "PUT https://api.cloudflare.com/client/v4/zones/zone1/dns_records/rec1"
        );
    }

    #[test]
    fn a_lost_create_race_converges_on_the_existing_record() {
        let settings = MapSettings::new([("api_token", "tok"), ("zone_id", "zone1")]);
        let http = ScriptedHttp::new()
            .reply(200, ok(json!([])))
            .reply(400, json!({"success": false, "errors": [{"code": 81057, "message": "An identical record already exists."}], "messages": [], "result": null}))
            .reply(200, ok(json!([{"id": "rec9", "name": "vm1.example.com", "type": "A", "content": "192.0.2.10", "ttl": 300, "proxied": false}])));
        let dns = CloudflareDns::from_settings(&http, &settings).unwrap();
        assert_eq!(
            dns.upsert_record("example.com", &a_record()).unwrap(),
            "rec9"
        );
    }

    #[test]
    fn deleting_a_missing_record_succeeds() {
        let settings = MapSettings::new([("api_token", "tok"), ("zone_id", "zone1")]);
        let http = ScriptedHttp::new().reply(404, json!({"success": false, "errors": [{"code": 81044, "message": "Record does not exist."}], "messages": [], "result": null}));
        let dns = CloudflareDns::from_settings(&http, &settings).unwrap();
        dns.delete_record("example.com", "abc123").unwrap();
        assert!(dns.delete_record("example.com", "../zones").is_err());
    }

    #[test]
    fn errors_carry_their_retry_kind() {
        let http = ScriptedHttp::new()
            .reply(403, json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], "messages": [], "result": null}))
            .fail("connection refused")
            .reply(200, ok(json!([])));
        let dns = CloudflareDns::from_settings(&http, &settings()).unwrap();
        assert_eq!(
            dns.list_records("example.com").unwrap_err().kind,
            ErrorKind::Unauthorized
        );
        assert_eq!(
            dns.list_records("example.com").unwrap_err().kind,
            ErrorKind::Upstream
        );
        assert_eq!(
            dns.list_records("example.com").unwrap_err().kind,
            ErrorKind::NotFound
        );
        let missing = CloudflareDns::from_settings(&http, &MapSettings::default())
            .err()
            .unwrap();
        assert_eq!(missing.kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn lists_only_porthole_record_types() {
        let settings = MapSettings::new([("api_token", "tok"), ("zone_id", "zone1")]);
        let http = ScriptedHttp::new().reply(200, ok(json!([
            {"id": "r1", "name": "a.example.com", "type": "A", "content": "192.0.2.1", "ttl": 1, "proxied": true},
            {"id": "r2", "name": "example.com", "type": "MX", "content": "mx.example.com", "ttl": 1},
        ])));
        let dns = CloudflareDns::from_settings(&http, &settings).unwrap();
        let records = dns.list_records("example.com").unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].id, "r1");
        assert!(records[0].entry.proxied);
    }
}
