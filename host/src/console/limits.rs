//! The relay's limits, from the `[console]` configuration section.

use std::time::Duration;

use crate::config::ConsoleConfig;

/// How long tokens live, how long sessions may last, and how many may run at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLimits {
    pub token_ttl: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub max_sessions_per_user: usize,
    pub max_sessions_total: usize,
    /// Interval of WebSocket pings on both legs; keeps middleboxes from dropping a quiet
    /// connection, and asks the browser for a sign of life.
    pub keepalive: Duration,
    /// How long after a ping a browser may stay silent (no pong, no data) before its session
    /// is ended as gone: a vanished browser whose TCP connection never closed.
    pub pong_timeout: Duration,
    /// Deadline for `vncproxy`/`termproxy`, the upstream WebSocket and its handshake together.
    pub upstream_open_timeout: Duration,
    /// How often a daemon with live sessions reads their services' states from the database,
    /// to close consoles that another daemon revoked (see `watch`). A fraction of the second
    /// within which a suspension must close them.
    pub state_poll: Duration,
    /// How often a daemon renews the liveness of the sessions it relays in the database; a
    /// session not renewed for three of these stops counting against the caps (its daemon
    /// died).
    pub session_heartbeat: Duration,
}

impl ConsoleLimits {
    /// How long a renewal keeps a session counting: three heartbeats, so one late renewal
    /// does not free its place.
    pub fn alive_secs(&self) -> i64 {
        i64::try_from(self.session_heartbeat.as_secs().saturating_mul(3)).unwrap_or(i64::MAX)
    }
}

impl From<&ConsoleConfig> for ConsoleLimits {
    fn from(config: &ConsoleConfig) -> Self {
        Self {
            token_ttl: Duration::from_secs(config.token_ttl_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_lifetime: Duration::from_secs(config.max_lifetime_secs),
            max_sessions_per_user: usize::try_from(config.max_sessions_per_user)
                .unwrap_or(usize::MAX),
            max_sessions_total: usize::try_from(config.max_sessions_total).unwrap_or(usize::MAX),
            keepalive: Duration::from_secs(config.keepalive_secs),
            pong_timeout: Duration::from_secs(config.pong_timeout_secs),
            upstream_open_timeout: Duration::from_secs(30),
            state_poll: Duration::from_millis(250),
            session_heartbeat: Duration::from_secs(10),
        }
    }
}

impl Default for ConsoleLimits {
    fn default() -> Self {
        Self::from(&ConsoleConfig::default())
    }
}
