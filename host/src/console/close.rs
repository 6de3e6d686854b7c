//! Why a console session ended: the WebSocket close code and text the browser sees, and the
//! label and detail the audit log keeps. The browser's text is fixed per reason, so no Proxmox
//! message (which can name nodes) ever reaches it; the detail is for operators only.
//!
//! This is the one place close codes are chosen; the panel's `CLOSES` table
//! (`panel-ui/src/pages/console.ts`) explains each 40xx code to the user and must follow it.

use super::hub::CapacityRefusal;
pub use crate::service_state::Revocation;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The browser closed the WebSocket (or its connection went away).
    BrowserClosed,
    /// The browser answered no ping, and sent nothing else, within the pong timeout: it is gone
    /// without its TCP connection having closed (a sleeping laptop, a dropped network path).
    BrowserUnresponsive,
    /// The node ended the console (the VM stopped, the proxy exited, the connection dropped).
    UpstreamClosed(String),
    /// The node refused our credentials for `vncproxy`/`termproxy` or the WebSocket.
    UpstreamUnauthorized(String),
    /// The console could not be opened on the node (unreachable, refused, handshake failed).
    UpstreamFailed(String),
    /// The VM was suspended or terminated.
    Revoked(Revocation),
    /// A session cap was reached between minting the token and opening the WebSocket (another
    /// console of the user, or of anyone, took the last place).
    LimitReached(CapacityRefusal),
    /// An operator closed this session.
    ClosedByOperator,
    /// No bytes either way for the configured idle timeout.
    Idle,
    /// The session reached its maximum lifetime.
    Lifetime,
    /// The daemon is stopping.
    Shutdown,
    /// The browser broke the protocol (e.g. not RFB 3.7/3.8).
    BrowserProtocol(String),
}

impl CloseReason {
    /// One reason of each kind, for documenting every close code a browser can see.
    pub fn one_of_each() -> Vec<CloseReason> {
        vec![
            Self::BrowserClosed,
            Self::Shutdown,
            Self::BrowserProtocol(String::new()),
            Self::UpstreamFailed(String::new()),
            Self::Revoked(Revocation::Suspended),
            Self::ClosedByOperator,
            Self::Revoked(Revocation::Terminated),
            Self::Idle,
            Self::Lifetime,
            Self::UpstreamClosed(String::new()),
            Self::BrowserUnresponsive,
            Self::LimitReached(CapacityRefusal::PerUser(0)),
            Self::LimitReached(CapacityRefusal::Total(0)),
        ]
    }

    /// The WebSocket close code: 1000–1011 where a standard one fits, 40xx for the reasons a
    /// console UI explains to the user.
    pub fn code(&self) -> u16 {
        match self {
            Self::BrowserClosed => 1000,
            Self::Shutdown => 1001,
            Self::BrowserProtocol(_) => 1002,
            Self::UpstreamFailed(_) | Self::UpstreamUnauthorized(_) => 1011,
            Self::Revoked(Revocation::Suspended) => 4003,
            Self::ClosedByOperator => 4004,
            Self::Revoked(Revocation::Terminated) => 4005,
            Self::Idle => 4008,
            Self::Lifetime => 4009,
            Self::UpstreamClosed(_) => 4010,
            Self::BrowserUnresponsive => 4011,
            Self::LimitReached(_) => 4029,
        }
    }

    /// What the browser is told; fixed text, safe to show.
    pub fn browser_text(&self) -> &'static str {
        match self {
            Self::BrowserClosed => "closed",
            Self::BrowserUnresponsive => "the browser stopped answering",
            Self::Shutdown => "the panel is restarting",
            Self::BrowserProtocol(_) => "unsupported console protocol",
            Self::UpstreamFailed(_) | Self::UpstreamUnauthorized(_) => {
                "the console could not be opened"
            }
            Self::Revoked(Revocation::Suspended) => "the VM is suspended",
            Self::Revoked(Revocation::Terminated) => "the VM was terminated",
            Self::LimitReached(CapacityRefusal::PerUser(_)) => {
                "limit reached: you have too many consoles open"
            }
            Self::LimitReached(CapacityRefusal::Total(_)) => {
                "limit reached: the console service is at capacity"
            }
            Self::ClosedByOperator => "closed by an operator",
            Self::Idle => "closed after inactivity",
            Self::Lifetime => "the session reached its maximum length",
            Self::UpstreamClosed(_) => "the VM's console closed",
        }
    }

    /// The audit log's name for this reason.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BrowserClosed => "browser_closed",
            Self::BrowserUnresponsive => "browser_unresponsive",
            Self::Shutdown => "shutdown",
            Self::BrowserProtocol(_) => "browser_protocol",
            Self::UpstreamFailed(_) => "upstream_failed",
            Self::UpstreamUnauthorized(_) => "upstream_unauthorized",
            Self::Revoked(why) => why.as_str(),
            Self::LimitReached(refusal) => refusal.label(),
            Self::ClosedByOperator => "closed_by_operator",
            Self::Idle => "idle",
            Self::Lifetime => "lifetime",
            Self::UpstreamClosed(_) => "upstream_closed",
        }
    }

    /// Operator-facing detail (a Proxmox error, a protocol complaint), if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::UpstreamClosed(detail)
            | Self::UpstreamUnauthorized(detail)
            | Self::UpstreamFailed(detail)
            | Self::BrowserProtocol(detail) => Some(detail),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_text_never_carries_the_operator_detail() {
        let reason = CloseReason::UpstreamFailed("sim: POST nodes/pve1/qemu/101/vncproxy".into());
        assert_eq!(reason.code(), 1011);
        assert!(!reason.browser_text().contains("pve1"));
        assert_eq!(
            reason.detail(),
            Some("sim: POST nodes/pve1/qemu/101/vncproxy")
        );
    }

    #[test]
    fn close_texts_fit_in_a_close_frame() {
        // A close frame's reason is at most 123 bytes.
        let reasons = [
            CloseReason::BrowserClosed,
            CloseReason::BrowserUnresponsive,
            CloseReason::Shutdown,
            CloseReason::Revoked(Revocation::Suspended),
            CloseReason::Revoked(Revocation::Terminated),
            CloseReason::LimitReached(CapacityRefusal::PerUser(8)),
            CloseReason::LimitReached(CapacityRefusal::Total(2000)),
            CloseReason::ClosedByOperator,
            CloseReason::Idle,
            CloseReason::Lifetime,
            CloseReason::UpstreamClosed(String::new()),
        ];
        assert!(reasons.iter().all(|r| r.browser_text().len() <= 123));
    }

    #[test]
    fn suspension_termination_and_limits_have_codes_of_their_own() {
        let codes = [
            CloseReason::Revoked(Revocation::Suspended).code(),
            CloseReason::Revoked(Revocation::Terminated).code(),
            CloseReason::LimitReached(CapacityRefusal::PerUser(1)).code(),
            CloseReason::ClosedByOperator.code(),
            CloseReason::Idle.code(),
            CloseReason::Lifetime.code(),
            CloseReason::UpstreamClosed(String::new()).code(),
            CloseReason::BrowserUnresponsive.code(),
        ];
        assert_eq!(codes, [4003, 4005, 4029, 4004, 4008, 4009, 4010, 4011]);
    }
}
