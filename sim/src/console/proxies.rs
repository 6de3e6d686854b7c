//! The node-local proxies `vncproxy`/`termproxy` start: one per port 5900–5999 of a node, each
//! listening for a single connection within the connect window, then serving that one session.
//! Plain data; the caller holds the lock only around these calls.

use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::oneshot;

pub const FIRST_PORT: u16 = 5900;
pub const LAST_PORT: u16 = 5999;

/// What the proxy runs once a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyKind {
    /// QEMU's VNC server, guarded by VNC authentication with this password.
    Vnc { password: String },
    /// termproxy: the client first sends `<user>:<ticket>\n`.
    Term { ticket: String },
}

#[derive(Debug)]
pub enum ProxyState {
    /// Waiting for its one connection.
    Listening,
    /// Serving a session; sending on `cut` ends it abruptly.
    Connected {
        session: u64,
        cut: Option<oneshot::Sender<()>>,
    },
}

#[derive(Debug)]
pub struct Proxy {
    pub vmid: u32,
    pub user: String,
    pub kind: ProxyKind,
    pub upid: String,
    /// When it started listening, on the simulator's clock.
    pub opened: Duration,
    pub state: ProxyState,
}

/// A connection the proxy accepted.
#[derive(Debug)]
pub struct Claimed {
    pub session: u64,
    pub kind: ProxyKind,
    pub user: String,
    pub cut: oneshot::Receiver<()>,
}

#[derive(Debug, Default)]
pub struct ProxyTable {
    proxies: BTreeMap<(String, u16), Proxy>,
    next_session: u64,
}

impl ProxyTable {
    /// The lowest free port of a node, as `PVE::Tools::next_vnc_port` finds it.
    pub fn free_port(&self, node: &str) -> Option<u16> {
        (FIRST_PORT..=LAST_PORT).find(|port| !self.proxies.contains_key(&(node.to_owned(), *port)))
    }

    pub fn open(&mut self, node: &str, port: u16, proxy: Proxy) {
        self.proxies.insert((node.to_owned(), port), proxy);
    }

    /// Accepts the one connection of a listening proxy of `vmid`, if it is still within its
    /// connect window at `now`. Anything else is a refused connection, as on a real node.
    pub fn claim(
        &mut self,
        node: &str,
        port: u16,
        vmid: u32,
        now: Duration,
        window: Duration,
    ) -> Option<Claimed> {
        let key = (node.to_owned(), port);
        let proxy = self.proxies.get_mut(&key)?;
        if proxy.vmid != vmid || !matches!(proxy.state, ProxyState::Listening) {
            return None;
        }
        if now.saturating_sub(proxy.opened) > window {
            return None;
        }
        self.next_session += 1;
        let session = self.next_session;
        let (cut_tx, cut_rx) = oneshot::channel();
        proxy.state = ProxyState::Connected {
            session,
            cut: Some(cut_tx),
        };
        Some(Claimed {
            session,
            kind: proxy.kind.clone(),
            user: proxy.user.clone(),
            cut: cut_rx,
        })
    }

    /// Removes every listening proxy whose connect window passed at `now` (the simulator's clock
    /// may jump ahead of the timers); returns their task ids.
    pub fn expire_stale(&mut self, now: Duration, window: Duration) -> Vec<String> {
        let stale: Vec<(String, u16)> = self
            .proxies
            .iter()
            .filter(|(_, p)| {
                matches!(p.state, ProxyState::Listening) && now.saturating_sub(p.opened) > window
            })
            .map(|(key, _)| key.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|key| self.proxies.remove(&key))
            .map(|p| p.upid)
            .collect()
    }

    /// Removes a proxy whose connect window passed without a connection.
    pub fn expire(&mut self, node: &str, port: u16, upid: &str) -> Option<Proxy> {
        let key = (node.to_owned(), port);
        let proxy = self.proxies.get(&key)?;
        if proxy.upid != upid || !matches!(proxy.state, ProxyState::Listening) {
            return None;
        }
        self.proxies.remove(&key)
    }

    /// Removes the proxy of an ended session, freeing its port.
    pub fn close(&mut self, node: &str, port: u16, session: u64) -> Option<Proxy> {
        let key = (node.to_owned(), port);
        let proxy = self.proxies.get(&key)?;
        match proxy.state {
            ProxyState::Connected { session: s, .. } if s == session => self.proxies.remove(&key),
            _ => None,
        }
    }

    pub fn live_sessions(&self, vmid: u32) -> usize {
        self.proxies
            .values()
            .filter(|p| p.vmid == vmid && matches!(p.state, ProxyState::Connected { .. }))
            .count()
    }

    /// Signals every live session of `vmid` (or of all VMs) to end at once.
    pub fn cut(&mut self, vmid: Option<u32>) -> usize {
        let mut count = 0;
        for proxy in self.proxies.values_mut() {
            if vmid.is_some_and(|v| v != proxy.vmid) {
                continue;
            }
            if let ProxyState::Connected { cut, .. } = &mut proxy.state
                && let Some(cut) = cut.take()
            {
                let _ = cut.send(());
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(vmid: u32, opened: u64) -> Proxy {
        Proxy {
            vmid,
            user: "u".into(),
            kind: ProxyKind::Term { ticket: "t".into() },
            upid: format!("UPID:{vmid}"),
            opened: Duration::from_secs(opened),
            state: ProxyState::Listening,
        }
    }

    const WINDOW: Duration = Duration::from_secs(10);

    #[test]
    fn proxy_accepts_one_connection_within_its_window() {
        let mut table = ProxyTable::default();
        table.open("pve1", 5900, proxy(100, 0));
        assert_eq!(table.free_port("pve1"), Some(5901));
        assert_eq!(table.free_port("pve2"), Some(5900));
        assert!(
            table
                .claim("pve1", 5900, 101, Duration::from_secs(1), WINDOW)
                .is_none()
        );
        let claimed = table.claim("pve1", 5900, 100, Duration::from_secs(1), WINDOW);
        assert!(claimed.is_some());
        assert!(
            table
                .claim("pve1", 5900, 100, Duration::from_secs(1), WINDOW)
                .is_none()
        );
        assert_eq!(table.live_sessions(100), 1);
        assert!(
            table
                .close("pve1", 5900, claimed.map_or(0, |c| c.session))
                .is_some()
        );
        assert_eq!(table.free_port("pve1"), Some(5900));
    }

    #[test]
    fn proxy_refuses_after_the_window_and_ports_run_out() {
        let mut table = ProxyTable::default();
        table.open("pve1", 5900, proxy(100, 0));
        assert!(
            table
                .claim("pve1", 5900, 100, Duration::from_secs(11), WINDOW)
                .is_none()
        );
        assert_eq!(
            table.expire_stale(Duration::from_secs(11), WINDOW),
            ["UPID:100"]
        );
        for port in FIRST_PORT..=LAST_PORT {
            table.open("pve1", port, proxy(100, 0));
        }
        assert_eq!(table.free_port("pve1"), None);
    }
}
