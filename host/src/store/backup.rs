//! Backing up a SQLite database while the daemon writes to it, and restoring a backup.
//!
//! A backup is SQLite's online backup API run in one step: one read transaction, so the copy is
//! the database at one moment, and in WAL mode neither the daemon's writers nor the copy wait for
//! each other. It is written beside its destination and renamed into place only once it checks
//! clean, so a file at the destination is always a whole backup. PostgreSQL has its own tools
//! (`pg_dump`, or base backups with WAL archiving) and is not handled here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::migrations::SCHEMA_VERSION;

/// What a backup or a restore copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub schema_version: usize,
    pub bytes: u64,
}

/// How long a step waits for a lock another connection holds before giving up; the daemon's own
/// transactions last milliseconds.
const BUSY_PATIENCE: Duration = Duration::from_secs(10);

/// Copies the database at `database` to the new file `to`, consistent while the daemon writes.
pub fn backup(database: &Path, to: &Path) -> anyhow::Result<Copied> {
    if to.exists() {
        bail!("{} exists; a backup never overwrites a file", to.display());
    }
    let source = open_read_only(database)?;
    let schema_version = schema_version(&source, database)?;
    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    let outcome = write_backup(&source, &partial).and_then(|()| {
        std::fs::rename(&partial, to)
            .with_context(|| format!("while moving the backup to {}", to.display()))?;
        sync_directory_of(to)
    });
    if outcome.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    outcome?;
    Ok(Copied {
        schema_version,
        bytes: file_size(to)?,
    })
}

/// Replaces the database at `database` with the backup `from`, after checking the backup is
/// whole and not newer than this porthole. The daemon must be stopped.
pub fn restore(from: &Path, database: &Path) -> anyhow::Result<Copied> {
    let source = open_read_only(from)?;
    check_integrity(&source).with_context(|| format!("{} is damaged", from.display()))?;
    let schema_version = schema_version(&source, from)?;
    if schema_version > SCHEMA_VERSION {
        bail!(
            "{} is at schema version {schema_version}, newer than this porthole knows \
             ({SCHEMA_VERSION}); restore it with the porthole that made it",
            from.display()
        );
    }
    let mut target = Connection::open(database)
        .with_context(|| format!("while opening {}", database.display()))?;
    target.busy_timeout(BUSY_PATIENCE)?;
    copy_all(&source, &mut target).with_context(|| {
        format!(
            "while restoring into {} (is the daemon still running? stop it first)",
            database.display()
        )
    })?;
    Ok(Copied {
        schema_version,
        bytes: file_size(database)?,
    })
}

fn write_backup(source: &Connection, partial: &Path) -> anyhow::Result<()> {
    let mut target = Connection::open(partial)
        .with_context(|| format!("while creating {}", partial.display()))?;
    copy_all(source, &mut target).context("while copying the database")?;
    // The copy carries the source's WAL mode; a backup is better as one self-contained file.
    let mode: String = target.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))?;
    if mode != "delete" {
        bail!("the backup stayed in journal mode {mode}");
    }
    check_integrity(&target).context("the backup does not check clean")?;
    drop(target);
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("while syncing {}", partial.display()))
}

/// Every page in one step (one read transaction), retrying while a writer holds a lock.
fn copy_all(source: &Connection, target: &mut Connection) -> anyhow::Result<()> {
    let backup = Backup::new(source, target)?;
    let deadline = std::time::Instant::now() + BUSY_PATIENCE;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => bail!("the database stayed locked ({other:?})"),
        }
    }
}

fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    if !path.is_file() {
        bail!("{} is not a file", path.display());
    }
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("while opening {}", path.display()))?;
    connection.busy_timeout(BUSY_PATIENCE)?;
    Ok(connection)
}

/// The schema version, which also tells a porthole database from any other SQLite file.
fn schema_version(connection: &Connection, path: &Path) -> anyhow::Result<usize> {
    let version: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    if version == 0 {
        bail!("{} is not a porthole database", path.display());
    }
    Ok(version)
}

fn check_integrity(connection: &Connection) -> anyhow::Result<()> {
    let verdict: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    if verdict != "ok" {
        bail!("integrity_check: {verdict}");
    }
    Ok(())
}

fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}

/// The rename is durable only once the directory that holds it is.
fn sync_directory_of(file: &Path) -> anyhow::Result<()> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("while syncing {}", dir.display()))
}

fn file_size(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("while reading {}", path.display()))?
        .len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db as _, Store, params};

    async fn database_with_rows(dir: &Path) -> PathBuf {
        let path = dir.join("live.db");
        let store = Store::open(&path).await.unwrap();
        store
            .execute(
                "INSERT INTO plugin_kv (plugin, key, value) VALUES ('p', 'k', ?1)",
                params![b"v".to_vec()],
            )
            .await
            .unwrap();
        path
    }

    #[tokio::test]
    async fn a_backup_restores_into_a_database_with_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let live = database_with_rows(dir.path()).await;
        let copy = dir.path().join("backup.db");
        let made = backup(&live, &copy).unwrap();
        assert_eq!(made.schema_version, SCHEMA_VERSION);
        assert!(!partial_path(&copy).exists());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("backup"))
            .collect();
        names.sort();
        assert_eq!(names, ["backup.db"], "one self-contained file");

        let restored = dir.path().join("restored.db");
        restore(&copy, &restored).unwrap();
        let store = Store::open(&restored).await.unwrap();
        let row = store
            .query_one("SELECT value FROM plugin_kv WHERE key = 'k'", params![])
            .await
            .unwrap();
        assert_eq!(row.get::<Vec<u8>>(0).unwrap(), b"v");
    }

    #[tokio::test]
    async fn a_backup_never_overwrites_and_a_restore_refuses_what_is_not_a_whole_backup() {
        let dir = tempfile::tempdir().unwrap();
        let live = database_with_rows(dir.path()).await;
        let err = backup(&live, &live).unwrap_err();
        assert!(err.to_string().contains("never overwrites"), "{err:#}");

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = restore(&other, &dir.path().join("target.db")).unwrap_err();
        assert!(
            err.to_string().contains("not a porthole database"),
            "{err:#}"
        );

        let newer = dir.path().join("newer.db");
        backup(&live, &newer).unwrap();
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = restore(&newer, &dir.path().join("target.db")).unwrap_err();
        assert!(
            err.to_string().contains("newer than this porthole"),
            "{err:#}"
        );

        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
        assert!(restore(&garbage, &dir.path().join("target.db")).is_err());
    }
}
