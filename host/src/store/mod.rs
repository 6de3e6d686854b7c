//! The database: SQLite (the embedded default) or PostgreSQL (several daemons, one database),
//! and one module of queries per table group.
//!
//! Query modules (`users`, `jobs`, …) are async functions over a [`Db`]: the [`Store`] itself
//! for a single statement, or a [`Tx`] inside [`Store::transaction`]. They write SQL once, in the
//! dialect both engines share (`?1` parameters, `RETURNING`, `ON CONFLICT`, `unixepoch()` for the
//! database's clock, integers for booleans); where the engines differ (claiming a job) a query
//! asks [`Db::dialect`] and says both. Nothing above this module knows which database it runs on.

pub mod access;
pub mod addresses;
pub mod audit;
pub mod backup;
pub mod billing;
pub mod catalogue;
pub mod console;
pub mod copy;
pub mod jobs;
pub mod login_attempts;
mod migrations;
pub mod nodes;
mod plugin_data;
mod postgres;
mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
mod value;
pub use migrations::SCHEMA_VERSION;
pub use value::{FromValue, Row, ToValue, Value, params, serde_name};
pub mod resources;
pub mod second_factors;
pub mod services;
pub mod sessions;
pub mod ssh_keys;
pub mod tokens;
pub mod users;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;

use crate::config::Database;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    notices: broadcast::Sender<Notice>,
    /// Stops the PostgreSQL listener when the last handle goes.
    _listener: Option<Arc<AbortOnDrop>>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// What [`Store::subscribe`] hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A payload some daemon sent with [`Store::notify`].
    Message(String),
    /// Notices may have been missed (the listener reconnected): look at the database again.
    Resync,
}

/// The one channel daemons notify each other on; payloads say what happened.
const NOTICE_CHANNEL: &str = "porthole";

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Which SQL a query must speak where the two engines differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What a statement produced: its rows (for `SELECT` and `RETURNING`) and how many rows it
/// changed.
#[derive(Debug, Default)]
pub struct Answer {
    pub rows: Vec<Row>,
    pub changed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(String),
    #[error("the database thread has stopped")]
    Closed,
    #[error("database column {column}: {reason}")]
    Decode { column: usize, reason: String },
    #[error("cannot store a value: {0}")]
    Encode(String),
    #[error("a transaction's handle outlived its body; its work was rolled back")]
    TransactionKept,
}

impl StoreError {
    /// A unique or primary key already taken.
    pub fn is_unique_violation(&self) -> bool {
        if let Some(code) = self.postgres_code() {
            return *code == SqlState::UNIQUE_VIOLATION;
        }
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => matches!(
                err.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }

    /// A row still referenced by another (deleting a user who owns services).
    pub fn is_foreign_key_violation(&self) -> bool {
        if let Some(code) = self.postgres_code() {
            return *code == SqlState::FOREIGN_KEY_VIOLATION;
        }
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(err, _)) => {
                err.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            }
            _ => false,
        }
    }

    /// A transaction that lost a race with another and may simply run again.
    pub fn is_retryable(&self) -> bool {
        self.postgres_code().is_some_and(|code| {
            *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        })
    }
}

/// Something statements run on: the store, or a transaction.
pub trait Db: Send + Sync {
    fn dialect(&self) -> Dialect;

    fn run(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Answer, StoreError>> + Send;

    /// The rows of a query.
    fn query(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<Row>, StoreError>> + Send {
        async move { Ok(self.run(sql, params).await?.rows) }
    }

    /// The first row of a query, if any.
    fn query_opt(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Option<Row>, StoreError>> + Send {
        async move { Ok(self.run(sql, params).await?.rows.into_iter().next()) }
    }

    /// The first row of a query that always has one (an aggregate, a `RETURNING` insert).
    fn query_one(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Row, StoreError>> + Send {
        async move {
            self.query_opt(sql, params)
                .await?
                .ok_or(StoreError::Decode {
                    column: 0,
                    reason: "the statement returned no row".into(),
                })
        }
    }

    /// The rows of a query, each made into a `T` by `from_row`.
    fn query_as<T: Send>(
        &self,
        sql: &str,
        params: Vec<Value>,
        from_row: impl Fn(&Row) -> Result<T, StoreError> + Send,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send {
        async move {
            self.query(sql, params)
                .await?
                .iter()
                .map(from_row)
                .collect()
        }
    }

    /// The first row of a query, if any, made into a `T` by `from_row`.
    fn query_opt_as<T: Send>(
        &self,
        sql: &str,
        params: Vec<Value>,
        from_row: impl Fn(&Row) -> Result<T, StoreError> + Send,
    ) -> impl Future<Output = Result<Option<T>, StoreError>> + Send {
        async move {
            self.query_opt(sql, params)
                .await?
                .as_ref()
                .map(from_row)
                .transpose()
        }
    }

    /// Runs a statement and says how many rows it changed.
    fn execute(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move { Ok(self.run(sql, params).await?.changed) }
    }
}

/// Notices a slow subscriber may fall behind by before it hears [`broadcast`]'s `Lagged` (and
/// resyncs).
const NOTICE_BACKLOG: usize = 1024;

/// A reference runs statements on what it refers to, so `&store` and `store` both do.
impl<T: Db> Db for &T {
    fn dialect(&self) -> Dialect {
        (**self).dialect()
    }

    async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        (**self).run(sql, params).await
    }
}

/// How long a transaction that keeps losing races is run again before its error is returned.
/// Orders of one customer all read that customer's services (the quota), so a burst of them
/// conflicts in turn; with the growing, jittered pause below even a burst of hundreds gets
/// through. A budget of time rather than of attempts, because a loaded machine makes each
/// attempt slower and so more likely to lose again.
const RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// The pause before attempt `attempt + 1`: random up to 2 ms doubling per attempt, at most
/// 250 ms, so racing transactions spread out instead of colliding again.
fn retry_pause(attempt: u32) -> std::time::Duration {
    let ceiling = (2u64 << attempt.min(7)).min(250);
    std::time::Duration::from_millis(rand::random_range(0..=ceiling))
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn connect(database: &Database) -> anyhow::Result<Self> {
        match database {
            Database::Sqlite(path) => Self::open(path).await,
            Database::Postgres(target) => {
                let db = postgres::Postgres::open(target).await?;
                let (notices, _) = broadcast::channel(NOTICE_BACKLOG);
                let listener = db.listen(NOTICE_CHANNEL, notices.clone());
                Ok(Self {
                    backend: Backend::Postgres(db),
                    notices,
                    _listener: Some(Arc::new(AbortOnDrop(listener))),
                })
            }
        }
    }

    /// Opens (creating if needed) and migrates the SQLite database at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            backend: Backend::Sqlite(sqlite::Sqlite::open(path).await?),
            notices: broadcast::channel(NOTICE_BACKLOG).0,
            _listener: None,
        })
    }

    /// The SQLite file, when the store is one.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(db) => Some(db.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// Tells every daemon on this database (this one included) `payload`. On SQLite only this
    /// process hears it; other processes sharing the file rely on their periodic sweeps.
    pub async fn notify(&self, payload: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => {
                let _ = self.notices.send(Notice::Message(payload.to_owned()));
                Ok(())
            }
            Backend::Postgres(db) => {
                // `pg_notify` returns `void`, which has no store value; as text it is an empty string.
                db.run(
                    "SELECT pg_notify(?1, ?2)::text",
                    params![NOTICE_CHANNEL, payload],
                )
                .await?;
                Ok(())
            }
        }
    }

    /// Hears what [`Store::notify`] sends, from here on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Runs `body` in a transaction: committed when it returns `Ok`, rolled back when it returns
    /// `Err` (or panics). A transaction that lost a race with another daemon's runs again from
    /// the start, so `body` must do nothing but database work. `body` gets its own handle on the
    /// transaction and must not keep it past its end.
    pub async fn transaction<T, E, F, Fut>(&self, mut body: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnMut(Tx) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = std::time::Instant::now();
        let mut attempt = 1;
        loop {
            let tx = self.begin().await?;
            let outcome = body(tx.clone()).await;
            let in_budget = started.elapsed() < RETRY_BUDGET;
            let retry = in_budget && tx.lost_race();
            match outcome {
                Ok(value) => match tx.commit().await {
                    Ok(()) => return Ok(value),
                    Err(err) if in_budget && err.is_retryable() => {}
                    Err(err) => return Err(err.into()),
                },
                Err(_) if retry => drop(tx),
                Err(err) => return Err(err),
            }
            tokio::time::sleep(retry_pause(attempt)).await;
            attempt += 1;
        }
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match &self.backend {
            Backend::Sqlite(db) => TxInner::Sqlite(db.begin().await?),
            Backend::Postgres(db) => TxInner::Postgres(db.begin().await?),
        };
        Ok(Tx {
            shared: Arc::new(TxShared {
                inner,
                lost_race: AtomicBool::new(false),
            }),
        })
    }
}

impl Db for Store {
    fn dialect(&self) -> Dialect {
        match &self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.run(sql, params).await,
            Backend::Postgres(db) => db.run(sql, params).await,
        }
    }
}

/// An open transaction (see [`Store::transaction`]); clones are handles on the same one.
#[derive(Clone)]
pub struct Tx {
    shared: Arc<TxShared>,
}

struct TxShared {
    inner: TxInner,
    /// Set when a statement failed because a concurrent transaction won, which makes the whole
    /// transaction worth running again whatever the body made of that error.
    lost_race: AtomicBool,
}

enum TxInner {
    Sqlite(sqlite::Tx),
    Postgres(postgres::Tx),
}

impl Tx {
    fn lost_race(&self) -> bool {
        self.shared.lost_race.load(Ordering::Relaxed)
    }

    /// Commits, when this is the last handle; a body that kept a handle gets its work rolled back.
    async fn commit(self) -> Result<(), StoreError> {
        let shared = Arc::into_inner(self.shared).ok_or(StoreError::TransactionKept)?;
        match shared.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await,
        }
    }
}

impl Db for Tx {
    fn dialect(&self) -> Dialect {
        match &self.shared.inner {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        let answer = match &self.shared.inner {
            TxInner::Sqlite(tx) => tx.run(sql, params).await,
            TxInner::Postgres(tx) => tx.run(sql, params).await,
        };
        if let Err(err) = &answer
            && err.is_retryable()
        {
            self.shared.lost_race.store(true, Ordering::Relaxed);
        }
        answer
    }
}

/// `value` as JSON text, for a column or a parameter that holds JSON.
fn json_text(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| StoreError::Encode(err.to_string()))
}

/// Seconds since the Unix epoch; every timestamp column holds this.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::testing::on_both_backends;
    use super::*;

    on_both_backends! {
        async fn a_notice_is_sent_and_heard(store: Store) -> anyhow::Result<()> {
            let mut notices = store.subscribe();
            // PostgreSQL's listener connects in the background; until it has, notices are lost.
            for _ in 0..100 {
                store.notify("hello").await?;
                let heard = tokio::time::timeout(std::time::Duration::from_millis(100), async {
                    loop {
                        if let Ok(Notice::Message(payload)) = notices.recv().await {
                            return payload;
                        }
                    }
                })
                .await;
                if let Ok(payload) = heard {
                    assert_eq!(payload, "hello");
                    return Ok(());
                }
            }
            anyhow::bail!("the notice was never heard")
        }

        async fn racing_transactions_that_read_what_the_others_write_all_commit_in_turn(store: Store) -> anyhow::Result<()> {
            // Each counts the rows and adds one numbered by that count: run serially they number
            // 0..N, and any interleaving that two of them saw the same count would show.
            const RACERS: usize = 40;
            let racers = (0..RACERS).map(|_| {
                store.transaction(|tx| async move {
                    let seen: i64 = tx
                        .query_one("SELECT count(*) FROM plugin_kv WHERE plugin = 'race'", vec![])
                        .await?
                        .get(0)?;
                    tx.execute(
                        "INSERT INTO plugin_kv (plugin, key, value) VALUES ('race', ?1, ?2)",
                        params![seen.to_string(), Vec::<u8>::new()],
                    )
                    .await?;
                    Ok::<_, StoreError>(())
                })
            });
            for outcome in futures_util::future::join_all(racers).await {
                outcome?;
            }
            let keys: Vec<String> = store
                .query_as("SELECT key FROM plugin_kv WHERE plugin = 'race'", vec![], |row| row.get(0))
                .await?;
            let mut numbers = keys.iter().map(|key| key.parse()).collect::<Result<Vec<usize>, _>>()?;
            numbers.sort_unstable();
            assert_eq!(numbers, (0..RACERS).collect::<Vec<_>>());
            Ok(())
        }
    }
}
