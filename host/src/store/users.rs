//! Accounts.

use super::{Db, Row, StoreError, params};
use serde::{Deserialize, Serialize};

/// What an account may do. Admins operate the panel; customers see only their own objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Customer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Customer => "customer",
        }
    }

    fn from_column(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Role::Admin),
            "customer" => Ok(Role::Customer),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
}

impl User {
    /// Whether this user may see and use a service owned by `owner_id`: its owner, or an
    /// operator.
    pub fn may_use(&self, owner_id: i64) -> bool {
        self.role == Role::Admin || self.id == owner_id
    }
}

const COLUMNS: &str = "id, username, role, disabled, created_at";

fn from_row(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        role: row.parse(2, Role::from_column)?,
        disabled: row.get(3)?,
        created_at: row.get(4)?,
    })
}

/// Inserts a user; a taken username fails with a unique violation
/// ([`StoreError::is_unique_violation`]).
pub async fn insert(
    db: &impl Db,
    username: &str,
    role: Role,
    password_hash: &str,
) -> Result<User, StoreError> {
    let row = db
        .query_one(
            &format!(
                "INSERT INTO users (username, role, password_hash, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4) RETURNING {COLUMNS}"
            ),
            params![username, role.as_str(), password_hash, super::now()],
        )
        .await?;
    from_row(&row)
}

pub async fn get(db: &impl Db, id: i64) -> Result<Option<User>, StoreError> {
    db.query_opt_as(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        params![id],
        from_row,
    )
    .await
}

/// The user and their password hash, for sign-in.
pub async fn find_for_login(
    db: &impl Db,
    username: &str,
) -> Result<Option<(User, String)>, StoreError> {
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS}, password_hash FROM users WHERE username = ?1"),
            params![username],
        )
        .await?;
    row.map(|row| Ok((from_row(&row)?, row.get(5)?)))
        .transpose()
}

pub async fn list(db: &impl Db) -> Result<Vec<User>, StoreError> {
    db.query_as(
        &format!("SELECT {COLUMNS} FROM users ORDER BY id"),
        params![],
        from_row,
    )
    .await
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

pub async fn update(
    db: &impl Db,
    id: i64,
    changes: &UserChanges,
) -> Result<Option<User>, StoreError> {
    db.query_opt_as(
        &format!(
            "UPDATE users SET role = coalesce(?2, role), password_hash = coalesce(?3, password_hash),
                 disabled = coalesce(?4, disabled), updated_at = ?5
             WHERE id = ?1 RETURNING {COLUMNS}"
        ),
        params![
            id,
            changes.role.map(Role::as_str),
            changes.password_hash,
            changes.disabled,
            super::now()
        ],
        from_row,
    )
    .await
}

pub async fn delete(db: &impl Db, id: i64) -> Result<bool, StoreError> {
    Ok(db
        .execute("DELETE FROM users WHERE id = ?1", params![id])
        .await?
        > 0)
}

pub async fn count_admins(db: &impl Db) -> Result<i64, StoreError> {
    db.query_one(
        "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0",
        params![],
    )
    .await?
    .get(0)
}

/// Every account's name by id, for answers that name the users behind ids.
pub async fn names(db: &impl Db) -> Result<std::collections::HashMap<i64, String>, StoreError> {
    Ok(list(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect())
}
