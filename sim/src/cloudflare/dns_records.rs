//! `dns_records`: list (with `type` and `name` filters), get, create, replace (PUT), update
//! (PATCH) and delete, with Cloudflare's validation.

use super::envelope::{CfError, CfResult, json_object, ok, paged};
use super::store::{CloudflareState, Record, Zone, random_hex};
use super::time::now_rfc3339;
use super::zones::{Params, paging};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const RECORD_TYPES: [&str; 9] = ["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA", "PTR"];

fn zone_mut<'a>(zones: &'a mut [Zone], zone_id: &str) -> Result<&'a mut Zone, CfError> {
    zones
        .iter_mut()
        .find(|z| z.id == zone_id)
        .ok_or_else(|| CfError::route(&format!("/zones/{zone_id}/dns_records")))
}

/// Where record `id` is in `zone`, or Cloudflare's "Record does not exist." answer.
fn record_index(zone: &Zone, id: &str) -> Result<usize, CfError> {
    zone.records
        .iter()
        .position(|r| r.id == id)
        .ok_or_else(|| CfError::new(StatusCode::NOT_FOUND, 81044, "Record does not exist."))
}

pub async fn list(
    State(state): State<Arc<CloudflareState>>,
    Path(zone_id): Path<String>,
    Query(params): Params,
) -> CfResult {
    let mut store = state.store();
    let zone = zone_mut(&mut store.zones, &zone_id)?;
    let kind = params.get("type").map(|t| t.to_ascii_uppercase());
    let name = params
        .get("name")
        .or_else(|| params.get("name.exact"))
        .map(|n| n.to_ascii_lowercase());
    let records: Vec<Value> = zone
        .records
        .iter()
        .filter(|r| kind.as_ref().is_none_or(|k| &r.kind == k))
        .filter(|r| name.as_ref().is_none_or(|n| &r.name == n))
        .map(|r| r.to_json(zone))
        .collect();
    let (page, per_page) = paging(&params);
    paged(records, page, per_page)
}

pub async fn get_one(
    State(state): State<Arc<CloudflareState>>,
    Path((zone_id, record_id)): Path<(String, String)>,
) -> CfResult {
    let mut store = state.store();
    let zone = zone_mut(&mut store.zones, &zone_id)?;
    let index = record_index(zone, &record_id)?;
    ok(zone.records[index].to_json(zone))
}

pub async fn create(
    State(state): State<Arc<CloudflareState>>,
    Path(zone_id): Path<String>,
    body: Bytes,
) -> CfResult {
    let fields = json_object(&body)?;
    let mut store = state.store();
    let zone = zone_mut(&mut store.zones, &zone_id)?;
    let wanted = Wanted::parse(&fields, None, &zone.name)?;
    check_conflicts(zone, &wanted, None)?;
    let now = now_rfc3339();
    let record = Record {
        id: random_hex(16),
        name: wanted.name,
        kind: wanted.kind,
        content: wanted.content,
        ttl: wanted.ttl,
        proxied: wanted.proxied,
        created_on: now.clone(),
        modified_on: now,
    };
    let answer = record.to_json(zone);
    zone.records.push(record);
    ok(answer)
}

/// PUT: every field is given anew.
pub async fn replace(
    state: State<Arc<CloudflareState>>,
    path: Path<(String, String)>,
    body: Bytes,
) -> CfResult {
    overwrite(state, path, body, false)
}

/// PATCH: missing fields keep their values.
pub async fn update(
    state: State<Arc<CloudflareState>>,
    path: Path<(String, String)>,
    body: Bytes,
) -> CfResult {
    overwrite(state, path, body, true)
}

fn overwrite(
    State(state): State<Arc<CloudflareState>>,
    Path((zone_id, record_id)): Path<(String, String)>,
    body: Bytes,
    partial: bool,
) -> CfResult {
    let fields = json_object(&body)?;
    let mut store = state.store();
    let zone = zone_mut(&mut store.zones, &zone_id)?;
    let index = record_index(zone, &record_id)?;
    let base = partial.then(|| &zone.records[index]);
    let wanted = Wanted::parse(&fields, base, &zone.name)?;
    check_conflicts(zone, &wanted, Some(&record_id))?;
    let record = &mut zone.records[index];
    record.name = wanted.name;
    record.kind = wanted.kind;
    record.content = wanted.content;
    record.ttl = wanted.ttl;
    record.proxied = wanted.proxied;
    record.modified_on = now_rfc3339();
    ok(zone.records[index].to_json(zone))
}

pub async fn remove(
    State(state): State<Arc<CloudflareState>>,
    Path((zone_id, record_id)): Path<(String, String)>,
) -> CfResult {
    let mut store = state.store();
    let zone = zone_mut(&mut store.zones, &zone_id)?;
    let index = record_index(zone, &record_id)?;
    zone.records.remove(index);
    ok(json!({"id": record_id}))
}

/// A record's fields from a request body, validated and normalized.
struct Wanted {
    name: String,
    kind: String,
    content: String,
    ttl: u32,
    proxied: bool,
}

impl Wanted {
    /// `base` supplies missing fields (PATCH); without it `type`, `name`, `content` are required.
    fn parse(
        fields: &Map<String, Value>,
        base: Option<&Record>,
        zone: &str,
    ) -> Result<Self, CfError> {
        let text = |key: &str, current: Option<&str>| -> Result<String, CfError> {
            match fields.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(CfError::bad_request(
                    9020,
                    format!("Invalid {key}: must be a string"),
                )),
                None => current.map(str::to_owned).ok_or_else(|| {
                    CfError::bad_request(9005, format!("DNS record {key} is required"))
                }),
            }
        };
        let kind = text("type", base.map(|b| b.kind.as_str()))?.to_ascii_uppercase();
        if !RECORD_TYPES.contains(&kind.as_str()) {
            return Err(CfError::bad_request(
                9000,
                format!("DNS record type \"{kind}\" is invalid"),
            ));
        }
        let name = absolute_name(&text("name", base.map(|b| b.name.as_str()))?, zone)?;
        let content = check_content(&kind, &text("content", base.map(|b| b.content.as_str()))?)?;
        let proxied = match fields.get("proxied") {
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(CfError::bad_request(
                    9003,
                    "Invalid 'proxied' value, must be a boolean",
                ));
            }
            None => base.is_some_and(|b| b.proxied),
        };
        if proxied && !matches!(kind.as_str(), "A" | "AAAA" | "CNAME") {
            return Err(CfError::bad_request(
                9004,
                "This record type cannot be proxied.",
            ));
        }
        let ttl = match fields.get("ttl") {
            Some(value) => value
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(0),
            None => base.map_or(1, |b| b.ttl),
        };
        if ttl != 1 && !(60..=86_400).contains(&ttl) {
            return Err(CfError::bad_request(
                9021,
                "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
            ));
        }
        // Proxied records always have the automatic TTL.
        let ttl = if proxied { 1 } else { ttl };
        Ok(Wanted {
            name,
            kind,
            content,
            ttl,
            proxied,
        })
    }
}

/// `@` is the apex, a name inside the zone stays, any other name is relative to the zone.
fn absolute_name(name: &str, zone: &str) -> Result<String, CfError> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let name = if name.is_empty() || name == "@" {
        zone.to_owned()
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    };
    let valid = name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        });
    if valid {
        Ok(name)
    } else {
        Err(CfError::bad_request(9000, "DNS name is invalid."))
    }
}

fn check_content(kind: &str, content: &str) -> Result<String, CfError> {
    let invalid = |what: &str| {
        CfError::bad_request(
            9005,
            format!("Content for {kind} record is invalid. Must be {what}."),
        )
    };
    match kind {
        "A" => content
            .parse::<Ipv4Addr>()
            .map(|a| a.to_string())
            .map_err(|_| invalid("a valid IPv4 address")),
        "AAAA" => content
            .parse::<Ipv6Addr>()
            .map(|a| a.to_string())
            .map_err(|_| invalid("a valid IPv6 address")),
        "CNAME" | "PTR" if content.trim().is_empty() || content.contains(char::is_whitespace) => {
            Err(invalid("a valid hostname"))
        }
        "CNAME" | "PTR" => Ok(content.trim_end_matches('.').to_ascii_lowercase()),
        _ if content.is_empty() || content.len() > 4096 => {
            Err(invalid("between 1 and 4096 characters"))
        }
        _ => Ok(content.to_owned()),
    }
}

/// Cloudflare refuses an identical record (81057) and a CNAME next to any A/AAAA/CNAME of the
/// same name, or an A/AAAA next to a CNAME (81053).
fn check_conflicts(zone: &Zone, wanted: &Wanted, except: Option<&str>) -> Result<(), CfError> {
    let same_name = zone
        .records
        .iter()
        .filter(|r| r.name == wanted.name && Some(r.id.as_str()) != except);
    for record in same_name {
        if record.kind == wanted.kind && record.content == wanted.content {
            return Err(CfError::bad_request(
                81057,
                "An identical record already exists.",
            ));
        }
        let address_or_cname = |k: &str| matches!(k, "A" | "AAAA" | "CNAME");
        let cname_involved = record.kind == "CNAME" || wanted.kind == "CNAME";
        if cname_involved && address_or_cname(&record.kind) && address_or_cname(&wanted.kind) {
            return Err(CfError::bad_request(
                81053,
                "An A, AAAA, or CNAME record with that host already exists.",
            ));
        }
    }
    Ok(())
}
