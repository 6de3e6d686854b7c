//! Who is asking: passwords, sessions, API tokens and sign-in rate limits.
//!
//! Credentials are never stored as given. Passwords are argon2id hashes; session cookies and API
//! tokens are 256-bit random values of which only the SHA-256 is stored, so a leaked database
//! opens no account. `auth` knows the store's account tables and nothing of Proxmox or plugins.

pub mod login_limit;
pub mod password;
pub mod scope;
pub mod second_factor;
pub mod secret_token;

use crate::store::users::{Role, User};

pub use scope::{Scope, Scopes};

/// An authenticated caller and how they proved it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    pub credential: Credential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A browser session cookie; state changes must also pass the CSRF checks.
    Session,
    /// An API token, by id, with what it may do and until when (unix seconds).
    ApiToken {
        id: i64,
        scopes: Scopes,
        expires_at: Option<i64>,
    },
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// How the audit log names this actor.
    pub fn actor(&self) -> String {
        match self.credential {
            Credential::Session => format!("user:{}", self.user.id),
            Credential::ApiToken { id, .. } => format!("user:{}/token:{id}", self.user.id),
        }
    }

    /// What this caller may do beyond its role: everything for a session, a token's scopes.
    pub fn scopes(&self) -> Scopes {
        match self.credential {
            Credential::Session => Scopes::FULL,
            Credential::ApiToken { scopes, .. } => scopes,
        }
    }
}
