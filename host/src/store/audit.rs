//! The append-only audit log.

use serde::Serialize;

use super::{Db, Row, StoreError, params};

/// One audit entry to write. `actor` is `user:<id>`, `user:<id>/token:<id>`, `plugin:<name>`,
/// `anonymous` or `system`.
pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: serde_json::Value,
    pub client: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Record {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    /// The account the actor acted as, while it exists.
    pub user_id: Option<i64>,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub client: Option<String>,
}

/// Which entries to read. Every field left `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Entries whose actor is this account, with any of its tokens.
    pub user_id: Option<i64>,
    /// Entries whose actor is exactly this (`system`, `plugin:whmcs`, …).
    pub actor: Option<&'a str>,
    /// One action or one family of them: `console` matches `console.open`, `console.refused`
    /// and the rest, as `console.open` matches itself.
    pub action: Option<&'a str>,
    /// Entries at or after this time (unix seconds).
    pub since: Option<i64>,
    /// Entries before this time (unix seconds).
    pub until: Option<i64>,
    /// Only these actions, when not empty. Names are the code's own constants: they are
    /// written into the query as literals.
    pub only_actions: &'static [&'static str],
}

/// Where a page starts, by entry id.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    /// The newest entries older than `before` (the newest of all when `None`), newest first.
    NewestFirst { before: Option<i64> },
    /// The oldest entries newer than `after`, oldest first: how an export walks the log.
    OldestFirst { after: i64 },
}

/// The account an actor acts as, if any: `user:12` and `user:12/token:3` are account 12's.
pub fn actor_user(actor: &str) -> Option<i64> {
    let rest = actor.strip_prefix("user:")?;
    let id = rest.split_once('/').map_or(rest, |(id, _)| id);
    id.parse().ok()
}

pub async fn record(db: &impl Db, entry: &Entry<'_>) -> Result<i64, StoreError> {
    db.query_one(
        "INSERT INTO audit_log (at, actor, user_id, action, target, detail, client)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            super::now(),
            entry.actor,
            actor_user(entry.actor),
            entry.action,
            entry.target,
            entry.detail.to_string(),
            entry.client
        ],
    )
    .await?
    .get(0)
}

/// Unlinks a deleted account's entries from it: SQLite may give its id to the next account,
/// which must not see them as its own activity. The entries keep their actor text.
pub async fn forget_account(db: &impl Db, user_id: i64) -> Result<u64, StoreError> {
    db.execute(
        "UPDATE audit_log SET user_id = NULL WHERE user_id = ?1",
        params![user_id],
    )
    .await
}

fn from_row(row: &Row) -> Result<Record, StoreError> {
    let detail: String = row.get(5)?;
    Ok(Record {
        id: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        target: row.get(4)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        client: row.get(6)?,
        user_id: row.get(7)?,
    })
}

/// Up to `limit` entries matching `filter`, in the order and from the place `page` says.
pub async fn search(
    db: &impl Db,
    filter: &Filter<'_>,
    page: Page,
    limit: u32,
) -> Result<Vec<Record>, StoreError> {
    let (cursor, order) = match page {
        Page::NewestFirst { before } => (
            format!("id < {}", before.unwrap_or(i64::MAX)),
            "ORDER BY id DESC",
        ),
        Page::OldestFirst { after } => (format!("id > {after}"), "ORDER BY id ASC"),
    };
    let only = if filter.only_actions.is_empty() {
        String::new()
    } else {
        debug_assert!(filter.only_actions.iter().all(|a| !a.contains('\'')));
        let names: Vec<String> = filter
            .only_actions
            .iter()
            .map(|a| format!("'{a}'"))
            .collect();
        format!("AND action IN ({})", names.join(", "))
    };
    // substr, not LIKE: a filter's `_` or `%` is text, not a wildcard. The casts tell
    // PostgreSQL what type a parameter that is NULL has.
    let sql = format!(
        "SELECT id, at, actor, action, target, detail, client, user_id FROM audit_log
         WHERE {cursor}
           AND (CAST(?1 AS BIGINT) IS NULL OR user_id = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR actor = ?2)
           AND (CAST(?3 AS TEXT) IS NULL OR action = ?3
                OR substr(action, 1, length(?3) + 1) = ?3 || '.')
           AND (CAST(?4 AS BIGINT) IS NULL OR at >= ?4)
           AND (CAST(?5 AS BIGINT) IS NULL OR at < ?5)
           {only}
         {order} LIMIT ?6"
    );
    db.query_as(
        &sql,
        params![
            filter.user_id,
            filter.actor,
            filter.action,
            filter.since,
            filter.until,
            limit
        ],
        from_row,
    )
    .await
}

/// The newest entries first, optionally only one action or one family of them.
pub async fn recent(
    db: &impl Db,
    action: Option<&str>,
    limit: u32,
) -> Result<Vec<Record>, StoreError> {
    let filter = Filter {
        action,
        ..Filter::default()
    };
    search(db, &filter, Page::NewestFirst { before: None }, limit).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::testing::on_both_backends;

    #[test]
    fn an_actor_names_its_account_with_or_without_a_token() {
        assert_eq!(actor_user("user:12"), Some(12));
        assert_eq!(actor_user("user:12/token:3"), Some(12));
        assert_eq!(actor_user("plugin:whmcs"), None);
        assert_eq!(actor_user("user:"), None);
    }

    async fn write(store: &Store, actor: &str, action: &str) -> i64 {
        let entry = Entry {
            actor,
            action,
            target: None,
            detail: serde_json::json!({}),
            client: None,
        };
        record(store, &entry).await.unwrap()
    }

    on_both_backends! {
        async fn filters_combine_and_pages_walk_both_ways(store: Store) -> anyhow::Result<()> {
            write(&store, "user:1", "auth.login").await;
            write(&store, "user:2", "auth.login").await;
            write(&store, "user:1/token:7", "vm.power").await;
            write(&store, "system", "service.active").await;
            write(&store, "user:1", "auth.login_failed_lookalike").await;

            let mine = Filter { user_id: Some(1), ..Filter::default() };
            let newest = search(&store, &mine, Page::NewestFirst { before: None }, 2).await?;
            let actions: Vec<_> = newest.iter().map(|r| r.action.as_str()).collect();
            assert_eq!(actions, ["auth.login_failed_lookalike", "vm.power"]);
            let older = Page::NewestFirst { before: Some(newest[1].id) };
            let rest = search(&store, &mine, older, 10).await?;
            assert_eq!(rest.len(), 1);
            assert_eq!(rest[0].action, "auth.login");

            let logins = Filter { action: Some("auth.login"), ..Filter::default() };
            let all = search(&store, &logins, Page::OldestFirst { after: 0 }, 10).await?;
            let actors: Vec<_> = all.iter().map(|r| r.actor.as_str()).collect();
            assert_eq!(actors, ["user:1", "user:2"], "a family is split at dots only");

            let system = Filter { actor: Some("system"), ..Filter::default() };
            assert_eq!(search(&store, &system, Page::OldestFirst { after: 0 }, 10).await?.len(), 1);
            let power = Filter { only_actions: &["vm.power", "service.active"], ..Filter::default() };
            assert_eq!(search(&store, &power, Page::OldestFirst { after: 0 }, 10).await?.len(), 2);
            let future = Filter { since: Some(crate::store::now() + 60), ..Filter::default() };
            assert!(search(&store, &future, Page::OldestFirst { after: 0 }, 10).await?.is_empty());
            Ok(())
        }
    }
}
