//! Accounts.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

/// What an account may do. Admins operate the panel; customers see only their own objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    fn from_column(text: &str) -> rusqlite::Result<Self> {
        match text {
            "admin" => Ok(Role::Admin),
            "customer" => Ok(Role::Customer),
            other => Err(rusqlite::Error::InvalidColumnType(
                0,
                format!("role {other:?}"),
                rusqlite::types::Type::Text,
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        role: Role::from_column(&row.get::<_, String>(2)?)?,
        disabled: row.get(3)?,
        created_at: row.get(4)?,
    })
}

/// Inserts a user; a taken username fails with a constraint violation (see [`is_conflict`]).
pub fn insert(
    conn: &Connection,
    username: &str,
    role: Role,
    password_hash: &str,
) -> rusqlite::Result<User> {
    let now = super::now();
    conn.query_row(
        &format!(
            "INSERT INTO users (username, role, password_hash, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4) RETURNING {COLUMNS}"
        ),
        params![username, role.as_str(), password_hash, now],
        from_row,
    )
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// The user and their password hash, for sign-in.
pub fn find_for_login(
    conn: &Connection,
    username: &str,
) -> rusqlite::Result<Option<(User, String)>> {
    conn.query_row(
        &format!("SELECT {COLUMNS}, password_hash FROM users WHERE username = ?1"),
        [username],
        |row| Ok((from_row(row)?, row.get(5)?)),
    )
    .optional()
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?;
    let rows = statement.query_map([], from_row)?;
    rows.collect()
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

pub fn update(conn: &Connection, id: i64, changes: &UserChanges) -> rusqlite::Result<Option<User>> {
    conn.query_row(
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
    .optional()
}

pub fn delete(conn: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM users WHERE id = ?1", [id])? > 0)
}

pub fn count_admins(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled",
        [],
        |row| row.get(0),
    )
}

/// True when `err` is a UNIQUE or foreign-key violation: the caller's request conflicts with
/// existing data rather than the database failing.
pub fn is_conflict(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation)
    )
}
