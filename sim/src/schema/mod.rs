//! The PVE API schema the simulator serves (a trimmed copy of Proxmox VE's `apidoc.json`, made
//! by `cargo xtask trim-schema`), request routing against its path templates, and parameter
//! validation that mirrors `PVE::JSONSchema`: same checks, same order, same wording.
//!
//! Everything here is pure: it sees strings in and verdicts out, never the network or state.

mod formats;

pub use formats::split_list;

use serde_json::Value;
use std::collections::BTreeMap;

/// The trimmed schema, embedded so the simulator needs nothing outside the repository.
const EMBEDDED: &str = include_str!("../../schema/pve-api.json");

/// Per-parameter error messages, keyed by parameter name (or `param.key` inside property strings).
pub type ParamErrors = BTreeMap<String, String>;

#[derive(Debug)]
pub struct Schema {
    endpoints: Vec<Endpoint>,
}

#[derive(Debug)]
struct Endpoint {
    template: String,
    segments: Vec<Segment>,
    methods: BTreeMap<String, Method>,
    /// The last `{param}` takes the rest of the path, slashes included.
    greedy_tail: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One API method: what pveproxy needs before calling the handler.
#[derive(Debug, Clone)]
pub struct Method {
    /// API tokens may call it (`allowtoken`).
    pub allow_token: bool,
    /// No authentication needed (`permissions.user = world`), e.g. `POST /access/ticket`.
    pub world: bool,
    /// The parameter naming the node the call is proxied to (`proxyto`).
    pub proxy_to: Option<String>,
    parameters: Value,
}

/// A request path resolved to an endpoint.
#[derive(Debug, Clone)]
pub struct Route<'a> {
    /// The path template, e.g. `/nodes/{node}/qemu/{vmid}/config`; handlers dispatch on it.
    pub template: &'a str,
    pub method: &'a Method,
    /// Values of the `{param}` segments.
    pub path_params: BTreeMap<String, String>,
}

impl Schema {
    pub fn embedded() -> anyhow::Result<Self> {
        Self::parse(EMBEDDED)
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let entries: Vec<Value> = serde_json::from_str(text)?;
        let endpoints = entries.iter().filter_map(Endpoint::from_json).collect();
        Ok(Self { endpoints })
    }

    /// Finds the endpoint for `method path` (path relative to `/api2/json`). Literal segments win
    /// over `{param}` segments, as in PVE's router. pveproxy percent-decodes the path before it
    /// splits it, so `local%3Abackup%2Fvzdump-…` and `local:backup/vzdump-…` reach the same volume.
    pub fn route(&self, method: &str, path: &str) -> Option<Route<'_>> {
        let decoded = crate::auth::percent_decode(path);
        let parts: Vec<&str> = decoded.trim_matches('/').split('/').collect();
        self.endpoints
            .iter()
            .filter_map(|e| e.matches(&parts).map(|params| (e, params)))
            .filter_map(|(e, params)| e.methods.get(method).map(|m| (e, m, params)))
            .max_by_key(|(e, _, _)| e.literal_count())
            .map(|(e, m, path_params)| Route {
                template: &e.template,
                method: m,
                path_params,
            })
    }
}

impl Endpoint {
    fn from_json(entry: &Value) -> Option<Self> {
        let template = entry.get("path")?.as_str()?.to_owned();
        let segments = template
            .trim_matches('/')
            .split('/')
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        let methods = entry
            .get("info")?
            .as_object()?
            .iter()
            .map(|(name, info)| (name.clone(), Method::from_json(info)))
            .collect();
        // pve-storage registers the content subclass with `fragmentDelimiter => ''`: a volume ID
        // may contain slashes (`local:backup/vzdump-…`), so `{volume}` takes the whole rest.
        let greedy_tail = template.starts_with("/nodes/{node}/storage/{storage}/content/");
        Some(Self {
            template,
            segments,
            methods,
            greedy_tail,
        })
    }

    fn matches(&self, parts: &[&str]) -> Option<BTreeMap<String, String>> {
        let rest: String;
        let joined: Vec<&str>;
        let parts = match parts.len().cmp(&self.segments.len()) {
            std::cmp::Ordering::Equal => parts,
            std::cmp::Ordering::Greater if self.greedy_tail => {
                let last = self.segments.len() - 1;
                rest = parts[last..].join("/");
                joined = parts[..last]
                    .iter()
                    .copied()
                    .chain([rest.as_str()])
                    .collect();
                &joined
            }
            _ => return None,
        };
        let mut params = BTreeMap::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.insert(name.clone(), (*part).to_owned());
                }
                _ => return None,
            }
        }
        Some(params)
    }

    fn literal_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }
}

impl Method {
    fn from_json(info: &Value) -> Self {
        Self {
            allow_token: truthy(info.get("allowtoken")),
            world: info.pointer("/permissions/user").and_then(Value::as_str) == Some("world"),
            proxy_to: info
                .get("proxyto")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: info.get("parameters").cloned().unwrap_or(Value::Null),
        }
    }

    /// The schema entry of one parameter, `None` if the method does not define it.
    pub fn param_schema(&self, name: &str) -> Option<&Value> {
        property_schema(self.parameters.get("properties")?, name)
    }

    /// Validates all parameters (path, query and body merged) like `PVE::JSONSchema::validate`.
    pub fn validate(&self, params: &BTreeMap<String, String>) -> Result<(), ParamErrors> {
        let mut errors = ParamErrors::new();
        let properties = self.parameters.get("properties").unwrap_or(&Value::Null);
        let additional = truthy(self.parameters.get("additionalProperties"));
        if let Some(props) = properties.as_object() {
            for (name, schema) in props.iter().filter(|(name, _)| !name.ends_with("[n]")) {
                if !params.contains_key(name) && !truthy(schema.get("optional")) {
                    errors.insert(
                        name.clone(),
                        "property is missing and it is not optional".into(),
                    );
                }
            }
        }
        for (name, value) in params {
            match property_schema(properties, name) {
                Some(schema) => {
                    check_prop(schema, value, name, &mut errors);
                    check_requires(schema, name, params, &mut errors);
                }
                None if additional => {}
                None => {
                    errors.insert(name.clone(), UNDEFINED_PROPERTY.into());
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

const UNDEFINED_PROPERTY: &str =
    "property is not defined in schema and the schema does not allow additional properties";

/// Looks a parameter up, expanding the viewer's `name[n]` shorthand: PVE's real schema has
/// `net0` … `net31`, which `apidoc.json` compresses to `net[n]`.
fn property_schema<'a>(properties: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(schema) = properties.get(name) {
        return Some(schema);
    }
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, index) = name.split_at(name.len() - digits);
    let canonical_index = index == "0" || (!index.is_empty() && !index.starts_with('0'));
    let index: usize = index.parse().ok()?;
    if !canonical_index || index >= max_index(prefix) {
        return None;
    }
    properties.get(format!("{prefix}[n]"))
}

/// How many numbered instances of each `[n]` option qemu-server defines (its `MAX_*` constants).
fn max_index(prefix: &str) -> usize {
    match prefix {
        "ide" => 4,
        "sata" => 6,
        "scsi" => 31,
        "virtio" => 16,
        "net" | "ipconfig" => 32,
        "unused" => 256,
        "hostpci" => 16,
        "usb" => 14,
        "serial" => 4,
        "parallel" => 3,
        "numa" => 8,
        "virtiofs" => 10,
        _ => 0,
    }
}

fn check_requires(
    schema: &Value,
    name: &str,
    params: &BTreeMap<String, String>,
    errors: &mut ParamErrors,
) {
    if let Some(required) = schema.get("requires").and_then(Value::as_str)
        && !params.contains_key(required)
    {
        errors.insert(
            required.to_owned(),
            format!("missing property - '{name}' requires this property"),
        );
    }
}

/// `PVE::JSONSchema::check_prop` for a scalar value: type, format, pattern, length, range, enum,
/// in that order, stopping at the first failure.
pub(crate) fn check_prop(schema: &Value, value: &str, path: &str, errors: &mut ParamErrors) {
    if let Err(why) = check_scalar(schema, value, path) {
        errors.insert(path.to_owned(), why);
    }
}

fn check_scalar(schema: &Value, value: &str, path: &str) -> Result<(), String> {
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    check_type(ty, value)?;
    if let Some(format) = schema.get("format") {
        formats::check(format, value, path).map_err(|why| format!("invalid format - {why}"))?;
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !formats::matches_perl_pattern(pattern, value)
    {
        return Err("value does not match the regex pattern".into());
    }
    let length = value.chars().count();
    if let Some(max) = schema.get("maxLength").and_then(as_f64)
        && length as f64 > max
    {
        return Err(format!(
            "value may only be {} characters long",
            show(&schema["maxLength"])
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(as_f64)
        && (length as f64) < min
    {
        return Err(format!(
            "value must be at least {} characters long",
            show(&schema["minLength"])
        ));
    }
    check_range(schema, value)?;
    check_enum(schema, value)
}

fn check_type(ty: &str, value: &str) -> Result<(), String> {
    let ok = match ty {
        "integer" => is_integer(value),
        "number" => is_number(value),
        // Top-level booleans are 1 or 0 only (pve-common's check_type); the other spellings
        // parse_boolean knows are taken inside property strings, which normalise them first.
        "boolean" => value == "1" || value == "0",
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("type check ('{ty}') failed - got '{value}'"))
    }
}

fn check_range(schema: &Value, value: &str) -> Result<(), String> {
    if !is_number(value) {
        return Ok(());
    }
    let Ok(number) = value.parse::<f64>() else {
        return Ok(());
    };
    if let Some(max) = schema.get("maximum").and_then(as_f64)
        && number > max
    {
        return Err(format!(
            "value must have a maximum value of {}",
            show(&schema["maximum"])
        ));
    }
    if let Some(min) = schema.get("minimum").and_then(as_f64)
        && number < min
    {
        return Err(format!(
            "value must have a minimum value of {}",
            show(&schema["minimum"])
        ));
    }
    Ok(())
}

fn check_enum(schema: &Value, value: &str) -> Result<(), String> {
    let Some(values) = schema.get("enum").and_then(Value::as_array) else {
        return Ok(());
    };
    let names: Vec<String> = values.iter().map(show).collect();
    if names.iter().any(|n| n == value) {
        return Ok(());
    }
    Err(format!(
        "value '{value}' does not have a value in the enumeration '{}'",
        names.join(", ")
    ))
}

/// PVE's `is_integer`: an optionally signed run of decimal digits.
pub fn is_integer(value: &str) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// PVE's `is_number`: `^[+-]?(\d+|\d+\.\d*|\.\d+)([eE][+-]?\d+)?$`.
pub fn is_number(value: &str) -> bool {
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(is_integer)
}

/// PVE's `parse_boolean`: 1/true/yes/on and 0/false/no/off, case-insensitive.
pub fn parse_boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The schema stores flags as 0/1 and occasionally as strings.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => parse_boolean(s).unwrap_or(false),
        _ => false,
    }
}

/// Limits are numbers in most entries but strings in a few (`"minimum": "0"`).
fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Renders a schema value the way Perl interpolates it into a message.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
