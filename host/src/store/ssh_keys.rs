//! Customers' SSH keychains (keys parsed by `crate::ssh_keys` before they get here).

use serde::Serialize;

use super::{Db, Row, StoreError, params};

/// One key of a customer's keychain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoredKey {
    pub id: i64,
    pub name: String,
    /// The `authorized_keys` line.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub created_at: i64,
}

/// A key to add to `user_id`'s keychain.
pub struct NewKey<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub public_key: &'a str,
    pub fingerprint: &'a str,
}

const COLUMNS: &str = "id, name, public_key, fingerprint, created_at";

fn from_row(row: &Row) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        id: row.get(0)?,
        name: row.get(1)?,
        public_key: row.get(2)?,
        fingerprint: row.get(3)?,
        created_at: row.get(4)?,
    })
}

/// Adds a key; a name or fingerprint the user already has fails with a unique violation.
pub async fn insert(db: &impl Db, key: &NewKey<'_>) -> Result<StoredKey, StoreError> {
    let row = db
        .query_one(
            &format!(
                "INSERT INTO ssh_keys (user_id, name, public_key, fingerprint, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING {COLUMNS}"
            ),
            params![
                key.user_id,
                key.name,
                key.public_key,
                key.fingerprint,
                super::now()
            ],
        )
        .await?;
    from_row(&row)
}

/// The user's keys, oldest first.
pub async fn list(db: &impl Db, user_id: i64) -> Result<Vec<StoredKey>, StoreError> {
    db.query_as(
        &format!("SELECT {COLUMNS} FROM ssh_keys WHERE user_id = ?1 ORDER BY id"),
        params![user_id],
        from_row,
    )
    .await
}

/// The user's keys among `ids`, in the order of `ids`; an id that is not the user's is left out
/// (the caller compares lengths to tell).
pub async fn chosen(db: &impl Db, user_id: i64, ids: &[i64]) -> Result<Vec<StoredKey>, StoreError> {
    let keys = list(db, user_id).await?;
    Ok(ids
        .iter()
        .filter_map(|id| keys.iter().find(|k| k.id == *id).cloned())
        .collect())
}

/// How many keys the user has.
pub async fn count(db: &impl Db, user_id: i64) -> Result<i64, StoreError> {
    let row = db
        .query_one(
            "SELECT COUNT(*) FROM ssh_keys WHERE user_id = ?1",
            params![user_id],
        )
        .await?;
    row.get(0)
}

/// Removes the user's key `id`; the removed key, or `None` if the user has no such key.
pub async fn delete(db: &impl Db, user_id: i64, id: i64) -> Result<Option<StoredKey>, StoreError> {
    db.query_opt_as(
        &format!("DELETE FROM ssh_keys WHERE user_id = ?1 AND id = ?2 RETURNING {COLUMNS}"),
        params![user_id, id],
        from_row,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both_backends;
    use crate::store::users::{self, Role};

    on_both_backends! {
        async fn keychains_are_per_user_and_refuse_a_key_twice(store: Store) -> anyhow::Result<()> {
            let alice = users::insert(&store, "alice", Role::Customer, "x").await?.id;
            let bob = users::insert(&store, "bob", Role::Customer, "x").await?.id;
            let key = |user_id, name| NewKey {
                user_id,
                name,
                public_key: "ssh-ed25519 AAAA",
                fingerprint: "SHA256:x",
            };
            let first = insert(&store, &key(alice, "laptop")).await?;
            // Bob may hold the same key; Alice may not hold it twice, nor two keys of one name.
            insert(&store, &key(bob, "laptop")).await?;
            let twice = insert(&store, &key(alice, "desk")).await;
            assert!(twice.is_err_and(|err| err.is_unique_violation()));
            assert_eq!(count(&store, alice).await?, 1);
            let bobs = list(&store, bob).await?;
            assert_eq!(chosen(&store, alice, &[bobs[0].id]).await?, vec![]);
            assert_eq!(delete(&store, bob, first.id).await?, None);
            assert_eq!(delete(&store, alice, first.id).await?, Some(first));
            assert!(list(&store, alice).await?.is_empty());
            Ok(())
        }
    }
}
