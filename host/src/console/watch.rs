//! Revocations made by another daemon: the states of the services this daemon relays consoles
//! for, read from the shared database, fed to the same per-VM stop signal as
//! [`ConsoleHub::revoke`].
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
//! So a daemon runs one task that, every [`ConsoleLimits::state_poll`], reads the states of the
//! services of its live sessions in a single primary-key lookup, and signals the sessions of
//! any that are suspended or going away. The task is started by the first admission and ends
//! when the last session does: a daemon with no console does no polling at all. The state is
//! the truth the lifecycle engine writes before it revokes (see `lifecycle::vm::mark`), so this
//! daemon's own revocations are seen here too, harmlessly: a session stops only once.
//! Outstanding tokens need nothing here: they are rows in the shared database, revoked there.
//!
//! [`ConsoleLimits::state_poll`]: super::ConsoleLimits::state_poll

use std::collections::BTreeSet;
use std::sync::Weak;

use rusqlite::Connection;

use super::close::Revocation;
use super::hub::ConsoleHub;
use crate::service_state::ServiceState;

/// Runs until the hub is gone or has no live session left; see the module doc.
pub(super) async fn watch_states(hub: Weak<ConsoleHub>) {
    let Some(every) = hub.upgrade().map(|hub| hub.limits().state_poll) else {
        return;
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        let Some(services) = hub.watched_services() else {
            return;
        };
        if services.is_empty() {
            continue;
        }
        let reading = hub
            .store()
            .call(move |c| revoked_services(c, &services))
            .await;
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

/// Those of `services` whose consoles must close, and why. One statement whatever the number
/// of services: their ids travel as one JSON array.
fn revoked_services(
    conn: &Connection,
    services: &BTreeSet<i64>,
) -> rusqlite::Result<Vec<(i64, Revocation)>> {
    let ids = serde_json::to_string(services)
        .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
    let mut statement = conn.prepare_cached(
        "SELECT id, state FROM services WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id",
    )?;
    let rows = statement.query_map([ids], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, ServiceState>(1)?))
    })?;
    let mut revoked = Vec::new();
    for row in rows {
        let (id, state) = row?;
        if let Some(why) = state.revocation() {
            revoked.push((id, why));
        }
    }
    Ok(revoked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_states_of_many_services_are_read_in_one_statement() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE services (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
            .unwrap();
        for (id, state) in [
            (1, ServiceState::Active),
            (2, ServiceState::Suspended),
            (3, ServiceState::Terminating),
            (4, ServiceState::Suspended),
        ] {
            conn.execute(
                "INSERT INTO services VALUES (?1, ?2)",
                rusqlite::params![id, state],
            )
            .unwrap();
        }
        let watched: BTreeSet<i64> = [1, 2, 3, 99].into_iter().collect();
        let revoked = revoked_services(&conn, &watched).unwrap();
        assert_eq!(
            revoked,
            [(2, Revocation::Suspended), (3, Revocation::Terminated)]
        );
        let many: BTreeSet<i64> = (0..50_000).collect();
        assert_eq!(revoked_services(&conn, &many).unwrap().len(), 3);
    }
}
