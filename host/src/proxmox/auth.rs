//! Authentication towards pveproxy: API token header, or ticket cookie + CSRF token.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How the daemon authenticates to the cluster.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `token_id` is `USER@REALM!TOKENID`, e.g. `porthole@pve!daemon`.
    ApiToken { token_id: String, secret: String },
    /// `username` is `USER@REALM`; the client logs in and renews the ticket itself.
    Ticket { username: String, password: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiToken { token_id, .. } => f
                .debug_struct("ApiToken")
                .field("token_id", token_id)
                .field("secret", &"<redacted>")
                .finish(),
            Self::Ticket { username, .. } => f
                .debug_struct("Ticket")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

/// Builds the `Authorization` header for an API token, marked sensitive so that HTTP-level
/// logging never prints it.
pub(crate) fn token_header(token_id: &str, secret: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("PVEAPIToken={token_id}={secret}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The headers one request is sent with.
#[derive(Clone)]
pub(crate) enum AuthHeaders {
    None,
    Token(HeaderValue),
    Ticket(Ticket),
}

impl AuthHeaders {
    pub fn apply(&self, request: RequestBuilder, method: &Method) -> RequestBuilder {
        match self {
            Self::None => request,
            Self::Token(value) => request.header(AUTHORIZATION, value.clone()),
            Self::Ticket(ticket) if *method == Method::GET => {
                request.header(COOKIE, ticket.cookie.clone())
            }
            // pveproxy demands the CSRF token on every non-GET call made with a ticket cookie.
            Self::Ticket(ticket) => request
                .header(COOKIE, ticket.cookie.clone())
                .header("CSRFPreventionToken", ticket.csrf.clone()),
        }
    }
}

impl AuthHeaders {
    /// The headers of a GET as name/value pairs, for clients other than reqwest (WebSockets).
    pub fn pairs_for_get(&self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Self::None => Vec::new(),
            Self::Token(value) => vec![(AUTHORIZATION, value.clone())],
            Self::Ticket(ticket) => vec![(COOKIE, ticket.cookie.clone())],
        }
    }
}

/// A ticket obtained from `POST /access/ticket`.
#[derive(Clone)]
pub(crate) struct Ticket {
    cookie: HeaderValue,
    csrf: HeaderValue,
    obtained: Instant,
    /// Distinguishes logins, so that a 401 only discards the ticket it was answered to.
    generation: u64,
}

/// The data of a successful `POST /access/ticket`.
#[derive(Deserialize)]
pub(crate) struct TicketResponse {
    ticket: String,
    #[serde(rename = "CSRFPreventionToken")]
    csrf: String,
}

/// Ticket credentials and the current ticket.
pub(crate) struct TicketAuth {
    pub username: String,
    pub password: String,
    renew_after: Duration,
    current: Mutex<TicketSlot>,
}

#[derive(Default)]
pub(crate) struct TicketSlot {
    ticket: Option<Ticket>,
    generation: u64,
}

impl TicketSlot {
    /// The current ticket if it is still young enough to use.
    pub fn fresh(&self, renew_after: Duration) -> Option<Ticket> {
        self.ticket
            .as_ref()
            .filter(|t| t.obtained.elapsed() < renew_after)
            .cloned()
    }

    /// Stores a new ticket. The cookie value is sent as is: PVE tickets only contain
    /// characters allowed in a cookie (`PVE:user@realm:HEX::base64`).
    pub fn store(&mut self, response: TicketResponse) -> Option<Ticket> {
        let mut cookie =
            HeaderValue::from_str(&format!("PVEAuthCookie={}", response.ticket)).ok()?;
        cookie.set_sensitive(true);
        let mut csrf = HeaderValue::from_str(&response.csrf).ok()?;
        csrf.set_sensitive(true);
        self.generation += 1;
        let ticket = Ticket {
            cookie,
            csrf,
            obtained: Instant::now(),
            generation: self.generation,
        };
        self.ticket = Some(ticket.clone());
        Some(ticket)
    }
}

impl TicketAuth {
    pub fn new(username: String, password: String, renew_after: Duration) -> Self {
        Self {
            username,
            password,
            renew_after,
            current: Mutex::new(TicketSlot::default()),
        }
    }

    pub fn renew_after(&self) -> Duration {
        self.renew_after
    }

    /// Locks the ticket slot. Holding the lock across a login makes concurrent requests wait
    /// for one login instead of each logging in.
    pub async fn slot(&self) -> tokio::sync::MutexGuard<'_, TicketSlot> {
        self.current.lock().await
    }

    /// Forgets `rejected` after a 401, unless a newer ticket already replaced it.
    pub async fn discard(&self, rejected: &Ticket) {
        let mut slot = self.current.lock().await;
        if slot
            .ticket
            .as_ref()
            .is_some_and(|t| t.generation == rejected.generation)
        {
            slot.ticket = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_secrets() {
        let token = Credentials::ApiToken {
            token_id: "porthole@pve!daemon".into(),
            secret: "s3cret-uuid".into(),
        };
        let ticket = Credentials::Ticket {
            username: "porthole@pve".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{token:?} {ticket:?}");
        assert!(shown.contains("porthole@pve!daemon"));
        assert!(!shown.contains("s3cret-uuid") && !shown.contains("hunter2"));
    }

    #[test]
    fn token_header_has_pve_format_and_is_sensitive() {
        let value = token_header("porthole@pve!daemon", "abc-123").unwrap();
        assert_eq!(
            value.to_str().unwrap(),
            "PVEAPIToken=porthole@pve!daemon=abc-123"
        );
        assert!(value.is_sensitive());
        assert!(token_header("bad\nid", "x").is_none());
    }

    #[tokio::test]
    async fn ticket_is_renewed_after_its_renewal_age() {
        let auth = TicketAuth::new("u@pve".into(), "p".into(), Duration::from_millis(30));
        let stored = auth.slot().await.store(TicketResponse {
            ticket: "PVE:u@pve:1234::c2ln".into(),
            csrf: "1234:abcd".into(),
        });
        assert!(stored.is_some());
        assert!(auth.slot().await.fresh(auth.renew_after()).is_some());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(auth.slot().await.fresh(auth.renew_after()).is_none());
    }
}
