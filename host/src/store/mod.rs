//! The SQLite database: connection, migrations, and one module of queries per table group.
//!
//! # Why a dedicated thread
//! SQLite calls block, and a blocked tokio worker stalls every connection it serves. The store
//! therefore owns a single connection on a dedicated OS thread and async callers send it closures
//! over a channel, awaiting the answer on a oneshot. One connection means writes are serialized in
//! our process (so we never meet `SQLITE_BUSY` among ourselves, and transactions need no retry
//! loop), and WAL mode keeps the file consistent for another process (an admin command) reading
//! or writing beside the daemon, with `busy_timeout` covering that rare contention. A panel's
//! query load is small and each query is short; if reads ever queue behind writes, a pool of
//! read-only connections can sit beside this writer without changing the API.
//!
//! Query modules (`users`, `sessions`, …) are plain functions over `&Connection`, so they are
//! equally usable inside a transaction and in tests.

pub mod audit;
mod migrations;
pub mod nodes;
mod plugin_data;
pub use migrations::SCHEMA_VERSION;
pub mod resources;
pub mod services;
pub mod sessions;
pub mod tokens;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

type Work = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle to the database thread; cheap to clone.
#[derive(Clone)]
pub struct Store {
    sender: mpsc::Sender<Work>,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database thread has stopped")]
    Closed,
    /// The call panicked; the thread rolled its transaction back and serves the next call.
    #[error("the database call failed unexpectedly and was rolled back")]
    Aborted,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`, and starts its thread.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let path = path.to_path_buf();
        let (sender, receiver) = mpsc::channel::<Work>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("porthole-store".into())
            .spawn(move || {
                match open_connection(&thread_path) {
                    Ok(mut connection) => {
                        let _ = ready_tx.send(Ok(()));
                        // Runs until every `Store` handle is dropped.
                        for work in receiver {
                            run_isolated(work, &mut connection);
                        }
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
            })?;
        ready_rx
            .await
            .map_err(|_| anyhow::anyhow!("the database thread died while opening"))??;
        Ok(Self { sender, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the database thread and returns its result.
    pub async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let work: Work = Box::new(move |connection| {
            let _ = reply_tx.send(work(connection));
        });
        self.sender.send(work).map_err(|_| StoreError::Closed)?;
        // The thread outlives a panicking call, so a reply dropped unanswered means that call
        // panicked (or the thread is gone, which the next send will tell).
        Ok(reply_rx.await.map_err(|_| StoreError::Aborted)??)
    }
}

/// Runs one call so that a panic in it (a bug, never input) costs that caller alone: it gets
/// [`StoreError::Aborted`], a transaction it left open is rolled back, and the thread serves
/// every other caller as before instead of taking the database away from the whole daemon.
fn run_isolated(work: Work, connection: &mut Connection) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(connection)));
    if outcome.is_err() {
        tracing::error!("a database call panicked; rolling back whatever it left open");
        if !connection.is_autocommit()
            && let Err(err) = connection.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %err, "cannot roll back after a panicked database call");
        }
    }
}

/// Opens a connection with the settings every Porthole connection needs, and migrates.
pub fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    use anyhow::Context as _;
    let mut connection = Connection::open(path)
        .with_context(|| format!("while opening the database {}", path.display()))?;
    configure(&connection).context("while configuring the database connection")?;
    migrations::apply(&mut connection)
        .with_context(|| format!("while migrating the database {}", path.display()))?;
    Ok(connection)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(Duration::from_secs(5))?;
    // `journal_mode` answers with the mode in force; WAL survives a crash mid-write and lets an
    // admin command read while the daemon writes.
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            mode,
            "SQLite refused WAL mode; continuing with this journal mode"
        );
    }
    connection.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;",
    )
}

/// Seconds since the Unix epoch; every timestamp column holds this.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
