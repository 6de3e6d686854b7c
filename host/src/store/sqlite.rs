//! The SQLite back end: one connection on a dedicated thread.
//!
//! SQLite calls block, and a blocked tokio worker stalls every connection it serves. The
//! connection therefore lives on its own OS thread and async callers send it statements over a
//! channel, awaiting each answer on a oneshot. One connection means writes are serialized in our
//! process (so we never meet `SQLITE_BUSY` among ourselves, and transactions need no retry loop),
//! and WAL mode keeps the file consistent for another process (an admin command, a second daemon
//! on the same host) reading or writing beside the daemon, with `busy_timeout` covering that
//! contention. While a transaction is open the thread serves only that transaction's statements
//! and keeps everyone else's, in order, for after its end; so no other caller's statement lands
//! inside it, and a caller that stops polling a plain statement's answer holds nothing up.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};
use tokio::sync::oneshot;

use super::value::{Row, Value};
use super::{Answer, StoreError, migrations};

enum Request {
    Run {
        /// The transaction the statement belongs to; `None` outside any.
        tx: Option<u64>,
        sql: String,
        params: Vec<Value>,
        reply: oneshot::Sender<rusqlite::Result<Answer>>,
    },
    Begin {
        tx: u64,
        reply: oneshot::Sender<rusqlite::Result<()>>,
    },
    /// `COMMIT` or `ROLLBACK`; a rollback sent from a destructor has nobody to answer.
    End {
        tx: u64,
        sql: &'static str,
        reply: Option<oneshot::Sender<rusqlite::Result<()>>>,
    },
}

/// Handle to the database thread; cheap to clone.
#[derive(Clone)]
pub(super) struct Sqlite {
    sender: mpsc::Sender<Request>,
    next_tx: Arc<AtomicU64>,
    path: PathBuf,
}

impl Sqlite {
    /// Opens (creating if needed) and migrates the database at `path`, and starts its thread.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let path = path.to_path_buf();
        let (sender, receiver) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("porthole-store".into())
            .spawn(move || match open_connection(&thread_path) {
                Ok(connection) => {
                    let _ = ready_tx.send(Ok(()));
                    let mut thread = Thread {
                        connection,
                        open: None,
                        waiting: VecDeque::new(),
                    };
                    // Runs until every handle is dropped.
                    for request in receiver {
                        thread.serve(request);
                    }
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                }
            })?;
        ready_rx
            .await
            .map_err(|_| anyhow::anyhow!("the database thread died while opening"))??;
        Ok(Self {
            sender,
            next_tx: Arc::new(AtomicU64::new(1)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs one statement outside any transaction.
    pub async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        self.send(None, sql, params).await
    }

    async fn send(
        &self,
        tx: Option<u64>,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Request::Run {
                tx,
                sql: sql.to_owned(),
                params,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        Ok(answer.await.map_err(|_| StoreError::Closed)??)
    }

    /// Starts a write transaction. `IMMEDIATE` takes the write lock now, so a transaction that
    /// reads before it writes cannot fail at its first write because another process wrote.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let id = self.next_tx.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Request::Begin { tx: id, reply })
            .map_err(|_| StoreError::Closed)?;
        // From here on the transaction may be open: a drop rolls it back.
        let tx = Tx {
            db: self.clone(),
            id,
            open: true,
        };
        answer.await.map_err(|_| StoreError::Closed)??;
        Ok(tx)
    }
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub(super) struct Tx {
    db: Sqlite,
    id: u64,
    open: bool,
}

impl Tx {
    pub async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        self.db.send(Some(self.id), sql, params).await
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.db
            .sender
            .send(Request::End {
                tx: self.id,
                sql: "COMMIT",
                reply: Some(reply),
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)??;
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.sender.send(Request::End {
                tx: self.id,
                sql: "ROLLBACK",
                reply: None,
            });
        }
    }
}

/// The database thread's state: the connection, the transaction open on it, and the requests
/// that arrived meanwhile from outside it.
struct Thread {
    connection: Connection,
    open: Option<u64>,
    waiting: VecDeque<Request>,
}

impl Thread {
    fn serve(&mut self, request: Request) {
        if self.must_wait(&request) {
            self.waiting.push_back(request);
            return;
        }
        if self.execute(request) {
            // What waited for the transaction, in arrival order; a `BEGIN` among it opens the
            // next one, and whatever is not part of that waits again.
            for request in std::mem::take(&mut self.waiting) {
                self.serve(request);
            }
        }
    }

    fn must_wait(&self, request: &Request) -> bool {
        let Some(open) = self.open else {
            return false;
        };
        match request {
            Request::Run { tx, .. } => *tx != Some(open),
            Request::End { tx, .. } => *tx != open,
            Request::Begin { .. } => true,
        }
    }

    /// Runs one request; true when it ended the open transaction.
    fn execute(&mut self, request: Request) -> bool {
        match request {
            Request::Run {
                sql, params, reply, ..
            } => {
                let _ = reply.send(run(&self.connection, &sql, &params));
                false
            }
            Request::Begin { tx, reply } => {
                let begun = self.connection.execute_batch("BEGIN IMMEDIATE");
                if begun.is_ok() {
                    self.open = Some(tx);
                }
                let _ = reply.send(begun);
                false
            }
            // The rollback of a transaction that never began (its `BEGIN` failed) or already
            // ended.
            Request::End { tx, .. } if self.open != Some(tx) => false,
            Request::End { sql, reply, .. } => {
                let outcome = self.connection.execute_batch(sql);
                // A failed COMMIT leaves the transaction open, for the rollback that follows.
                let ended = self.connection.is_autocommit();
                if ended {
                    self.open = None;
                }
                match reply {
                    Some(reply) => {
                        let _ = reply.send(outcome);
                    }
                    None => {
                        if let Err(err) = outcome {
                            tracing::error!(error = %err, sql, "a database statement failed");
                        }
                    }
                }
                ended
            }
        }
    }
}

fn run(connection: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Answer> {
    let mut statement = connection.prepare_cached(sql)?;
    let columns = statement.column_count();
    let mut rows = Vec::new();
    let mut cursor = statement.query(rusqlite::params_from_iter(params.iter().map(Bind)))?;
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(columns);
        for index in 0..columns {
            values.push(read(row.get_ref(index)?));
        }
        rows.push(Row::new(values));
    }
    drop(cursor);
    Ok(Answer {
        rows,
        changed: connection.changes(),
    })
}

struct Bind<'a>(&'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(*r)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Value::Blob(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
        })
    }
}

fn read(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

/// Opens a connection with the settings every Porthole connection needs, and migrates.
fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let mut connection = Connection::open(path)
        .with_context(|| format!("while opening the database {}", path.display()))?;
    configure(&connection).context("while configuring the database connection")?;
    migrations::apply_sqlite(&mut connection)
        .with_context(|| format!("while migrating the database {}", path.display()))?;
    Ok(connection)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.set_prepared_statement_cache_capacity(256);
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
