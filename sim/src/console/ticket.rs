//! VNC tickets: `PVEVNC:<hex time>::<signature>`, like PVE's `assemble_vnc_ticket`, signed over
//! the user, the VM's ACL path and the proxy port so a ticket opens exactly one proxy. PVE accepts
//! them from 20 s in the future (clock skew) until their lifetime (40 s) has passed.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// What a ticket is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub user: &'a str,
    pub vmid: u32,
    pub port: u16,
}

/// How far a ticket's time may lie in the future.
const MAX_SKEW_SECS: u64 = 20;

pub struct TicketKey {
    key: [u8; 32],
}

impl TicketKey {
    pub fn generate() -> Self {
        Self {
            key: rand::random(),
        }
    }

    /// A ticket issued at `now` (Unix seconds on the simulator's clock).
    pub fn issue(&self, binding: Binding<'_>, now: u64) -> String {
        let plain = format!("PVEVNC:{now:08X}");
        format!("{plain}::{}", self.sign(&plain, binding))
    }

    /// True when the ticket was issued by this key for exactly this binding and is still fresh.
    pub fn verify(&self, ticket: &str, binding: Binding<'_>, now: u64, lifetime: u64) -> bool {
        let Some((plain, signature)) = ticket.split_once("::") else {
            return false;
        };
        let Some(issued) = plain
            .strip_prefix("PVEVNC:")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        else {
            return false;
        };
        let fresh = issued <= now + MAX_SKEW_SECS && now.saturating_sub(issued) <= lifetime;
        fresh && signature == self.sign(plain, binding)
    }

    fn sign(&self, plain: &str, binding: Binding<'_>) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(plain.as_bytes());
        hasher.update(format!(
            "\0{}\0/vms/{}\0{}",
            binding.user, binding.vmid, binding.port
        ));
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Binding<'static> = Binding {
        user: "porthole@pve!daemon",
        vmid: 100,
        port: 5900,
    };

    #[test]
    fn ticket_is_bound_to_user_vm_and_port() {
        let key = TicketKey::generate();
        let ticket = key.issue(A, 1000);
        assert!(ticket.starts_with("PVEVNC:000003E8::"));
        assert!(key.verify(&ticket, A, 1000, 40));
        assert!(!key.verify(
            &ticket,
            Binding {
                user: "porthole@pve",
                ..A
            },
            1000,
            40
        ));
        assert!(!key.verify(&ticket, Binding { vmid: 101, ..A }, 1000, 40));
        assert!(!key.verify(&ticket, Binding { port: 5901, ..A }, 1000, 40));
        assert!(!TicketKey::generate().verify(&ticket, A, 1000, 40));
    }

    #[test]
    fn ticket_expires_after_its_lifetime() {
        let key = TicketKey::generate();
        let ticket = key.issue(A, 1000);
        assert!(key.verify(&ticket, A, 1040, 40));
        assert!(!key.verify(&ticket, A, 1041, 40));
        assert!(!key.verify(&ticket, A, 979, 40), "too far in the future");
    }
}
