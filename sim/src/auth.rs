//! Authentication as pveproxy does it: API tokens (`Authorization: PVEAPIToken=…`, no CSRF) and
//! tickets (`PVEAuthCookie` cookie, plus the `CSRFPreventionToken` header on writes). Tickets and
//! CSRF tokens are signed with a per-start key and carry their issue time, like PVE's.

use crate::error::ApiError;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

/// How a request authenticated, as recorded for the control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    Token,
    Ticket,
    None,
}

/// What the request presented, before any check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Token(String),
    Ticket {
        ticket: String,
        csrf: Option<String>,
    },
    None,
}

impl Credentials {
    pub fn from_headers(headers: &hyper::HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(value) = header("authorization").and_then(|v| v.strip_prefix("PVEAPIToken")) {
            return Self::Token(value.trim_start_matches(['=', ' ']).to_owned());
        }
        let ticket = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("PVEAuthCookie="))
            .map(percent_decode);
        match ticket {
            Some(ticket) => Self::Ticket {
                ticket,
                csrf: header("csrfpreventiontoken").map(str::to_owned),
            },
            None => Self::None,
        }
    }

    pub fn kind(&self) -> AuthKind {
        match self {
            Self::Token(_) => AuthKind::Token,
            Self::Ticket { .. } => AuthKind::Ticket,
            Self::None => AuthKind::None,
        }
    }
}

/// Who a request acts as: the user (or `user!token`) PVE writes into UPIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
}

/// The simulator's single user and token, and the key that signs its tickets.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub user: String,
    pub password: String,
    pub token_id: String,
    pub token_secret: String,
    pub ticket_lifetime: Duration,
    key: [u8; 32],
}

impl Accounts {
    pub fn generate(ticket_lifetime: Duration) -> Self {
        let user = "porthole@pve".to_owned();
        Self {
            token_id: format!("{user}!daemon"),
            user,
            password: hex::encode(rand::random::<[u8; 12]>()),
            token_secret: crate::cluster::random_uuid(),
            ticket_lifetime,
            key: rand::random(),
        }
    }

    /// Checks credentials for a method. `write` is true for POST/PUT/DELETE, which need CSRF
    /// protection when a ticket is used. `now` is Unix seconds on the simulator's clock.
    pub fn authenticate(
        &self,
        credentials: &Credentials,
        allow_token: bool,
        write: bool,
        now: u64,
    ) -> Result<Identity, ApiError> {
        match credentials {
            Credentials::None => Err(ApiError::unauthorized("No ticket")),
            Credentials::Token(value) => {
                let user = self.verify_token(value)?;
                if !allow_token {
                    return Err(ApiError::unauthorized(
                        "API token not allowed for this method",
                    ));
                }
                Ok(Identity { user })
            }
            Credentials::Ticket { ticket, csrf } => {
                let user = self.verify_ticket(ticket, now)?;
                if write
                    && !csrf
                        .as_deref()
                        .is_some_and(|c| self.verify_csrf(c, &user, now))
                {
                    return Err(ApiError::unauthorized(
                        "Permission denied - invalid csrf token",
                    ));
                }
                Ok(Identity { user })
            }
        }
    }

    fn verify_token(&self, value: &str) -> Result<String, ApiError> {
        let invalid = || ApiError::unauthorized("invalid token value!");
        let (token_id, secret) = value.split_once('=').ok_or_else(invalid)?;
        let (user, token_name) = token_id.split_once('!').ok_or_else(invalid)?;
        if token_id != self.token_id {
            return Err(ApiError::unauthorized(format!(
                "no such token '{token_name}' for user '{user}'"
            )));
        }
        if secret != self.token_secret {
            return Err(invalid());
        }
        Ok(token_id.to_owned())
    }

    /// `PVE:<user>:<hex time>::<signature>`.
    pub fn issue_ticket(&self, user: &str, now: u64) -> String {
        let plain = format!("PVE:{user}:{now:08X}");
        format!("{plain}::{}", self.sign(&plain))
    }

    /// `<hex time>:<signature over time and user>`.
    pub fn issue_csrf(&self, user: &str, now: u64) -> String {
        format!("{now:08X}:{}", self.sign(&format!("{now:08X}:{user}")))
    }

    pub fn verify_ticket(&self, ticket: &str, now: u64) -> Result<String, ApiError> {
        let invalid = || ApiError::unauthorized("permission denied - invalid PVE ticket");
        let (plain, signature) = ticket.split_once("::").ok_or_else(invalid)?;
        let mut fields = plain.splitn(3, ':');
        let (Some("PVE"), Some(user), Some(time)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(invalid());
        };
        if signature != self.sign(plain) || !self.is_fresh(time, now) {
            return Err(invalid());
        }
        Ok(user.to_owned())
    }

    fn verify_csrf(&self, token: &str, user: &str, now: u64) -> bool {
        token.split_once(':').is_some_and(|(time, signature)| {
            signature == self.sign(&format!("{time}:{user}")) && self.is_fresh(time, now)
        })
    }

    /// PVE accepts tickets up to 5 minutes from the future (clock skew) and until they expire.
    fn is_fresh(&self, hex_time: &str, now: u64) -> bool {
        u64::from_str_radix(hex_time, 16).is_ok_and(|issued| {
            issued <= now + 300 && now.saturating_sub(issued) <= self.ticket_lifetime.as_secs()
        })
    }

    fn sign(&self, plain: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update(plain.as_bytes());
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hasher.finalize())
    }

    /// `POST /access/ticket`: a password, or a still-valid ticket to renew, for the one user.
    pub fn login(
        &self,
        username: &str,
        realm: Option<&str>,
        password: &str,
        now: u64,
    ) -> Result<String, ApiError> {
        let user = match realm {
            Some(realm) if !username.contains('@') => format!("{username}@{realm}"),
            _ => username.to_owned(),
        };
        let renewing = self.verify_ticket(password, now).is_ok_and(|u| u == user);
        if user == self.user && (password == self.password || renewing) {
            Ok(user)
        } else {
            Err(ApiError::unauthorized("authentication failure"))
        }
    }
}

/// Decodes `%XX` escapes and leaves everything else (including `+`) alone, as cookies need.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::generate(Duration::from_secs(7200))
    }

    #[test]
    fn ticket_round_trips_and_expires() {
        let a = accounts();
        let ticket = a.issue_ticket(&a.user, 1_000_000);
        assert!(ticket.starts_with("PVE:porthole@pve:000F4240::"));
        assert_eq!(
            a.verify_ticket(&ticket, 1_000_000 + 7200),
            Ok(a.user.clone())
        );
        assert!(a.verify_ticket(&ticket, 1_000_000 + 7201).is_err());
    }

    #[test]
    fn ticket_write_needs_matching_csrf_token() {
        let a = accounts();
        let ticket = a.issue_ticket(&a.user, 1000);
        let with = |csrf: Option<String>| Credentials::Ticket {
            ticket: ticket.clone(),
            csrf,
        };
        assert!(a.authenticate(&with(None), true, false, 1000).is_ok());
        let err = a.authenticate(&with(None), true, true, 1000).err();
        assert_eq!(
            err.map(|e| e.message),
            Some("Permission denied - invalid csrf token".into())
        );
        assert!(
            a.authenticate(&with(Some(a.issue_csrf(&a.user, 1000))), true, true, 1000)
                .is_ok()
        );
        assert!(
            a.authenticate(
                &with(Some(a.issue_csrf("other@pve", 1000))),
                true,
                true,
                1000
            )
            .is_err()
        );
    }

    #[test]
    fn token_needs_the_right_secret_and_an_allowing_method() {
        let a = accounts();
        let good = Credentials::Token(format!("{}={}", a.token_id, a.token_secret));
        assert_eq!(
            a.authenticate(&good, true, true, 0).map(|i| i.user),
            Ok(a.token_id.clone())
        );
        assert!(a.authenticate(&good, false, false, 0).is_err());
        let bad = Credentials::Token(format!("{}=nope", a.token_id));
        assert_eq!(
            a.authenticate(&bad, true, false, 0)
                .err()
                .map(|e| e.message),
            Some("invalid token value!".into())
        );
    }

    #[test]
    fn percent_decode_keeps_plus() {
        assert_eq!(percent_decode("a%3Ab+c%2"), "a:b+c%2");
    }
}
