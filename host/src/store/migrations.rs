//! Versioned schema migrations, embedded in the binary and applied at start: one list, each
//! entry in both dialects (`migrations/NNNN_name.sql` for SQLite, `migrations/postgres/` for
//! PostgreSQL), so the two back ends are always at the same version with the same tables.
//!
//! SQLite records the version in `PRAGMA user_version`, PostgreSQL in `porthole_schema`. Each
//! migration runs in its own transaction together with the version bump, so a crash leaves the
//! database at one version or the next, never between. On PostgreSQL an advisory lock makes
//! daemons starting together migrate one at a time. Migrations are append-only: a released one is
//! never edited.

use rusqlite::Connection;

struct Migration {
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($name:literal) => {
        Migration {
            sqlite: include_str!(concat!("migrations/", $name, ".sql")),
            postgres: include_str!(concat!("migrations/postgres/", $name, ".sql")),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!("0001_initial"),
    migration!("0002_console"),
    migration!("0003_plugins"),
    migration!("0004_lifecycle"),
    migration!("0005_order_guards"),
    migration!("0006_node_health"),
    migration!("0007_owner_power"),
    migration!("0008_plan_retired"),
    migration!("0009_console_liveness"),
    migration!("0010_login_attempts"),
    migration!("0011_scoped_tokens_and_activity"),
    migration!("0012_second_factors"),
    migration!("0013_passkeys"),
    migration!("0014_self_service"),
    migration!("0015_reverse_dns"),
];

/// The schema version a fully migrated database has.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

fn check_not_newer(current: usize) -> anyhow::Result<()> {
    if current > MIGRATIONS.len() {
        anyhow::bail!(
            "the database is at schema version {current}, newer than this porthole knows ({}); \
             run a newer porthole or restore a backup",
            MIGRATIONS.len()
        );
    }
    Ok(())
}

pub(super) fn apply_sqlite(connection: &mut Connection) -> anyhow::Result<()> {
    let current: usize = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    check_not_newer(current)?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let tx = connection.transaction()?;
        tx.execute_batch(migration.sqlite)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

/// The advisory lock daemons take while migrating: "porthole" in ASCII.
const MIGRATION_LOCK: i64 = 0x706f_7274_686f_6c65;

pub(super) async fn apply_postgres(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let migrated = migrate_postgres(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    migrated?;
    unlocked?;
    Ok(())
}

async fn migrate_postgres(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS porthole_schema (version BIGINT NOT NULL)")
        .await?;
    let current: i64 = client
        .query_opt("SELECT version FROM porthole_schema", &[])
        .await?
        .map_or(0, |row| row.get(0));
    let current = usize::try_from(current)?;
    check_not_newer(current)?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i64::try_from(index + 1)?;
        let tx = client.transaction().await?;
        tx.batch_execute(migration.postgres).await?;
        tx.execute("DELETE FROM porthole_schema", &[]).await?;
        tx.execute(
            "INSERT INTO porthole_schema (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::testing::TestStore;
    use crate::store::{Db, Store, StoreError, params};

    /// Every table's columns in order, skipping what only one engine has: PostgreSQL's version
    /// table, and the `rowid` SQLite gives every table implicitly and PostgreSQL's
    /// `service_resources` spells out.
    async fn columns(store: &Store, sql: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = store.query(sql, params![]).await?;
        let mut columns = Vec::new();
        for row in rows {
            let (table, column): (String, String) = (row.get(0)?, row.get(1)?);
            if table != "porthole_schema" && column != "rowid" {
                columns.push((table, column));
            }
        }
        Ok(columns)
    }

    #[tokio::test]
    async fn both_engines_migrate_to_the_same_tables_and_columns() -> anyhow::Result<()> {
        let sqlite = TestStore::sqlite().await?;
        let postgres = TestStore::postgres().await?;
        let on_sqlite = columns(
            &sqlite.store,
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' ORDER BY m.name, p.cid",
        )
        .await?;
        let on_postgres = columns(
            &postgres.store,
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT)
             FROM information_schema.columns WHERE table_schema = 'public'
             ORDER BY table_name, ordinal_position",
        )
        .await?;
        assert!(on_sqlite.len() > 50, "{on_sqlite:?}");
        assert_eq!(on_sqlite, on_postgres);
        Ok(())
    }
}
