//! The `format` checks of `PVE::JSONSchema` the served endpoints use: named formats (`pve-vmid`,
//! `dns-name`, `urlencoded`, …, with PVE's `-list`/`-opt` suffixes) and property strings
//! (`key=value,…` with a default key and aliases). Formats the simulator does not know pass, so
//! an unknown format degrades to the type check, as the brief for the simulator asks.

use super::{ParamErrors, UNDEFINED_PROPERTY, check_prop, parse_boolean};
use regex::Regex;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

/// Checks `value` against a format: a format name or a property-string description.
/// `Err` carries PVE's `die` message, trailing newline included.
pub fn check(format: &Value, value: &str, path: &str) -> Result<(), String> {
    match format {
        Value::Object(keys) => parse_property_string(keys, value, path).map(|_| ()),
        Value::String(name) => check_named(name, value, path),
        _ => Ok(()),
    }
}

fn check_named(name: &str, value: &str, path: &str) -> Result<(), String> {
    if let Some(base) = name.strip_suffix("-list") {
        return split_list(value).try_for_each(|item| check_named(base, item, path));
    }
    if let Some(base) = name.strip_suffix("-opt") {
        return if value.is_empty() {
            Ok(())
        } else {
            check_named(base, value, path)
        };
    }
    if let Some(keys) = builtin_property_format(name) {
        return parse_property_string(keys, value, path)
            .and_then(|parsed| check_combination(name, &parsed));
    }
    check_simple(name, value)
}

/// `PVE::Tools::split_list`: items separated by commas, semicolons, whitespace or NULs.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', ';', ' ', '\t', '\n', '\r', '\0'])
        .filter(|s| !s.is_empty())
}

fn check_simple(name: &str, value: &str) -> Result<(), String> {
    let ok = |cond: bool, msg: String| if cond { Ok(()) } else { Err(msg + "\n") };
    match name {
        "pve-vmid" => ok(
            is_re(r"[1-9][0-9]{2,8}", value),
            "value does not look like a valid VM ID".into(),
        ),
        "pve-node" => ok(
            is_re(NODE_RE, value),
            "value does not look like a valid node name".into(),
        ),
        "pve-storage-id" => ok(
            is_re(STORAGE_RE, value),
            format!("storage ID '{value}' contains illegal characters"),
        ),
        "pve-configid" => ok(
            is_re(r"(?i)[a-z][a-z0-9_-]+", value),
            format!("invalid configuration ID '{value}'"),
        ),
        "dns-name" => ok(
            is_re(DNS_RE, value),
            "value does not look like a valid DNS name".into(),
        ),
        "pve-poolid" => ok(
            is_re(r"[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+){0,2}", value),
            format!("invalid pool ID '{value}'"),
        ),
        "pve-tag" => ok(is_re(TAG_RE, value), format!("invalid tag '{value}'")),
        "pve-realm" => ok(
            is_re(r"[A-Za-z][A-Za-z0-9\.\-_]+", value),
            format!("realm '{value}' contains illegal characters"),
        ),
        "urlencoded" => ok(
            is_re(r"[-%a-zA-Z0-9_.!~*'()]*", value),
            format!("invalid urlencoded string: {value}"),
        ),
        "pve-volume-id" => ok(
            is_volume_id(value),
            format!("unable to parse volume ID '{value}'"),
        ),
        "pve-volume-id-or-qm-path" | "pve-volume-id-or-absolute-path" => ok(
            value == "none" || value == "cdrom" || value.starts_with('/') || is_volume_id(value),
            format!("unable to parse volume ID '{value}'"),
        ),
        "pve-storage-content" => ok(
            [
                "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none",
            ]
            .contains(&value),
            format!("invalid content type '{value}'"),
        ),
        "mac-addr" => ok(
            is_re(r"(?i)[a-f0-9][02468ace](?::[a-f0-9]{2}){5}", value),
            format!("value '{value}' does not look like a valid unicast MAC address"),
        ),
        "pve-bridge-id" => ok(
            is_re(r"[-_.\w\d]+", value),
            format!("invalid bridge ID '{value}'"),
        ),
        "ipv4" => ok(
            value.parse::<std::net::Ipv4Addr>().is_ok(),
            "value does not look like a valid IPv4 address".into(),
        ),
        "ipv6" => ok(
            value.parse::<std::net::Ipv6Addr>().is_ok(),
            "value does not look like a valid IPv6 address".into(),
        ),
        "ip" => ok(
            value.parse::<std::net::IpAddr>().is_ok(),
            "value does not look like a valid IP address".into(),
        ),
        "CIDR" | "cidr" => ok(
            is_cidr(value, true) || is_cidr(value, false),
            "value does not look like a valid CIDR network".into(),
        ),
        "pve-ipv4-config" => ok(
            value == "dhcp" || is_cidr(value, true),
            "value does not look like a valid ipv4 network configuration".into(),
        ),
        "pve-ipv6-config" => ok(
            value == "dhcp" || value == "auto" || is_cidr(value, false),
            "value does not look like a valid ipv6 network configuration".into(),
        ),
        "disk-size" => ok(
            is_re(r"\d+(?:\.\d+)?[KMGT]?", value),
            format!("unable to parse size '{value}'"),
        ),
        _ => Ok(()),
    }
}

const NODE_RE: &str = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?";
const STORAGE_RE: &str = r"(?i)[a-z][a-z0-9\-_.]*[a-z0-9]";
const DNS_RE: &str = r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)";
const TAG_RE: &str = r"(?i)[a-z0-9_][a-z0-9_\-+.]*";

fn is_volume_id(value: &str) -> bool {
    value
        .split_once(':')
        .is_some_and(|(storage, rest)| is_re(STORAGE_RE, storage) && !rest.is_empty())
}

fn is_cidr(value: &str, v4: bool) -> bool {
    let Some((addr, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    // pve-common's CIDR checks take prefixes from 8 up, like qemu-server's ipconfig.
    if v4 {
        addr.parse::<std::net::Ipv4Addr>().is_ok() && (8..=32).contains(&bits)
    } else {
        addr.parse::<std::net::Ipv6Addr>().is_ok() && (8..=128).contains(&bits)
    }
}

/// Named formats that are property strings in PVE but appear only by name in `apidoc.json`.
fn builtin_property_format(name: &str) -> Option<&'static Map<String, Value>> {
    static FORMATS: LazyLock<HashMap<&'static str, Map<String, Value>>> = LazyLock::new(|| {
        let volume = json!({ "type": "string", "format": "pve-volume-id", "optional": 1 });
        let b64 = json!({ "type": "string", "optional": 1 });
        let objects = [
            (
                "pve-qm-ipconfig",
                json!({
                    "ip": { "type": "string", "format": "pve-ipv4-config", "optional": 1 },
                    "gw": { "type": "string", "format": "ipv4", "optional": 1 },
                    "ip6": { "type": "string", "format": "pve-ipv6-config", "optional": 1 },
                    "gw6": { "type": "string", "format": "ipv6", "optional": 1 },
                }),
            ),
            (
                "pve-qm-cicustom",
                json!({ "meta": volume, "network": volume, "user": volume, "vendor": volume }),
            ),
            (
                "pve-qm-smbios1",
                json!({
                    "uuid": { "type": "string", "optional": 1,
                              "pattern": "[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}" },
                    "base64": { "type": "boolean", "optional": 1 },
                    "family": b64, "manufacturer": b64, "product": b64, "serial": b64,
                    "sku": b64, "version": b64,
                }),
            ),
        ];
        objects
            .into_iter()
            .filter_map(|(name, keys)| match keys {
                Value::Object(map) => Some((name, map)),
                _ => None,
            })
            .collect()
    });
    FORMATS.get(name)
}

/// Cross-key rules of the built-in property formats (qemu-server's `verify_*` functions).
fn check_combination(name: &str, parsed: &BTreeMap<String, String>) -> Result<(), String> {
    match name {
        "pve-qm-ipconfig" => {
            let gw_without_ip = |gw, ip| {
                parsed.contains_key(gw)
                    && parsed.get(ip).is_none_or(|ip| ip == "dhcp" || ip == "auto")
            };
            if gw_without_ip("gw", "ip") || gw_without_ip("gw6", "ip6") {
                return Err("gateway specified without specifying an IP address\n".into());
            }
            Ok(())
        }
        "pve-qm-smbios1" if parsed.get("base64").and_then(|b| parse_boolean(b)) == Some(true) => {
            use base64::Engine as _;
            for key in [
                "family",
                "manufacturer",
                "product",
                "serial",
                "sku",
                "version",
            ] {
                if let Some(v) = parsed.get(key)
                    && base64::engine::general_purpose::STANDARD.decode(v).is_err()
                {
                    return Err(format!("{key}: invalid base64 value\n"));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `PVE::JSONSchema::parse_property_string`, then `check_object` on the result.
pub fn parse_property_string(
    keys: &Map<String, Value>,
    value: &str,
    path: &str,
) -> Result<BTreeMap<String, String>, String> {
    let parsed = split_property_string(keys, value)?;
    let mut errors = ParamErrors::new();
    for (key, schema) in keys.iter().filter(|(_, s)| s.get("alias").is_none()) {
        let sub_path = format!("{path}.{key}");
        match parsed.get(key) {
            // parse_property_string turns yes/on/true (any case) into 1 before checking.
            Some(v) if schema.get("type").and_then(Value::as_str) == Some("boolean") => {
                let normalised = parse_boolean(v).map_or(v.as_str(), |b| if b { "1" } else { "0" });
                check_prop(schema, normalised, &sub_path, &mut errors);
            }
            Some(v) => check_prop(schema, v, &sub_path, &mut errors),
            None if !super::truthy(schema.get("optional")) => {
                errors.insert(
                    sub_path,
                    "property is missing and it is not optional".into(),
                );
            }
            None => {}
        }
    }
    for key in parsed.keys().filter(|k| !keys.contains_key(*k)) {
        errors.insert(format!("{path}.{key}"), UNDEFINED_PROPERTY.into());
    }
    if errors.is_empty() {
        return Ok(parsed);
    }
    // PVE::Exception stringifies as the message followed by one "path: error" line per error.
    let details: String = errors.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    Err(format!("format error\n{details}"))
}

fn split_property_string(
    keys: &Map<String, Value>,
    value: &str,
) -> Result<BTreeMap<String, String>, String> {
    let default_key = keys
        .iter()
        .find(|(_, s)| super::truthy(s.get("default_key")))
        .map(|(k, _)| k.clone());
    let mut parsed = BTreeMap::new();
    for part in value.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, val) = match part.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => (k.to_owned(), v.to_owned()),
            Some(_) => return Err("missing key in comma-separated list property\n".into()),
            None => {
                let key = default_key
                    .clone()
                    .ok_or("value without key, but schema does not define a default key\n")?;
                (key, part.to_owned())
            }
        };
        let (key, val) = resolve_alias(keys, key, val, &mut parsed)?;
        if parsed.insert(key.clone(), val).is_some() {
            return Err(format!(
                "duplicate key in comma-separated list property: {key}\n"
            ));
        }
    }
    Ok(parsed)
}

/// `virtio=BC:24:…` in `net0` means `model=virtio,macaddr=BC:24:…` (`alias` + `keyAlias`).
fn resolve_alias(
    keys: &Map<String, Value>,
    key: String,
    val: String,
    parsed: &mut BTreeMap<String, String>,
) -> Result<(String, String), String> {
    let Some(schema) = keys.get(&key) else {
        return Err(format!(
            "invalid key in comma-separated list property: {key}\n"
        ));
    };
    let Some(alias) = schema.get("alias").and_then(Value::as_str) else {
        return Ok((key, val));
    };
    if let Some(key_alias) = schema.get("keyAlias").and_then(Value::as_str)
        && parsed.insert(key_alias.to_owned(), key.clone()).is_some()
    {
        return Err(format!("key alias '{key_alias}' is already defined\n"));
    }
    Ok((alias.to_owned(), val))
}

/// Matches like Perl's `m/^$pattern$/`. Patterns come from Perl: `(?^:…)` is a stringified
/// qr// group, which Rust's regex spells `(?:…)`. A pattern Rust cannot compile is not checked.
pub fn matches_perl_pattern(pattern: &str, value: &str) -> bool {
    let anchored = format!("^(?:{})$", pattern.replace("(?^:", "(?:"));
    cached_regex(&anchored).is_none_or(|re| re.is_match(value))
}

fn is_re(pattern: &str, value: &str) -> bool {
    cached_regex(&format!("^(?:{pattern})$")).is_some_and(|re| re.is_match(value))
}

/// Compiling a regex costs far more than matching one, and the same few patterns are checked on
/// every request.
fn cached_regex(anchored: &str) -> Option<Regex> {
    static CACHE: LazyLock<Mutex<HashMap<String, Option<Regex>>>> = LazyLock::new(Default::default);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(anchored.to_owned())
        .or_insert_with(|| Regex::new(anchored).ok())
        .clone()
}
