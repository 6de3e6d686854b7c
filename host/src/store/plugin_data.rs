//! The plugin runtime's tables: each plugin's `kv` entries (`plugin_kv`) and its breaker's trip
//! (`plugin_state`), lent to the runtime through its `KvStore` and `TripStore` traits.

use porthole_plugin_host::store::{KvStore, StoreFault, StoreFuture, Stored, Trip, TripStore};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError};

/// Runs `work` on the store's thread, as a future the runtime can hold.
fn run<T: Send + 'static>(
    store: &Store,
    work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> StoreFuture<T> {
    let store = store.clone();
    Box::pin(async move {
        store
            .call(work)
            .await
            .map_err(|err: StoreError| StoreFault(err.to_string()))
    })
}

impl KvStore for Store {
    fn get(&self, namespace: &str, key: &str) -> StoreFuture<Option<Vec<u8>>> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        run(self, move |conn| get(conn, &namespace, &key))
    }

    fn set(&self, namespace: &str, key: &str, value: Vec<u8>, quota: u64) -> StoreFuture<Stored> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        run(self, move |conn| set(conn, &namespace, &key, &value, quota))
    }

    fn delete(&self, namespace: &str, key: &str) -> StoreFuture<()> {
        let (namespace, key) = (namespace.to_owned(), key.to_owned());
        run(self, move |conn| delete(conn, &namespace, &key))
    }

    fn list_keys(&self, namespace: &str, prefix: &str, limit: u32) -> StoreFuture<Vec<String>> {
        let (namespace, prefix) = (namespace.to_owned(), prefix.to_owned());
        run(self, move |conn| {
            list_keys(conn, &namespace, &prefix, limit)
        })
    }
}

impl TripStore for Store {
    fn load(&self, plugin: &str) -> StoreFuture<Option<Trip>> {
        let plugin = plugin.to_owned();
        run(self, move |conn| load_trip(conn, &plugin))
    }

    fn save(&self, plugin: &str, trip: Option<Trip>) -> StoreFuture<()> {
        let plugin = plugin.to_owned();
        run(self, move |conn| save_trip(conn, &plugin, trip.as_ref()))
    }
}

fn load_trip(conn: &Connection, plugin: &str) -> rusqlite::Result<Option<Trip>> {
    let row: Option<(Option<i64>, Option<String>)> = conn
        .query_row(
            "SELECT tripped_at, tripped_reason FROM plugin_state WHERE plugin = ?1",
            [plugin],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(at, reason)| {
        Some(Trip {
            at: u64::try_from(at?).ok()?,
            reason: reason.unwrap_or_else(|| "repeated failures".to_owned()),
        })
    }))
}

fn save_trip(conn: &Connection, plugin: &str, trip: Option<&Trip>) -> rusqlite::Result<()> {
    match trip {
        Some(trip) => conn.execute(
            "INSERT INTO plugin_state (plugin, tripped_at, tripped_reason) VALUES (?1, ?2, ?3)
             ON CONFLICT (plugin) DO UPDATE
             SET tripped_at = excluded.tripped_at, tripped_reason = excluded.tripped_reason",
            params![
                plugin,
                i64::try_from(trip.at).unwrap_or(i64::MAX),
                trip.reason
            ],
        ),
        None => conn.execute("DELETE FROM plugin_state WHERE plugin = ?1", [plugin]),
    }?;
    Ok(())
}

pub fn get(conn: &Connection, namespace: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT value FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
        params![namespace, key],
        |row| row.get(0),
    )
    .optional()
}

/// Stores `value` unless the namespace would then exceed `quota` bytes (keys plus values).
pub fn set(
    conn: &mut Connection,
    namespace: &str,
    key: &str,
    value: &[u8],
    quota: u64,
) -> rusqlite::Result<Stored> {
    let tx = conn.transaction()?;
    let others: i64 = tx.query_row(
        "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0)
           FROM plugin_kv WHERE plugin = ?1 AND key <> ?2",
        params![namespace, key],
        |row| row.get(0),
    )?;
    let total = others.max(0) as u64 + key.len() as u64 + value.len() as u64;
    if total > quota {
        return Ok(Stored::OverQuota { total });
    }
    tx.execute(
        "INSERT INTO plugin_kv (plugin, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
        params![namespace, key, value],
    )?;
    tx.commit()?;
    Ok(Stored::Yes)
}

pub fn delete(conn: &Connection, namespace: &str, key: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
        params![namespace, key],
    )?;
    Ok(())
}

pub fn list_keys(
    conn: &Connection,
    namespace: &str,
    prefix: &str,
    limit: u32,
) -> rusqlite::Result<Vec<String>> {
    // substr comparison rather than LIKE, so `%` and `_` in a prefix are not wildcards.
    let mut statement = conn.prepare(
        "SELECT key FROM plugin_kv
          WHERE plugin = ?1 AND substr(key, 1, length(?2)) = ?2
          ORDER BY key LIMIT ?3",
    )?;
    statement
        .query_map(params![namespace, prefix, limit], |row| row.get(0))?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Option<(tempfile::TempDir, Connection)> {
        let dir = tempfile::tempdir().ok()?;
        let conn = crate::store::open_connection(&dir.path().join("kv.db")).ok()?;
        Some((dir, conn))
    }

    #[test]
    fn namespaces_do_not_see_each_other() -> anyhow::Result<()> {
        let (_dir, mut conn) = database().ok_or_else(|| anyhow::anyhow!("no database"))?;
        assert_eq!(
            set(&mut conn, "alpha", "token", b"a-secret", 1024)?,
            Stored::Yes
        );
        assert_eq!(get(&conn, "beta", "token")?, None);
        assert_eq!(list_keys(&conn, "beta", "", 10)?, Vec::<String>::new());
        delete(&conn, "beta", "token")?;
        assert_eq!(get(&conn, "alpha", "token")?, Some(b"a-secret".to_vec()));
        Ok(())
    }

    #[test]
    fn quota_counts_keys_and_values_and_replacing_frees_the_old_value() -> anyhow::Result<()> {
        let (_dir, mut conn) = database().ok_or_else(|| anyhow::anyhow!("no database"))?;
        assert_eq!(set(&mut conn, "p", "k", &[0; 90], 100)?, Stored::Yes);
        assert_eq!(
            set(&mut conn, "p", "other", &[0; 20], 100)?,
            Stored::OverQuota { total: 116 }
        );
        assert_eq!(set(&mut conn, "p", "k", &[0; 99], 100)?, Stored::Yes);
        assert_eq!(
            set(&mut conn, "p", "k", &[0; 100], 100)?,
            Stored::OverQuota { total: 101 }
        );
        Ok(())
    }

    #[test]
    fn list_keys_matches_prefixes_literally() -> anyhow::Result<()> {
        let (_dir, mut conn) = database().ok_or_else(|| anyhow::anyhow!("no database"))?;
        for key in ["a%1", "ab", "a%2", "b"] {
            assert_eq!(set(&mut conn, "p", key, b"", 1024)?, Stored::Yes);
        }
        assert_eq!(list_keys(&conn, "p", "a%", 10)?, vec!["a%1", "a%2"]);
        assert_eq!(list_keys(&conn, "p", "", 2)?, vec!["a%1", "a%2"]);
        Ok(())
    }
}
