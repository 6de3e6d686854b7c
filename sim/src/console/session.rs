//! One upstream console session: the upgraded connection, relayed as WebSocket frames to the
//! proxy's server (RFB or termproxy), until either side ends or the session is cut. Ending frees
//! the port and finishes the proxy's task.

use super::proxies::{Claimed, ProxyKind};
use super::{passthrough, rfb, term, websocket};
use crate::state::{SimState, lock};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

/// The proxy's end of the connection buffers this much before the relay waits for it.
const PIPE_CAPACITY: usize = 16 * 1024;

pub struct Session {
    pub state: Arc<SimState>,
    pub node: String,
    pub vmid: u32,
    pub port: u16,
    pub name: String,
    pub claimed: Claimed,
}

impl Session {
    pub async fn run(self, upgrade: hyper::upgrade::OnUpgrade) {
        let Session {
            state,
            node,
            vmid,
            port,
            name,
            claimed,
        } = self;
        let Claimed {
            session,
            kind,
            user,
            cut,
        } = claimed;
        match upgrade.await {
            Ok(upgraded) => {
                let (wire, proxy_end) = tokio::io::duplex(PIPE_CAPACITY);
                let server = tokio::spawn(serve_proxy(
                    state.clone(),
                    vmid,
                    name,
                    kind,
                    user,
                    proxy_end,
                ));
                tokio::select! {
                    relayed = websocket::relay(TokioIo::new(upgraded), wire) => {
                        if let Err(err) = relayed {
                            tracing::debug!(vmid, port, %err, "console websocket ended");
                        }
                    }
                    _ = cut => tracing::info!(vmid, port, "console session cut"),
                }
                server.abort();
            }
            Err(err) => tracing::debug!(vmid, port, %err, "console upgrade failed"),
        }
        let closed = lock(&state.consoles.proxies).close(&node, port, session);
        if let Some(proxy) = closed {
            super::api::finish_task(&state, &proxy.upid, Ok(()));
        }
    }
}

/// What listens on the proxy's port: QEMU's VNC server (ours, or a real one fronted), or
/// termproxy.
async fn serve_proxy(
    state: Arc<SimState>,
    vmid: u32,
    name: String,
    kind: ProxyKind,
    user: String,
    stream: tokio::io::DuplexStream,
) {
    let backend = lock(&state.cluster)
        .vms
        .get(&vmid)
        .and_then(|vm| vm.vnc_backend.clone());
    let result = match kind {
        ProxyKind::Vnc { password } => match backend {
            Some(backend) => passthrough::serve(stream, &password, &backend).await,
            None => {
                let screen = state.consoles.screen(vmid, &name);
                rfb::serve(stream, &password, screen, &name)
                    .await
                    .map_err(Into::into)
            }
        },
        ProxyKind::Term { ticket } => term::serve(stream, &user, &ticket, &name).await,
    };
    if let Err(err) = result {
        tracing::debug!(vmid, %err, "console server ended");
    }
}
