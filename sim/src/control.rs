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
