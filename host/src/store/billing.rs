//! What billing systems told us: the webhook events already applied (`billing_events`), and
//! which account a billing system's customer is (`users.external_id`).

use super::{Db, StoreError, params};

/// Remembers that `plugin`'s event `event_id` was applied; remembering it again is harmless.
pub async fn remember_event(db: &impl Db, plugin: &str, event_id: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO billing_events (plugin, event_id, received_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (plugin, event_id) DO NOTHING",
        params![plugin, event_id, super::now()],
    )
    .await?;
    Ok(())
}

/// The account of the billing customer `external_id` (`<plugin>:<customer id>`), if it has one.
pub async fn account_for(db: &impl Db, external_id: &str) -> Result<Option<i64>, StoreError> {
    db.query_opt(
        "SELECT id FROM users WHERE external_id = ?1",
        params![external_id],
    )
    .await?
    .map(|row| row.get(0))
    .transpose()
}

/// Ties account `user_id` to the billing customer `external_id`. A unique violation means
/// another account is that customer's already.
pub async fn link_account(db: &impl Db, user_id: i64, external_id: &str) -> Result<(), StoreError> {
    db.execute(
        "UPDATE users SET external_id = ?2 WHERE id = ?1",
        params![user_id, external_id],
    )
    .await?;
    Ok(())
}
