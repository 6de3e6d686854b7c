//! Moving an installation from one database to another (`porthole db copy`): every table, row for
//! row, into an empty target at the same schema version, in one transaction, then checked: the
//! same number of rows and the same SHA-256 over every row, read back from the target in the same
//! order as from the source.

use sha2::{Digest as _, Sha256};

use super::{Db, Dialect, Row, Store, StoreError, Value, params};

/// Tables in an order that inserts every referenced row before the rows that refer to it.
const TABLES: &[&str] = &[
    "users",
    "sessions",
    "api_tokens",
    "clusters",
    "nodes",
    "services",
    "ip_addresses",
    "jobs",
    "job_events",
    "audit_log",
    "console_tokens",
    "console_sessions",
    "plugin_kv",
    "plugin_state",
    "templates",
    "plans",
    "quotas",
    "billing_events",
    "service_resources",
    "login_attempts",
    "totp_secrets",
    "recovery_codes",
    "login_challenges",
    "passkeys",
    "passkey_registrations",
    "ssh_keys",
];

/// Rows a single `INSERT` carries: few enough for PostgreSQL's 65535 parameters at any width.
const ROWS_PER_INSERT: usize = 200;

/// What was copied, table by table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: usize,
    /// Hex SHA-256 over the rows, the same on both sides.
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target database already holds {rows} row(s) in {table}; copy into an empty one")]
    TargetNotEmpty { table: &'static str, rows: i64 },
    #[error(
        "{table} differs after the copy: {source_rows} row(s) with checksum {source_sum} in the \
         source, {target_rows} with {target_sum} in the target"
    )]
    Mismatch {
        table: &'static str,
        source_rows: usize,
        source_sum: String,
        target_rows: usize,
        target_sum: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copies everything from `source` into the empty `target`, then checks every table.
pub async fn copy(source: &Store, target: &Store) -> Result<Vec<Copied>, CopyError> {
    for &table in TABLES {
        let rows: i64 = target
            .query_one(&format!("SELECT count(*) FROM {table}"), params![])
            .await?
            .get(0)?;
        if rows > 0 {
            return Err(CopyError::TargetNotEmpty { table, rows });
        }
    }
    let mut tables = Vec::new();
    for &table in TABLES {
        let layout = Layout::of(source, table).await?;
        let rows = source.query(&layout.select(), params![]).await?;
        tables.push((table, layout, rows));
    }
    let tables = &tables;
    target
        .transaction(|tx| async move {
            for (table, layout, rows) in tables {
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let values = chunk.iter().flat_map(|row| row.values().iter().cloned());
                    tx.execute(&layout.insert(table, chunk.len()), values.collect())
                        .await?;
                }
                layout.continue_identity(&tx, table).await?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    let mut copied = Vec::new();
    for (table, layout, rows) in tables {
        let source_sum = checksum(rows);
        let back = target.query(&layout.select(), params![]).await?;
        let target_sum = checksum(&back);
        if back.len() != rows.len() || target_sum != source_sum {
            return Err(CopyError::Mismatch {
                table,
                source_rows: rows.len(),
                source_sum,
                target_rows: back.len(),
                target_sum,
            });
        }
        copied.push(Copied {
            table,
            rows: rows.len(),
            checksum: source_sum,
        });
    }
    Ok(copied)
}

/// A table's columns and primary key, as the source's schema has them.
struct Layout {
    table: &'static str,
    columns: Vec<String>,
    key: Vec<String>,
}

impl Layout {
    async fn of(db: &impl Db, table: &'static str) -> Result<Self, StoreError> {
        let sql = match db.dialect() {
            Dialect::Sqlite => "SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid",
            // Both engines have the same columns (a test says so); copying out of PostgreSQL
            // reads its primary key from the catalogue.
            Dialect::Postgres => {
                "SELECT CAST(c.column_name AS TEXT),
                        CAST(coalesce(k.ordinal_position, 0) AS BIGINT)
                 FROM information_schema.columns c
                 LEFT JOIN information_schema.table_constraints t
                   ON t.table_name = c.table_name AND t.constraint_type = 'PRIMARY KEY'
                 LEFT JOIN information_schema.key_column_usage k
                   ON k.constraint_name = t.constraint_name AND k.column_name = c.column_name
                 WHERE c.table_schema = 'public' AND c.table_name = ?1 AND c.column_name <> 'rowid'
                 ORDER BY c.ordinal_position"
            }
        };
        let rows = db.query(sql, params![table]).await?;
        let mut columns = Vec::new();
        let mut key = Vec::new();
        for row in &rows {
            let (name, position): (String, i64) = (row.get(0)?, row.get(1)?);
            if position > 0 {
                key.push((position, name.clone()));
            }
            columns.push(name);
        }
        key.sort();
        Ok(Self {
            table,
            columns,
            key: key.into_iter().map(|(_, name)| name).collect(),
        })
    }

    /// Every row in primary-key order, which is the same order on both engines (PostgreSQL's
    /// text columns collate as bytes, as SQLite's do). `service_resources` is read in insertion
    /// order, so the target's `rowid` numbers its rows in the same order.
    fn select(&self) -> String {
        let order = if self.table == "service_resources" {
            "created_at, rowid".to_owned()
        } else {
            self.key.join(", ")
        };
        format!(
            "SELECT {} FROM {} ORDER BY {order}",
            self.columns.join(", "),
            self.table
        )
    }

    fn insert(&self, table: &str, rows: usize) -> String {
        let width = self.columns.len();
        let tuples: Vec<String> = (0..rows)
            .map(|row| {
                let cells: Vec<String> = (1..=width)
                    .map(|c| format!("?{}", row * width + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO {table} ({}) VALUES {}",
            self.columns.join(", "),
            tuples.join(", ")
        )
    }

    /// PostgreSQL's identity columns hand out numbers from a sequence that rows inserted with
    /// their own ids did not advance; it continues after the largest copied id.
    async fn continue_identity(&self, db: &impl Db, table: &str) -> Result<(), StoreError> {
        if db.dialect() != Dialect::Postgres || self.key != ["id"] {
            return Ok(());
        }
        db.query(
            &format!(
                "SELECT CAST(setval(pg_get_serial_sequence(?1, 'id'),
                                    coalesce(max(id), 0) + 1, false) AS BIGINT)
                 FROM {table}"
            ),
            params![table],
        )
        .await?;
        Ok(())
    }
}

/// SHA-256 over every value of every row, each tagged with its type and length, so that no two
/// different tables of rows hash alike.
fn checksum(rows: &[Row]) -> String {
    let mut hash = Sha256::new();
    for row in rows {
        for value in row.values() {
            match value {
                Value::Null => hash.update([0]),
                Value::Int(i) => {
                    hash.update([1]);
                    hash.update(i.to_be_bytes());
                }
                Value::Real(r) => {
                    hash.update([2]);
                    hash.update(r.to_be_bytes());
                }
                Value::Text(text) => {
                    hash.update([3]);
                    hash.update((text.len() as u64).to_be_bytes());
                    hash.update(text.as_bytes());
                }
                Value::Blob(bytes) => {
                    hash.update([4]);
                    hash.update((bytes.len() as u64).to_be_bytes());
                    hash.update(bytes);
                }
            }
        }
        hash.update([0xff]);
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TestStore;

    #[tokio::test]
    async fn every_table_is_copied() -> anyhow::Result<()> {
        let test = TestStore::sqlite().await?;
        let rows = test
            .store
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                params![],
            )
            .await?;
        let mut tables: Vec<String> = rows
            .iter()
            .map(|row| row.get(0))
            .collect::<Result<_, _>>()?;
        let mut copied: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
        tables.sort();
        copied.sort();
        assert_eq!(tables, copied);
        Ok(())
    }
}
