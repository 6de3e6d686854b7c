//! Cuts Proxmox VE's API viewer schema (`apidoc.json`, ~1.2 MB) down to the endpoints the
//! simulator serves, so the simulator can embed it and validate requests exactly as pveproxy does,
//! without depending on files outside the repository.

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use std::path::Path;

/// The (method, path template) pairs `porthole-sim` implements. Everything else answers 501.
pub const SERVED: &[(&str, &str)] = &[
    ("POST", "/access/ticket"),
    ("GET", "/version"),
    ("GET", "/cluster/resources"),
    ("GET", "/cluster/nextid"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/storage"),
    ("GET", "/nodes/{node}/qemu"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    ("POST", "/nodes/{node}/qemu/{vmid}/vncproxy"),
    ("POST", "/nodes/{node}/qemu/{vmid}/termproxy"),
    ("GET", "/nodes/{node}/qemu/{vmid}/vncwebsocket"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    ),
    ("POST", "/nodes/{node}/vzdump"),
    ("GET", "/nodes/{node}/storage/{storage}/content"),
    ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("POST", "/nodes/{node}/qemu"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/ping"),
    ("POST", "/nodes/{node}/qemu/{vmid}/agent/set-user-password"),
    ("GET", "/nodes/{node}/qemu/{vmid}/rrddata"),
];

/// Human documentation the validator never reads; dropping it shrinks the file tenfold. Only text
/// values are documentation: under `properties` the same names are parameters (a VM's
/// `description`), whose definitions are objects and must stay.
const DOC_KEYS: &[&str] = &[
    "description",
    "verbose_description",
    "typetext",
    "format_description",
];

pub fn run(input: &Path, output: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let apidoc: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", input.display()))?;
    let trimmed = trim(&apidoc)?;
    let mut out = serde_json::to_string_pretty(&trimmed)?;
    out.push('\n');
    std::fs::write(output, out).with_context(|| format!("writing {}", output.display()))?;
    println!("wrote {} ({} endpoints)", output.display(), SERVED.len());
    Ok(())
}

/// Returns `[{path, info: {METHOD: {...}}}]` for the served endpoints, in `SERVED` order.
pub fn trim(apidoc: &Value) -> anyhow::Result<Value> {
    let mut by_path: Vec<(String, Map<String, Value>)> = Vec::new();
    for (method, path) in SERVED {
        let node =
            find_node(apidoc, path).with_context(|| format!("{path} is not in the schema"))?;
        let Some(info) = node.get("info").and_then(|i| i.get(*method)) else {
            bail!("{method} {path} is not in the schema");
        };
        let slot = match by_path.iter().position(|(p, _)| p == path) {
            Some(i) => &mut by_path[i].1,
            None => {
                by_path.push(((*path).to_owned(), Map::new()));
                let last = by_path.len() - 1;
                &mut by_path[last].1
            }
        };
        slot.insert((*method).to_owned(), strip_docs(info));
    }
    let entries = by_path
        .into_iter()
        .map(|(path, info)| serde_json::json!({ "path": path, "info": info }))
        .collect();
    Ok(Value::Array(entries))
}

fn find_node<'a>(node: &'a Value, path: &str) -> Option<&'a Value> {
    match node {
        Value::Array(items) => items.iter().find_map(|n| find_node(n, path)),
        Value::Object(obj) => {
            if obj.get("path").and_then(Value::as_str) == Some(path) {
                return Some(node);
            }
            obj.get("children").and_then(|c| find_node(c, path))
        }
        _ => None,
    }
}

fn strip_docs(value: &Value) -> Value {
    match value {
        Value::Object(obj) => Value::Object(
            obj.iter()
                .filter(|(k, v)| !(v.is_string() && DOC_KEYS.contains(&k.as_str())))
                .map(|(k, v)| (k.clone(), strip_docs(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_docs).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_served_methods_and_drops_documentation() {
        let doc = json!([{ "path": "/version", "info": {
            "GET": { "description": "API version details", "parameters": { "additionalProperties": 0 } },
            "PUT": { "parameters": {} } } }]);
        let out = strip_docs(find_node(&doc, "/version").unwrap_or(&Value::Null));
        assert_eq!(
            out["info"]["GET"],
            json!({ "parameters": { "additionalProperties": 0 } })
        );
    }

    #[test]
    fn keeps_parameters_that_share_a_documentation_keys_name() {
        let info = json!({ "parameters": { "properties": {
            "description": { "description": "Description for the VM.", "type": "string" } } } });
        let out = strip_docs(&info);
        assert_eq!(
            out["parameters"]["properties"]["description"],
            json!({ "type": "string" })
        );
    }
}
