//! Remotely managed tunnels: `cfd_tunnel` create, list, get, delete (refused while connectors
//! are connected), connection cleanup, `configurations` and the connector `token`.

use super::envelope::{CfError, CfResult, json_object, ok, paged};
use super::store::{CloudflareState, Store, Tunnel, random_hex, random_uuid};
use super::time::now_rfc3339;
use super::zones::{Params, paging};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use std::sync::Arc;

type TunnelPath = Path<(String, String)>;

/// A token for another account's path is an authentication error, as at Cloudflare.
fn check_account(state: &CloudflareState, account_id: &str) -> Result<(), CfError> {
    if account_id == state.account_id {
        Ok(())
    } else {
        Err(CfError::new(
            StatusCode::FORBIDDEN,
            10000,
            "Authentication error",
        ))
    }
}

fn tunnel_missing() -> CfError {
    CfError::new(StatusCode::NOT_FOUND, 1003, "Tunnel not found")
}

/// Any tunnel `id`, deleted ones included (GET shows them with `deleted_at`).
fn find<'a>(store: &'a mut Store, id: &str) -> Result<&'a mut Tunnel, CfError> {
    store
        .tunnels
        .iter_mut()
        .find(|t| t.id == id)
        .ok_or_else(tunnel_missing)
}

/// A tunnel that has not been deleted.
fn find_live<'a>(store: &'a mut Store, id: &str) -> Result<&'a mut Tunnel, CfError> {
    let tunnel = find(store, id)?;
    if tunnel.deleted_at.is_some() {
        return Err(tunnel_missing());
    }
    Ok(tunnel)
}

pub async fn create(
    State(state): State<Arc<CloudflareState>>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> CfResult {
    check_account(&state, &account_id)?;
    let fields = json_object(&body)?;
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() || name.len() > 64 {
        return Err(CfError::bad_request(
            1001,
            "Tunnel name is required and must be at most 64 characters",
        ));
    }
    let config_src = fields
        .get("config_src")
        .and_then(Value::as_str)
        .unwrap_or("local");
    if !matches!(config_src, "local" | "cloudflare") {
        return Err(CfError::bad_request(
            1001,
            "config_src must be \"local\" or \"cloudflare\"",
        ));
    }
    let mut store = state.store();
    if store
        .tunnels
        .iter()
        .any(|t| t.name == name && t.deleted_at.is_none())
    {
        return Err(CfError::new(
            StatusCode::CONFLICT,
            1013,
            "You already have a tunnel with this name",
        ));
    }
    let secret = match fields.get("tunnel_secret").and_then(Value::as_str) {
        Some(secret) => secret.to_owned(),
        None => BASE64.encode(random_hex(32)),
    };
    let tunnel = Tunnel {
        id: random_uuid(),
        name: name.to_owned(),
        created_at: now_rfc3339(),
        deleted_at: None,
        config_src: config_src.to_owned(),
        secret,
        connections: 0,
        config: None,
        config_version: 0,
    };
    let mut answer = tunnel.to_json(&state.account_id);
    answer["token"] = json!(connector_token(&state.account_id, &tunnel));
    store.tunnels.push(tunnel);
    ok(answer)
}

/// `name` filters exactly; `is_deleted=false` hides deleted tunnels, `true` shows only them.
pub async fn list(
    State(state): State<Arc<CloudflareState>>,
    Path(account_id): Path<String>,
    Query(params): Params,
) -> CfResult {
    check_account(&state, &account_id)?;
    let name = params.get("name");
    let deleted = params.get("is_deleted").map(|v| v == "true");
    let tunnels: Vec<Value> = state
        .store()
        .tunnels
        .iter()
        .filter(|t| name.is_none_or(|n| &t.name == n))
        .filter(|t| deleted.is_none_or(|d| t.deleted_at.is_some() == d))
        .map(|t| t.to_json(&state.account_id))
        .collect();
    let (page, per_page) = paging(&params);
    paged(tunnels, page, per_page)
}

pub async fn get_one(
    State(state): State<Arc<CloudflareState>>,
    Path((account_id, id)): TunnelPath,
) -> CfResult {
    check_account(&state, &account_id)?;
    let mut store = state.store();
    ok(find(&mut store, &id)?.to_json(&state.account_id))
}

pub async fn remove(
    State(state): State<Arc<CloudflareState>>,
    Path((account_id, id)): TunnelPath,
) -> CfResult {
    check_account(&state, &account_id)?;
    let mut store = state.store();
    let tunnel = find_live(&mut store, &id)?;
    if tunnel.connections > 0 {
        return Err(CfError::bad_request(
            1022,
            "Cannot delete tunnel because it has active connections",
        ));
    }
    tunnel.deleted_at = Some(now_rfc3339());
    ok(tunnel.to_json(&state.account_id))
}

pub async fn clean_connections(
    State(state): State<Arc<CloudflareState>>,
    Path((account_id, id)): TunnelPath,
) -> CfResult {
    check_account(&state, &account_id)?;
    let mut store = state.store();
    find_live(&mut store, &id)?.connections = 0;
    ok(Value::Null)
}

/// Cloudflared needs at least one rule, each with a service, and a last rule that matches
/// everything (no hostname, no path).
fn check_ingress(config: &Value) -> Result<(), CfError> {
    let invalid = |message: &str| CfError::bad_request(1056, message);
    let rules = config["ingress"]
        .as_array()
        .filter(|rules| !rules.is_empty())
        .ok_or_else(|| invalid("config.ingress must be a non-empty list of rules"))?;
    if rules
        .iter()
        .any(|rule| rule["service"].as_str().is_none_or(str::is_empty))
    {
        return Err(invalid("every ingress rule needs a service"));
    }
    let last = &rules[rules.len() - 1];
    if last.get("hostname").is_some() || last.get("path").is_some() {
        return Err(invalid(
            "The last ingress rule must match all URLs (i.e. it should not have a hostname or path)",
        ));
    }
    Ok(())
}

pub async fn put_configuration(
    State(state): State<Arc<CloudflareState>>,
    Path((account_id, id)): TunnelPath,
    body: Bytes,
) -> CfResult {
    check_account(&state, &account_id)?;
    let fields = json_object(&body)?;
    let config = fields.get("config").cloned().unwrap_or(Value::Null);
    check_ingress(&config)?;
    let mut store = state.store();
    let tunnel = find_live(&mut store, &id)?;
    if tunnel.config_src != "cloudflare" {
        return Err(CfError::bad_request(
            1055,
            "This tunnel is locally configured; its configuration cannot be managed remotely",
        ));
    }
    tunnel.config = Some(config);
    tunnel.config_version += 1;
    ok(configuration_json(tunnel))
}

pub async fn get_configuration(
    State(state): State<Arc<CloudflareState>>,
    Path((account_id, id)): TunnelPath,
) -> CfResult {
    check_account(&state, &account_id)?;
    let mut store = state.store();
    ok(configuration_json(find_live(&mut store, &id)?))
}

fn configuration_json(tunnel: &Tunnel) -> Value {
    json!({
        "tunnel_id": tunnel.id, "version": tunnel.config_version,
        "config": tunnel.config, "source": tunnel.config_src, "created_at": now_rfc3339(),
    })
}

pub async fn token(
    State(state): State<Arc<CloudflareState>>,
    Path((account_id, id)): TunnelPath,
) -> CfResult {
    check_account(&state, &account_id)?;
    let mut store = state.store();
    let tunnel = find_live(&mut store, &id)?;
    ok(connector_token(&state.account_id, tunnel))
}

/// What `cloudflared tunnel run --token` takes: base64 of `{"a": account, "t": tunnel, "s":
/// secret}`.
fn connector_token(account_id: &str, tunnel: &Tunnel) -> String {
    let inner = json!({"a": account_id, "t": tunnel.id, "s": tunnel.secret});
    BASE64.encode(inner.to_string())
}
