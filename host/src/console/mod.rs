//! The browser console relay: single-use console tokens, the WebSocket relay between a browser
//! and a Proxmox node's `vncwebsocket`, the registry of live sessions, and their audit records.
//!
//! How a console opens (DESIGN §6):
//!
//! 1. [`tokens`]: `POST /vms/{id}/console` mints a single-use token bound to user, service and
//!    kind, valid for at most 30 s.
//! 2. `GET /console/ws?token=…` checks Origin, redeems the token, and upgrades.
//! 3. [`upstream`]: the daemon calls `vncproxy`/`termproxy` on the VM's node, opens the
//!    `vncwebsocket` on the host that answered, and completes the VNC security handshake
//!    ([`rfb`]) or the termproxy preamble itself.
//! 4. [`relay`]: the browser is offered VNC security type None, then bytes flow both ways with
//!    backpressure, keepalive, idle and lifetime limits until one side ends, the VM is revoked
//!    ([`ConsoleHub::revoke`] on this daemon, or [`watch`] noticing another daemon's) or an
//!    operator closes the session.
//! 5. [`records`]: a `console_sessions` row per session and audit entries for every open, close
//!    and refusal.
//!
//! What the browser can learn is exactly: RFB 3.8 with security None, the VM's own screen or
//! terminal bytes, and close codes from [`CloseReason`]. Tickets, VNC passwords, node names and
//! addresses stay on this side; Proxmox errors go to the audit log and the daemon's log only.
//!
//! The relay never touches plugins, and reaches Proxmox only through [`crate::proxmox::Client`].

mod close;
mod frames;
mod grants;
mod hub;
mod limits;
pub mod records;
mod relay;
mod rfb;
mod session;
pub mod tokens;
mod upstream;
mod watch;

pub use close::{CloseReason, Revocation};
pub use grants::MintError;
pub use hub::{Admission, CapacityRefusal, ConsoleCounters, ConsoleHub, LiveSessionView};
pub use limits::ConsoleLimits;
pub use session::{SessionRequest, close_at_once, run_session};
pub use tokens::{ConsoleKind, Grant, IssuedToken, TokenRefusal};
