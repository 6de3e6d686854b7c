//! Versioned schema migrations, embedded in the binary and applied at start.
//!
//! `PRAGMA user_version` records how many have run. Each runs in its own transaction together with
//! the version bump, so a crash leaves the database at one version or the next, never between.
//! Migrations are append-only: a released one is never edited.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_console.sql"),
    include_str!("migrations/0003_plugins.sql"),
    include_str!("migrations/0004_lifecycle.sql"),
    include_str!("migrations/0005_order_guards.sql"),
    include_str!("migrations/0006_node_health.sql"),
    include_str!("migrations/0007_owner_power.sql"),
    include_str!("migrations/0008_plan_retired.sql"),
];

/// The schema version a fully migrated database has.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

pub(super) fn apply(connection: &mut Connection) -> anyhow::Result<()> {
    let current: usize = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > MIGRATIONS.len() {
        anyhow::bail!(
            "the database is at schema version {current}, newer than this porthole knows ({}); \
             run a newer porthole or restore a backup",
            MIGRATIONS.len()
        );
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = connection.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}
