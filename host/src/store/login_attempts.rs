//! Sign-in attempts (`login_attempts`), the memory of the sign-in rate limits, shared by every
//! daemon on the database. The rules (windows, limits, what a success clears) are
//! [`crate::auth::login_limit`]'s; this is their SQL.

use super::{Db, StoreError, params};

/// Failures counted against one account or one address: how many, and when the oldest was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub count: usize,
    /// Unix seconds.
    pub oldest: Option<i64>,
}

/// The failures since `since` (unix seconds) that count against `account`, and those that
/// count against `address`.
pub async fn failures(
    db: &impl Db,
    account: &str,
    address: &str,
    since: i64,
) -> Result<(Counted, Counted), StoreError> {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE account = ?1 AND account_cleared = 0),
                    min(at) FILTER (WHERE account = ?1 AND account_cleared = 0),
                    count(*) FILTER (WHERE address = ?2),
                    min(at) FILTER (WHERE address = ?2)
             FROM login_attempts WHERE at > ?3 AND (account = ?1 OR address = ?2)",
            params![account, address, since],
        )
        .await?;
    let counted = |n: usize| -> Result<Counted, StoreError> {
        Ok(Counted {
            count: usize::try_from(row.get::<i64>(n)?).unwrap_or(0),
            oldest: row.get(n + 1)?,
        })
    };
    Ok((counted(0)?, counted(2)?))
}

/// Records an attempt let through at `at`; returns its id.
pub async fn insert(
    db: &impl Db,
    account: &str,
    address: &str,
    at: i64,
) -> Result<i64, StoreError> {
    db.query_one(
        "INSERT INTO login_attempts (account, address, at) VALUES (?1, ?2, ?3) RETURNING id",
        params![account, address, at],
    )
    .await?
    .get(0)
}

/// Attempt `id` had the right password: it is no failure, and the account's earlier failures
/// no longer count against the account.
pub async fn succeeded(db: &impl Db, id: i64, account: &str) -> Result<(), StoreError> {
    db.execute("DELETE FROM login_attempts WHERE id = ?1", params![id])
        .await?;
    db.execute(
        "UPDATE login_attempts SET account_cleared = 1 WHERE account = ?1 AND account_cleared = 0",
        params![account],
    )
    .await?;
    Ok(())
}

/// Attempt `id` had the right password, but a second factor is still to come: the attempt is no
/// failure, and the account's earlier failures (wrong codes among them) still count.
pub async fn discard(db: &impl Db, id: i64) -> Result<(), StoreError> {
    db.execute("DELETE FROM login_attempts WHERE id = ?1", params![id])
        .await?;
    Ok(())
}

/// Deletes the attempts made before `before` (outside every window); returns how many.
pub async fn purge(db: &impl Db, before: i64) -> Result<u64, StoreError> {
    db.execute("DELETE FROM login_attempts WHERE at <= ?1", params![before])
        .await
}
