//! Revocations made by another daemon: the states of the services this daemon relays consoles
//! for, read from the shared database, fed to the same per-VM stop signal as
//! [`ConsoleHub::revoke`]. The same task renews its sessions' liveness, which keeps them
//! counting against the cluster's session caps.
//!
//! # Why one poller per daemon, and only while it relays
//! Behind a load balancer several daemons share one database. The lifecycle job that suspends a
//! VM runs on one of them, and its [`ConsoleHub::revoke`] reaches only that daemon's sessions;
//! a console relayed by another daemon must still close within about a second. The choices:
//!
//! - *SQLite's update hook* fires only for writes made through the same connection, so it never
//!   sees another process's change.
//! - *A revocations table* each daemon tails by sequence number would tell exactly what changed,
//!   but needs a schema change, a writer in the lifecycle engine and a cleanup, to carry what the
//!   `services.state` column already says.
//! - *A query per session* costs in proportion to the sessions, thousands on a busy daemon.
//!
//! So a daemon runs one task that reads the states of the services of its live sessions in a
//! single primary-key lookup, and signals the sessions of any that are suspended or going away.
//! It looks when a daemon that revoked a service says so ([`Store::notify`]: PostgreSQL's
//! `NOTIFY` reaches every daemon at once), and every [`ConsoleLimits::state_poll`] regardless,
//! because a notice can be missed (a listener reconnecting) or never sent (several processes on
//! one SQLite file). The task is started by the first admission and ends
//! when the last session does: a daemon with no console does no polling at all. The state is
//! the truth the lifecycle engine writes before it revokes (see `lifecycle::vm::mark`), so this
//! daemon's own revocations are seen here too, harmlessly: a session stops only once.
//! Outstanding tokens need nothing here: they are rows in the shared database, revoked there.
//!
//! [`ConsoleLimits::state_poll`]: super::ConsoleLimits::state_poll
//! [`Store::notify`]: crate::store::Store::notify

use std::collections::BTreeSet;
use std::sync::Weak;

use tokio::sync::broadcast::error::RecvError;

use super::close::Revocation;
use super::hub::ConsoleHub;
use crate::store::{self, Db, Notice, StoreError};

/// The notice a daemon sends every daemon after it revoked a service's consoles:
/// `revoked <service id>`.
pub(super) const REVOKED: &str = "revoked ";

/// The notice a daemon sends when an operator asked it to close a session another daemon
/// relays: `close-session <session id>`.
pub(super) const CLOSE: &str = "close-session ";

/// Runs until the hub is gone or has no live session left; see the module doc.
pub(super) async fn watch_states(hub: Weak<ConsoleHub>) {
    let Some((every, heartbeat, mut notices)) = hub.upgrade().map(|hub| {
        let limits = hub.limits();
        (
            limits.state_poll,
            limits.session_heartbeat,
            hub.store().subscribe(),
        )
    }) else {
        return;
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renew = tokio::time::interval(heartbeat);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A revocation notice (or a gap in them) looks at once; the tick is the fallback for
        // notices that never come: SQLite files shared between processes, a listener
        // reconnecting. The renewal keeps this daemon's sessions counting everywhere.
        tokio::select! {
            _ = renew.tick() => {
                let Some(hub) = hub.upgrade() else { return };
                keep_sessions_alive(&hub).await;
                continue;
            }
            _ = tick.tick() => {}
            notice = notices.recv() => match notice {
                Ok(Notice::Message(payload)) => {
                    if let Some(id) = payload.strip_prefix(CLOSE) {
                        let Some(hub) = hub.upgrade() else { return };
                        close_requested(&hub, id);
                        continue;
                    }
                    if !payload.starts_with(REVOKED) {
                        continue;
                    }
                }
                Ok(Notice::Resync) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
        }
        let Some(hub) = hub.upgrade() else { return };
        let Some(services) = hub.watched_services() else {
            return;
        };
        if services.is_empty() {
            continue;
        }
        let reading = revoked_services(hub.store(), &services).await;
        match reading {
            Ok(revoked) => {
                for (service_id, why) in revoked {
                    let closed = hub.stop_service(service_id, why);
                    if closed > 0 {
                        tracing::info!(
                            service_id,
                            sessions = closed,
                            reason = why.as_str(),
                            "consoles closed: the service changed state in the database"
                        );
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read the states of services with consoles");
            }
        }
    }
}

/// Renews the liveness and byte counts of this daemon's sessions, so that they keep counting
/// against the caps on every daemon, and closes those an operator asked to close elsewhere
/// whose notice did not arrive.
async fn keep_sessions_alive(hub: &ConsoleHub) {
    let relayed = hub.relayed();
    if relayed.is_empty() {
        return;
    }
    let alive_secs = hub.limits().alive_secs();
    match store::console::keep_alive(hub.store(), &relayed, alive_secs).await {
        Ok(to_close) => {
            for id in to_close {
                hub.close_session(id);
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not renew the liveness of console sessions")
        }
    }
}

/// An operator on another daemon asked to close session `id`; it closes if it is relayed here.
fn close_requested(hub: &ConsoleHub, id: &str) {
    match id.parse() {
        Ok(id) => {
            if hub.close_session(id) {
                tracing::info!(
                    session_id = id,
                    "console closed at an operator's request on another daemon"
                );
            }
        }
        Err(_) => tracing::warn!(notice = id, "a close request names no session"),
    }
}

/// Those of `services` whose consoles must close, and why. One statement whatever the number
/// of services (see [`store::console::service_states`]).
async fn revoked_services(
    db: &impl Db,
    services: &BTreeSet<i64>,
) -> Result<Vec<(i64, Revocation)>, StoreError> {
    let states = store::console::service_states(db, services).await?;
    Ok(states
        .into_iter()
        .filter_map(|(id, state)| state.revocation().map(|why| (id, why)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_state::ServiceState;
    use crate::store::params;
    use crate::store::testing::{customer_on_a_cluster, on_both_backends};

    on_both_backends! {
        async fn the_states_of_many_services_are_read_in_one_statement(store: Store) -> anyhow::Result<()> {
            let owner = customer_on_a_cluster(&store).await?;
            for (id, state) in [
                (1, ServiceState::Active),
                (2, ServiceState::Suspended),
                (3, ServiceState::Terminating),
                (4, ServiceState::Suspended),
            ] {
                store
                    .execute(
                        "INSERT INTO services (id, owner_id, name, cluster, state, created_at, updated_at)
                         VALUES (?1, ?2, 'vm', 'lab', ?3, 0, 0)",
                        params![id, owner, state],
                    )
                    .await?;
            }
            let watched: BTreeSet<i64> = [1, 2, 3, 99].into_iter().collect();
            let revoked = revoked_services(&store, &watched).await?;
            assert_eq!(
                revoked,
                [(2, Revocation::Suspended), (3, Revocation::Terminated)]
            );
            let many: BTreeSet<i64> = (0..50_000).collect();
            assert_eq!(revoked_services(&store, &many).await?.len(), 3);
            Ok(())
        }
    }
}
