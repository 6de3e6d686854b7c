//! Consoles, as a PVE node runs them: `vncproxy`/`termproxy` open a one-shot proxy on a port
//! 5900–5999 of the node and hand out a short-lived VNC ticket bound to user, VM and port;
//! `vncwebsocket` checks the ticket, upgrades to a WebSocket the way pveproxy does (RFC 6455 v13,
//! no extensions, no fragments, 128 KiB frames) and connects it to the proxy. Behind the proxy is
//! either the simulator's own RFB 3.8 server drawing a text console, or termproxy's line shell.
//!
//! This module owns the proxy table, the VNC ticket key and each VM's screen. It reads the cluster
//! only for a VM's name and power state and never changes it.

mod api;
mod font;
mod passthrough;
mod proxies;
pub(crate) mod rfb;
mod screen;
mod session;
mod term;
mod ticket;
mod websocket;

pub use api::{switch_protocols, termproxy, vncproxy, vncwebsocket};
pub use websocket::WebSocketRequest;

use crate::state::lock;
use proxies::ProxyTable;
use screen::Screen;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Whether `vncproxy` returns a separate VNC `password` (qemu-server ≥ 9.1.7) or only the ticket,
/// whose first 8 bytes are then the VNC password (older qemu-server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VncPasswordMode {
    #[default]
    Returned,
    TicketOnly,
}

/// The consoles of the whole cluster.
pub struct Consoles {
    tickets: ticket::TicketKey,
    proxies: Mutex<ProxyTable>,
    /// One screen per VM, shared by all its viewers like a real VM's display.
    screens: Mutex<HashMap<u32, Arc<Screen>>>,
    /// The node certificate `vncproxy` returns in `cert`; set once the TLS identity exists.
    cert_pem: OnceLock<String>,
}

impl Default for Consoles {
    fn default() -> Self {
        Self {
            tickets: ticket::TicketKey::generate(),
            proxies: Mutex::default(),
            screens: Mutex::default(),
            cert_pem: OnceLock::new(),
        }
    }
}

impl Consoles {
    pub fn set_cert_pem(&self, pem: String) {
        let _ = self.cert_pem.set(pem);
    }

    /// Upstream sessions currently connected to a VM's proxies.
    pub fn live_sessions(&self, vmid: u32) -> usize {
        lock(&self.proxies).live_sessions(vmid)
    }

    /// Cuts a VM's live sessions without a close frame, as when the node or QEMU goes away.
    /// Returns how many were cut.
    pub fn cut_sessions(&self, vmid: u32) -> usize {
        lock(&self.proxies).cut(Some(vmid))
    }

    /// Cuts every live session; used when the simulator shuts down.
    pub fn cut_all(&self) -> usize {
        lock(&self.proxies).cut(None)
    }

    /// The text on a VM's console screen, if anyone has looked at it yet.
    pub fn screen_text(&self, vmid: u32) -> Option<Vec<String>> {
        lock(&self.screens).get(&vmid).map(|screen| screen.text())
    }

    fn screen(&self, vmid: u32, name: &str) -> Arc<Screen> {
        lock(&self.screens)
            .entry(vmid)
            .or_insert_with(|| Arc::new(Screen::new(name)))
            .clone()
    }
}
