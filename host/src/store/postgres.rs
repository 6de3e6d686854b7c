//! The PostgreSQL back end: a pool of connections shared by every task of the daemon, for
//! several daemons on one database.
//!
//! The driver is `tokio-postgres` (the sfackler driver most of the ecosystem builds on: async,
//! no macros, no compile-time database) with `deadpool-postgres` as the pool, which adds only a
//! small, maintained, runtime-agnostic pool and a per-connection statement cache. Transactions
//! run `SERIALIZABLE`, so a transaction that reads and then writes behaves as it does on SQLite's
//! single writer; one that loses a race with another daemon's fails with a serialization error
//! and [`super::Store::transaction`] runs it again.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use futures_util::StreamExt as _;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::value::{Row, Value};
use super::{Answer, Notice, StoreError, migrations};
use crate::config::PostgresTarget;

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub(super) struct Postgres {
    pool: Pool,
    target: Arc<PostgresTarget>,
}

impl Postgres {
    /// Connects, checks the server answers, and migrates.
    pub async fn open(target: &PostgresTarget) -> anyhow::Result<Self> {
        let manager = Manager::from_config(
            target.connect_config(),
            target.tls_connector()?,
            ManagerConfig {
                // A connection comes back from a task that may have been cancelled mid-statement;
                // `Verified` sends an empty query before lending it again.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(target.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("while building the database pool")?;
        let db = Self {
            pool,
            target: Arc::new(target.clone()),
        };
        let mut client = db
            .connection()
            .await
            .with_context(|| format!("while connecting to {}", target.display()))?;
        migrations::apply_postgres(&mut client)
            .await
            .with_context(|| format!("while migrating {}", target.display()))?;
        Ok(db)
    }

    async fn connection(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|err| StoreError::Pool(err.to_string()))
    }

    /// Runs one statement outside any transaction.
    pub async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        let client = self.connection().await?;
        run(&client, sql, &params).await
    }

    /// Starts a serializable transaction on a connection of its own.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let client = self.connection().await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            .await?;
        Ok(Tx {
            client: Some(client),
        })
    }

    /// Forwards `NOTIFY`s on `channel` to `notices` until the returned task is aborted,
    /// reconnecting whenever the connection drops. Each (re)connection first sends
    /// [`Notice::Resync`]: whatever was sent while nobody listened is lost, so subscribers
    /// look at the database again.
    pub fn listen(
        &self,
        channel: &'static str,
        notices: broadcast::Sender<Notice>,
    ) -> tokio::task::JoinHandle<()> {
        let target = Arc::clone(&self.target);
        tokio::spawn(async move {
            loop {
                if let Err(err) = listen_once(&target, channel, &notices).await {
                    tracing::warn!(error = %err, "lost the database notification connection; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

async fn listen_once(
    target: &PostgresTarget,
    channel: &str,
    notices: &broadcast::Sender<Notice>,
) -> anyhow::Result<()> {
    let (client, mut connection) = target
        .connect_config()
        .connect(target.tls_connector()?)
        .await?;
    let (forward, mut received) = mpsc::unbounded_channel();
    // The connection yields notifications only while it is polled, so a task drives it.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if forward.send(note.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    let _ = notices.send(Notice::Resync);
    while let Some(payload) = received.recv().await {
        let _ = notices.send(Notice::Message(payload));
    }
    driver.await??;
    anyhow::bail!("the server closed the connection")
}

/// An open transaction; dropped without [`Tx::commit`] its connection is closed, which makes
/// the server roll it back (the connection is not lent again mid-transaction).
pub(super) struct Tx {
    client: Option<Object>,
}

impl Tx {
    pub async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        match &self.client {
            Some(client) => run(client, sql, &params).await,
            None => Err(StoreError::Closed),
        }
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        let client = self.client.take().ok_or(StoreError::Closed)?;
        match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(err) => {
                // Whatever state the failed COMMIT left, the connection does not go back.
                drop(Object::take(client));
                Err(err.into())
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

async fn run(
    client: &deadpool_postgres::Client,
    sql: &str,
    params: &[Value],
) -> Result<Answer, StoreError> {
    let statement = client.prepare_cached(&numbered_parameters(sql)).await?;
    let binds: Vec<Bind<'_>> = params.iter().map(Bind).collect();
    let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
    if statement.columns().is_empty() {
        let changed = client.execute(&statement, &refs).await?;
        return Ok(Answer {
            rows: Vec::new(),
            changed,
        });
    }
    let rows = client.query(&statement, &refs).await?;
    let changed = rows.len() as u64;
    let rows = rows.iter().map(read_row).collect::<Result<_, _>>()?;
    Ok(Answer { rows, changed })
}

/// Rewrites SQLite's `?N` parameters as PostgreSQL's `$N`, leaving quoted text alone.
fn numbered_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row, StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        values.push(read_value(row, index, column.type_())?);
    }
    Ok(Row::new(values))
}

fn read_value(row: &tokio_postgres::Row, index: usize, ty: &Type) -> Result<Value, StoreError> {
    let value = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)?
            .map(|v| Value::Real(v.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            row.try_get::<_, Option<String>>(index)?.map(Value::Text)
        }
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob),
        ref other => {
            return Err(StoreError::Decode {
                column: index,
                reason: format!("PostgreSQL type {other} has no store value; cast it in the query"),
            });
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A [`Value`] bound to whatever type PostgreSQL inferred for its parameter: the shared SQL
/// binds integers to `bigint`, `integer` or `boolean` columns alike, as SQLite does.
#[derive(Debug)]
struct Bind<'a>(&'a Value);

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().to_sql(ty, out),
            (Value::Real(r), &Type::FLOAT8) => r.to_sql(ty, out),
            (Value::Real(r), &Type::FLOAT4) => (*r as f32).to_sql(ty, out),
            (Value::Text(text), _) => text.as_str().to_sql(ty, out),
            (Value::Blob(bytes), &Type::BYTEA) => bytes.as_slice().to_sql(ty, out),
            (value, ty) => Err(format!("cannot bind {value:?} as PostgreSQL type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl StoreError {
    pub(super) fn postgres_code(&self) -> Option<&SqlState> {
        match self {
            StoreError::Postgres(err) => err.code(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::numbered_parameters;

    #[test]
    fn parameters_are_renumbered_outside_quotes() {
        assert_eq!(
            numbered_parameters("SELECT ?1, '?', ?12 WHERE a = '?2' OR b = ?2"),
            "SELECT $1, '?', $12 WHERE a = '?2' OR b = $2"
        );
    }
}
