//! The `kv` interface: a small persistent store private to each plugin, with a size quota.
//!
//! The namespace is the plugin's configured name, fixed by the host for the whole call; the guest
//! only ever supplies keys inside it. Queries are plain functions over a `Connection` so they run
//! on the store's thread and are testable without a runtime.

use rusqlite::{Connection, OptionalExtension, params};
use wasmtime::component::{HasSelf, Linker};

use super::bindings::kv::{self, KvError};
use super::sandbox::CallState;
use crate::store::Store;

const MAX_KEY_BYTES: usize = 256;
const MAX_LIST: u32 = 1000;

/// What the `kv` interface needs for one call.
pub struct KvState {
    namespace: String,
    store: Option<Store>,
    quota_bytes: u64,
}

impl KvState {
    pub fn new(namespace: &str, store: Option<Store>, quota_kib: u32) -> Self {
        Self {
            namespace: namespace.to_owned(),
            store,
            quota_bytes: u64::from(quota_kib) * 1024,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<Result<T, KvError>> + Send + 'static,
    ) -> Result<T, KvError> {
        let Some(store) = &self.store else {
            return Err(KvError::Unavailable(
                "this Porthole runs without a database".into(),
            ));
        };
        match store.call(work).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(plugin = %self.namespace, error = %err, "plugin kv query failed");
                Err(KvError::Unavailable(
                    "the store failed; try again later".into(),
                ))
            }
        }
    }
}

pub fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    kv::add_to_linker::<CallState, HasSelf<KvState>>(linker, |state| &mut state.kv)
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::InvalidKey(format!(
            "keys are 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

impl kv::Host for KvState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        check_key(&key)?;
        let namespace = self.namespace.clone();
        self.run(move |conn| get(conn, &namespace, &key).map(Ok))
            .await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        check_key(&key)?;
        let namespace = self.namespace.clone();
        let quota = self.quota_bytes;
        self.run(move |conn| set(conn, &namespace, &key, &value, quota))
            .await
    }

    async fn delete(&mut self, key: String) -> Result<(), KvError> {
        check_key(&key)?;
        let namespace = self.namespace.clone();
        self.run(move |conn| delete(conn, &namespace, &key).map(Ok))
            .await
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, KvError> {
        let namespace = self.namespace.clone();
        let limit = limit.min(MAX_LIST);
        self.run(move |conn| list_keys(conn, &namespace, &prefix, limit).map(Ok))
            .await
    }
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
) -> rusqlite::Result<Result<(), KvError>> {
    let tx = conn.transaction()?;
    let others: i64 = tx.query_row(
        "SELECT COALESCE(SUM(length(CAST(key AS BLOB)) + length(value)), 0)
           FROM plugin_kv WHERE plugin = ?1 AND key <> ?2",
        params![namespace, key],
        |row| row.get(0),
    )?;
    let total = others.max(0) as u64 + key.len() as u64 + value.len() as u64;
    if total > quota {
        return Ok(Err(KvError::QuotaExceeded(format!(
            "storing this would use {total} bytes of a {quota}-byte quota"
        ))));
    }
    tx.execute(
        "INSERT INTO plugin_kv (plugin, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
        params![namespace, key, value],
    )?;
    tx.commit()?;
    Ok(Ok(()))
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
        set(&mut conn, "alpha", "token", b"a-secret", 1024)?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert_eq!(get(&conn, "beta", "token")?, None);
        assert_eq!(list_keys(&conn, "beta", "", 10)?, Vec::<String>::new());
        delete(&conn, "beta", "token")?;
        assert_eq!(get(&conn, "alpha", "token")?, Some(b"a-secret".to_vec()));
        Ok(())
    }

    #[test]
    fn quota_counts_keys_and_values_and_replacing_frees_the_old_value() -> anyhow::Result<()> {
        let (_dir, mut conn) = database().ok_or_else(|| anyhow::anyhow!("no database"))?;
        assert!(set(&mut conn, "p", "k", &[0; 90], 100)?.is_ok());
        assert!(matches!(
            set(&mut conn, "p", "other", &[0; 20], 100)?,
            Err(KvError::QuotaExceeded(_))
        ));
        assert!(set(&mut conn, "p", "k", &[0; 99], 100)?.is_ok());
        assert!(matches!(
            set(&mut conn, "p", "k", &[0; 100], 100)?,
            Err(KvError::QuotaExceeded(_))
        ));
        Ok(())
    }

    #[test]
    fn list_keys_matches_prefixes_literally() -> anyhow::Result<()> {
        let (_dir, mut conn) = database().ok_or_else(|| anyhow::anyhow!("no database"))?;
        for key in ["a%1", "ab", "a%2", "b"] {
            set(&mut conn, "p", key, b"", 1024)?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        assert_eq!(list_keys(&conn, "p", "a%", 10)?, vec!["a%1", "a%2"]);
        assert_eq!(list_keys(&conn, "p", "", 2)?, vec!["a%1", "a%2"]);
        Ok(())
    }
}
