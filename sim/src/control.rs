//! The control API: plain HTTP on its own loopback port, never part of the PVE surface. Tests,
//! benchmarks and the demo use it to read recorded requests, inject faults, seed VMs and look at
//! the cluster state.

use crate::cluster::VmSeed;
use crate::faults::Fault;
use crate::state::SimState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn serve(
    listener: TcpListener,
    state: Arc<SimState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/requests", get(requests).delete(clear_requests))
        .route("/faults", post(inject).delete(clear_faults))
        .route("/state", get(cluster_state))
        .route("/vms", post(add_vm))
        .route(
            "/vms/{vmid}/consoles",
            get(console_sessions).delete(drop_console_sessions),
        )
        .route("/vms/{vmid}/agent", get(agent).put(set_agent))
        .with_state(state);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(%err, "control API stopped");
    }
}

type Shared = State<Arc<SimState>>;

async fn requests(State(state): Shared) -> Json<Value> {
    Json(json!(state.requests()))
}

async fn clear_requests(State(state): Shared) -> StatusCode {
    state.clear_requests();
    StatusCode::NO_CONTENT
}

async fn inject(State(state): Shared, Json(fault): Json<Fault>) -> (StatusCode, Json<Value>) {
    match state.inject(fault) {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "ok": true }))),
        Err(err) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": format!("invalid path pattern: {err}") })),
        ),
    }
}

async fn clear_faults(State(state): Shared) -> StatusCode {
    state.clear_faults();
    StatusCode::NO_CONTENT
}

async fn cluster_state(State(state): Shared) -> Json<Value> {
    Json(state.state_json())
}

async fn add_vm(State(state): Shared, Json(seed): Json<VmSeed>) -> (StatusCode, Json<Value>) {
    match state.add_vm(&seed) {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({ "vmid": seed.vmid, "node": seed.node })),
        ),
        Err(err) => (StatusCode::CONFLICT, Json(json!({ "error": err.message }))),
    }
}

/// `GET /vms/{vmid}/consoles`: `{"sessions": n}`, the VM's live upstream console sessions.
async fn console_sessions(State(state): Shared, Path(vmid): Path<u32>) -> Json<Value> {
    Json(json!({ "sessions": state.consoles.live_sessions(vmid) }))
}

/// `DELETE /vms/{vmid}/consoles`: cuts them mid-session; answers `{"cut": n}`.
async fn drop_console_sessions(State(state): Shared, Path(vmid): Path<u32>) -> Json<Value> {
    Json(json!({ "cut": state.consoles.cut_sessions(vmid) }))
}

/// `GET /vms/{vmid}/agent`: `{"up": bool, "passwords": {"root": "…"}, "crypted": {"root":
/// false}}` — whether the guest agent answers, and the last password `set-user-password` set
/// per user; 404 `{"error": …}` for an unknown VM.
async fn agent(State(state): Shared, Path(vmid): Path<u32>) -> (StatusCode, Json<Value>) {
    match state.agent_json(vmid) {
        Some(agent) => (StatusCode::OK, Json(agent)),
        None => no_such_vm(vmid),
    }
}

#[derive(serde::Deserialize)]
struct AgentUpdate {
    up: bool,
}

/// `PUT /vms/{vmid}/agent` with `{"up": false}` stops the agent in the guest (`{"up": true}`
/// starts it again); answers like `GET`.
async fn set_agent(
    State(state): Shared,
    Path(vmid): Path<u32>,
    Json(update): Json<AgentUpdate>,
) -> (StatusCode, Json<Value>) {
    if !state.set_agent_up(vmid, update.up) {
        return no_such_vm(vmid);
    }
    agent(State(state), Path(vmid)).await
}

fn no_such_vm(vmid: u32) -> (StatusCode, Json<Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no VM {vmid}") })),
    )
}
