//! Opening the node's side of a console: `vncproxy`/`termproxy` on the VM's node, the
//! `vncwebsocket` on the host that answered, and the VNC authentication or termproxy preamble,
//! all with the daemon's own credentials. What comes back is a socket ready to relay.

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};

use super::close::CloseReason;
use super::frames::{ByteReader, ReadError};
use super::rfb::{self, RfbError};
use super::tokens::ConsoleKind;
use crate::proxmox::{Client, ConsoleSocket, ProxmoxError, UpstreamMessage};

/// A node-side console, authenticated and ready to relay.
pub(super) struct Upstream {
    pub socket: ConsoleSocket,
    /// Bytes the node sent past the handshake; they go to the browser first.
    pub leftover: Bytes,
}

/// Where a console is: the VM as the service records it.
pub(super) struct Target<'a> {
    pub client: &'a Client,
    pub node: &'a str,
    pub vmid: u32,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamError {
    #[error("proxy: {0}")]
    Proxy(ProxmoxError),
    #[error("websocket: {0}")]
    Socket(ProxmoxError),
    #[error("VNC handshake: {0}")]
    Vnc(RfbError),
    #[error("termproxy: {0}")]
    Term(String),
}

impl UpstreamError {
    /// Credentials refused anywhere on the way count as "unauthorized"; the rest as a failure.
    /// The detail (which names node and call) is for the audit log only.
    pub fn close_reason(&self) -> CloseReason {
        let unauthorized = matches!(
            self,
            Self::Proxy(ProxmoxError::Unauthorized { .. } | ProxmoxError::Forbidden { .. })
                | Self::Socket(ProxmoxError::Unauthorized { .. } | ProxmoxError::Forbidden { .. })
                | Self::Vnc(RfbError::AuthFailed(_))
        );
        if unauthorized {
            CloseReason::UpstreamUnauthorized(self.to_string())
        } else {
            CloseReason::UpstreamFailed(self.to_string())
        }
    }
}

pub(super) async fn open(target: Target<'_>, kind: ConsoleKind) -> Result<Upstream, UpstreamError> {
    match kind {
        ConsoleKind::Vnc => open_vnc(target).await,
        ConsoleKind::Term => open_term(target).await,
    }
}

async fn open_vnc(target: Target<'_>) -> Result<Upstream, UpstreamError> {
    let Target { client, node, vmid } = target;
    let proxy = client
        .vncproxy(node, vmid)
        .await
        .map_err(UpstreamError::Proxy)?;
    let mut socket = client
        .open_vncwebsocket(&proxy.endpoint, node, vmid, proxy.port, &proxy.ticket)
        .await
        .map_err(UpstreamError::Socket)?;
    let leftover = {
        let (mut sink, mut stream) = (&mut socket).split();
        let mut reader = ByteReader::new(&mut stream);
        rfb::authenticate_upstream(&mut reader, &mut sink, proxy.vnc_password())
            .await
            .map_err(UpstreamError::Vnc)?;
        reader.into_leftover()
    };
    Ok(Upstream { socket, leftover })
}

async fn open_term(target: Target<'_>) -> Result<Upstream, UpstreamError> {
    let Target { client, node, vmid } = target;
    let proxy = client
        .termproxy(node, vmid)
        .await
        .map_err(UpstreamError::Proxy)?;
    let mut socket = client
        .open_vncwebsocket(&proxy.endpoint, node, vmid, proxy.port, &proxy.ticket)
        .await
        .map_err(UpstreamError::Socket)?;
    // termproxy's preamble, sent as a text frame like Proxmox's own xterm.js client does.
    let preamble = format!("{}:{}\n", proxy.user, proxy.ticket.expose());
    socket
        .send(UpstreamMessage::Text(preamble.into()))
        .await
        .map_err(|e| UpstreamError::Term(format!("send: {e}")))?;
    let leftover = {
        let mut reader = ByteReader::new(&mut socket);
        let answer = reader.read_exact(2).await.map_err(|e| match e {
            ReadError::Closed => UpstreamError::Term("closed before accepting the ticket".into()),
            ReadError::Transport(e) => UpstreamError::Term(e),
        })?;
        if answer.as_ref() != b"OK" {
            return Err(UpstreamError::Term("the ticket was not accepted".into()));
        }
        reader.into_leftover()
    };
    Ok(Upstream { socket, leftover })
}
