//! The three console endpoints. `vncproxy` and `termproxy` start a proxy task on a free port and
//! answer its ticket; `vncwebsocket` checks the ticket against the caller (the API part, run by
//! the normal request pipeline), and `switch_protocols` connects the upgraded connection to the
//! proxy.

use super::proxies::{Proxy, ProxyKind, ProxyState};
use super::ticket::Binding;
use super::{VncPasswordMode, WebSocketRequest, session};
use crate::cluster::PowerState;
use crate::endpoints::Call;
use crate::error::ApiError;
use crate::state::{SimState, lock};
use crate::tasks::Task;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `POST /nodes/{node}/qemu/{vmid}/vncproxy`.
pub fn vncproxy(call: &Call<'_>) -> Result<Value, ApiError> {
    let target = Target::from_params(call.params)?;
    target.check_running(call.state)?;
    let password = match call.state.config.vnc_password {
        VncPasswordMode::Returned => Some(generate_password()),
        VncPasswordMode::TicketOnly => None,
    };
    let opened = open_proxy(call, &target, |ticket| ProxyKind::Vnc {
        password: password.clone().unwrap_or_else(|| ticket.to_owned()),
    })?;
    let mut answer = json!({
        "user": opened.user,
        "ticket": opened.ticket,
        "port": opened.port,
        "upid": opened.upid,
        "cert": call.state.consoles.cert_pem.get().cloned().unwrap_or_default(),
    });
    if let Some(password) = password {
        answer["password"] = json!(password);
    }
    Ok(answer)
}

/// `POST /nodes/{node}/qemu/{vmid}/termproxy`.
pub fn termproxy(call: &Call<'_>) -> Result<Value, ApiError> {
    let target = Target::from_params(call.params)?;
    target.check_running(call.state)?;
    let opened = open_proxy(call, &target, |ticket| ProxyKind::Term {
        ticket: ticket.to_owned(),
    })?;
    Ok(json!({
        "user": opened.user,
        "ticket": opened.ticket,
        "port": opened.port,
        "upid": opened.upid,
    }))
}

/// `GET /nodes/{node}/qemu/{vmid}/vncwebsocket`: the ticket must have been issued to the caller
/// for this VM and port, and still be fresh.
pub fn vncwebsocket(call: &Call<'_>) -> Result<Value, ApiError> {
    let target = Target::from_params(call.params)?;
    let port = port_param(call.params)?;
    let user = call
        .identity
        .as_ref()
        .map(|i| i.user.as_str())
        .unwrap_or_default();
    let ticket = call
        .params
        .get("vncticket")
        .map(String::as_str)
        .unwrap_or_default();
    let binding = Binding {
        user,
        vmid: target.vmid,
        port,
    };
    let state = call.state;
    let lifetime = state.config.console_ticket_lifetime.as_secs();
    if !state
        .consoles
        .tickets
        .verify(ticket, binding, state.now(), lifetime)
    {
        return Err(ApiError::unauthorized(
            "permission denied - invalid vnc ticket",
        ));
    }
    lock(&state.cluster).vm(&target.node, target.vmid)?;
    Ok(json!({ "port": port.to_string() }))
}

/// After `vncwebsocket` passed: connects the WebSocket to the proxy on `port`, which accepts only
/// its one connection within the connect window, and answers `101 Switching Protocols`.
pub fn switch_protocols(
    state: &Arc<SimState>,
    params: &BTreeMap<String, String>,
    websocket: WebSocketRequest,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let target = Target::from_params(params)?;
    let port = port_param(params)?;
    let refused = || {
        ApiError::internal(format!(
            "failed to connect to localhost:{port}: Connection refused"
        ))
    };
    let name = lock(&state.cluster)
        .vm(&target.node, target.vmid)
        .map(|vm| vm.name())
        .map_err(|_| refused())?;
    let claimed = {
        let mut proxies = lock(&state.consoles.proxies);
        expire_stale(state, &mut proxies);
        proxies.claim(
            &target.node,
            port,
            target.vmid,
            state.clock(),
            state.config.console_connect_window,
        )
    }
    .ok_or_else(refused)?;
    let (response, upgrade) = websocket.accept();
    let session = session::Session {
        state: state.clone(),
        node: target.node,
        vmid: target.vmid,
        port,
        name,
        claimed,
    };
    tokio::spawn(session.run(upgrade));
    Ok(response)
}

struct Target {
    node: String,
    vmid: u32,
}

impl Target {
    fn from_params(params: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        let node = params.get("node").cloned().unwrap_or_default();
        let vmid = params
            .get("vmid")
            .and_then(|v| v.trim_start_matches('+').parse().ok())
            .ok_or_else(|| {
                ApiError::param(
                    "vmid",
                    "invalid format - value does not look like a valid VM ID",
                )
            })?;
        Ok(Self { node, vmid })
    }

    /// qemu-server's `check_running`: the VM must exist on this node and run.
    fn check_running(&self, state: &SimState) -> Result<(), ApiError> {
        let cluster = lock(&state.cluster);
        let vm = cluster.vm(&self.node, self.vmid)?;
        if vm.power != PowerState::Running {
            return Err(ApiError::internal(format!("VM {} not running", self.vmid)));
        }
        Ok(())
    }
}

fn port_param(params: &BTreeMap<String, String>) -> Result<u16, ApiError> {
    params
        .get("port")
        .and_then(|p| p.trim_start_matches('+').parse().ok())
        .ok_or_else(|| ApiError::param("port", "type check ('integer') failed"))
}

struct Opened {
    user: String,
    ticket: String,
    port: u16,
    upid: String,
}

/// Finds a free port, starts the `vncproxy` task, issues the ticket and starts the connect-window
/// timer that takes the proxy down if nobody connects.
fn open_proxy(
    call: &Call<'_>,
    target: &Target,
    kind: impl FnOnce(&str) -> ProxyKind,
) -> Result<Opened, ApiError> {
    let state = call.state;
    let user = call
        .identity
        .as_ref()
        .map(|i| i.user.clone())
        .unwrap_or_default();
    let mut proxies = lock(&state.consoles.proxies);
    expire_stale(state, &mut proxies);
    let port = proxies.free_port(&target.node).ok_or_else(|| {
        ApiError::internal(format!(
            "unable to find free port ({}-{})",
            super::proxies::FIRST_PORT,
            super::proxies::LAST_PORT
        ))
    })?;
    let upid = start_task(state, &target.node, target.vmid, &user);
    let binding = Binding {
        user: &user,
        vmid: target.vmid,
        port,
    };
    let ticket = state.consoles.tickets.issue(binding, state.now());
    proxies.open(
        &target.node,
        port,
        Proxy {
            vmid: target.vmid,
            user: user.clone(),
            kind: kind(&ticket),
            upid: upid.clone(),
            opened: state.clock(),
            state: ProxyState::Listening,
        },
    );
    drop(proxies);
    spawn_connect_window(state.clone(), target.node.clone(), port, upid.clone());
    Ok(Opened {
        user,
        ticket,
        port,
        upid,
    })
}

fn expire_stale(state: &SimState, proxies: &mut super::proxies::ProxyTable) {
    let window = state.config.console_connect_window;
    for upid in proxies.expire_stale(state.clock(), window) {
        finish_task(state, &upid, Err("connection timed out".into()));
    }
}

fn start_task(state: &SimState, node: &str, vmid: u32, user: &str) -> String {
    let mut tasks = lock(&state.tasks);
    let pid = tasks.next_pid();
    let pstart = state.booted.elapsed().as_millis() as u64 / 10 + 1000;
    let task = Task::new(
        node,
        "vncproxy",
        &vmid.to_string(),
        user,
        pid,
        pstart,
        state.now(),
    );
    let upid = task.upid.clone();
    tasks.insert(task);
    upid
}

/// Ends a console task; `Ok` unless the proxy never saw its connection.
pub fn finish_task(state: &SimState, upid: &str, result: Result<(), String>) {
    if let Some(task) = lock(&state.tasks).get_mut(upid) {
        task.finish(result);
    }
}

fn spawn_connect_window(state: Arc<SimState>, node: String, port: u16, upid: String) {
    let window = state.config.console_connect_window;
    tokio::spawn(async move {
        tokio::time::sleep(window).await;
        let expired = lock(&state.consoles.proxies).expire(&node, port, &upid);
        if expired.is_some() {
            finish_task(&state, &upid, Err("connection timed out".into()));
        }
    });
}

/// Eight characters from an unambiguous alphabet, like qemu-server's generated VNC passwords.
fn generate_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..8)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}
