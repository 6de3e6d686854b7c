//! The plugin runtime's tables: each plugin's `kv` entries (`plugin_kv`) and its breaker's trip
//! (`plugin_state`), lent to the runtime through its `KvStore` and `TripStore` traits.

use porthole_plugin_host::store::{KvStore, StoreFault, StoreFuture, Stored, Trip, TripStore};

use super::{Db, Store, StoreError, params};

/// Runs a store future as one the runtime can hold.
fn run<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> StoreFuture<T> {
    Box::pin(async move { work.await.map_err(|err| StoreFault(err.to_string())) })
}

impl KvStore for Store {
    fn get(&self, namespace: &str, key: &str) -> StoreFuture<Option<Vec<u8>>> {
        let (store, namespace, key) = (self.clone(), namespace.to_owned(), key.to_owned());
        run(async move { get(&store, &namespace, &key).await })
    }

    fn set(&self, namespace: &str, key: &str, value: Vec<u8>, quota: u64) -> StoreFuture<Stored> {
        let (store, namespace, key) = (self.clone(), namespace.to_owned(), key.to_owned());
        run(async move { set(&store, &namespace, &key, &value, quota).await })
    }

    fn delete(&self, namespace: &str, key: &str) -> StoreFuture<()> {
        let (store, namespace, key) = (self.clone(), namespace.to_owned(), key.to_owned());
        run(async move { delete(&store, &namespace, &key).await })
    }

    fn list_keys(&self, namespace: &str, prefix: &str, limit: u32) -> StoreFuture<Vec<String>> {
        let (store, namespace, prefix) = (self.clone(), namespace.to_owned(), prefix.to_owned());
        run(async move { list_keys(&store, &namespace, &prefix, limit).await })
    }
}

impl TripStore for Store {
    fn load(&self, plugin: &str) -> StoreFuture<Option<Trip>> {
        let (store, plugin) = (self.clone(), plugin.to_owned());
        run(async move { load_trip(&store, &plugin).await })
    }

    fn save(&self, plugin: &str, trip: Option<Trip>) -> StoreFuture<()> {
        let (store, plugin) = (self.clone(), plugin.to_owned());
        run(async move {
            save_trip(&store, &plugin, trip.as_ref()).await?;
            let notice = format!("{}{plugin}", crate::plugins::BREAKER_CHANGED);
            if let Err(err) = store.notify(&notice).await {
                tracing::warn!(plugin, error = %err, "could not tell other daemons of a breaker change");
            }
            Ok(())
        })
    }
}

async fn load_trip(db: &impl Db, plugin: &str) -> Result<Option<Trip>, StoreError> {
    let Some(row) = db
        .query_opt(
            "SELECT tripped_at, tripped_reason FROM plugin_state WHERE plugin = ?1",
            params![plugin],
        )
        .await?
    else {
        return Ok(None);
    };
    let (at, reason): (Option<i64>, Option<String>) = (row.get(0)?, row.get(1)?);
    Ok(at.and_then(|at| {
        Some(Trip {
            at: u64::try_from(at).ok()?,
            reason: reason.unwrap_or_else(|| "repeated failures".to_owned()),
        })
    }))
}

async fn save_trip(db: &impl Db, plugin: &str, trip: Option<&Trip>) -> Result<(), StoreError> {
    match trip {
        Some(trip) => {
            db.execute(
                "INSERT INTO plugin_state (plugin, tripped_at, tripped_reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plugin) DO UPDATE
                 SET tripped_at = excluded.tripped_at, tripped_reason = excluded.tripped_reason",
                params![plugin, trip.at, trip.reason],
            )
            .await
        }
        None => {
            db.execute(
                "DELETE FROM plugin_state WHERE plugin = ?1",
                params![plugin],
            )
            .await
        }
    }?;
    Ok(())
}

pub async fn get(db: &impl Db, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    db.query_opt(
        "SELECT value FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
        params![namespace, key],
    )
    .await?
    .map(|row| row.get(0))
    .transpose()
}

/// Stores `value` unless the namespace would then exceed `quota` bytes (keys plus values).
pub async fn set(
    store: &Store,
    namespace: &str,
    key: &str,
    value: &[u8],
    quota: u64,
) -> Result<Stored, StoreError> {
    store
        .transaction(|tx| async move {
            let others: i64 = tx
                .query_one(
                    "SELECT CAST(COALESCE(SUM(octet_length(key) + octet_length(value)), 0) AS BIGINT)
                       FROM plugin_kv WHERE plugin = ?1 AND key <> ?2",
                    params![namespace, key],
                )
                .await?
                .get(0)?;
            let total = others.max(0) as u64 + key.len() as u64 + value.len() as u64;
            if total > quota {
                return Ok(Stored::OverQuota { total });
            }
            tx.execute(
                "INSERT INTO plugin_kv (plugin, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                params![namespace, key, value],
            )
            .await?;
            Ok(Stored::Yes)
        })
        .await
}

pub async fn delete(db: &impl Db, namespace: &str, key: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
        params![namespace, key],
    )
    .await?;
    Ok(())
}

pub async fn list_keys(
    db: &impl Db,
    namespace: &str,
    prefix: &str,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    // substr comparison rather than LIKE, so `%` and `_` in a prefix are not wildcards.
    db.query_as(
        "SELECT key FROM plugin_kv
          WHERE plugin = ?1 AND substr(key, 1, length(?2)) = ?2
          ORDER BY key LIMIT ?3",
        params![namespace, prefix, limit],
        |row| row.get(0),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both_backends;

    on_both_backends! {
        async fn namespaces_do_not_see_each_other(store: Store) -> anyhow::Result<()> {
            let db = store;
            assert_eq!(set(&db, "alpha", "token", b"a-secret", 1024).await?, Stored::Yes);
            assert_eq!(get(&db, "beta", "token").await?, None);
            assert_eq!(list_keys(&db, "beta", "", 10).await?, Vec::<String>::new());
            delete(&db, "beta", "token").await?;
            assert_eq!(get(&db, "alpha", "token").await?, Some(b"a-secret".to_vec()));
            Ok(())
        }

        async fn quota_counts_keys_and_values_and_replacing_frees_the_old_value(store: Store) -> anyhow::Result<()> {
            let db = store;
            assert_eq!(set(&db, "p", "k", &[0; 90], 100).await?, Stored::Yes);
            assert_eq!(
                set(&db, "p", "other", &[0; 20], 100).await?,
                Stored::OverQuota { total: 116 }
            );
            assert_eq!(set(&db, "p", "k", &[0; 99], 100).await?, Stored::Yes);
            assert_eq!(
                set(&db, "p", "k", &[0; 100], 100).await?,
                Stored::OverQuota { total: 101 }
            );
            Ok(())
        }

        async fn list_keys_matches_prefixes_literally(store: Store) -> anyhow::Result<()> {
            let db = store;
            for key in ["a%1", "ab", "a%2", "b"] {
                assert_eq!(set(&db, "p", key, b"", 1024).await?, Stored::Yes);
            }
            assert_eq!(list_keys(&db, "p", "a%", 10).await?, vec!["a%1", "a%2"]);
            assert_eq!(list_keys(&db, "p", "", 2).await?, vec!["a%1", "a%2"]);
            Ok(())
        }
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;
    use crate::store::testing::TestStore;

    /// Two daemons store different keys at once, each fitting the quota alone but not together:
    /// the quota holds across daemons (the loser's transaction runs again and sees the winner's).
    #[tokio::test]
    async fn the_kv_quota_holds_across_racing_daemons() -> anyhow::Result<()> {
        let test = TestStore::postgres().await?;
        for round in 0..10 {
            let namespace = format!("plugin{round}");
            let daemons = [test.store.clone(), test.another_daemon().await?];
            let writes = daemons.iter().enumerate().map(|(n, daemon)| {
                let (daemon, namespace) = (daemon.clone(), namespace.clone());
                tokio::spawn(async move {
                    set(&daemon, &namespace, &format!("key{n}"), &[0; 60], 100).await
                })
            });
            let mut stored = 0;
            for write in writes.collect::<Vec<_>>() {
                if write.await?? == Stored::Yes {
                    stored += 1;
                }
            }
            assert_eq!(stored, 1, "round {round}");
        }
        Ok(())
    }
}
