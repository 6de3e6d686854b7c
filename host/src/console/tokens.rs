//! Console tokens: what lets one browser open one console WebSocket, once.
//!
//! # Why random tokens in the database, not sealed ones
//! A token is 256 random bits (URL-safe base64); the database keeps only its SHA-256, with the
//! user, service and kind it grants and its expiry. Redeeming is one statement,
//! `UPDATE … SET used_at = now WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL
//! AND expires_at > now RETURNING …`, so exactly one redeemer ever wins, on this daemon or on any
//! other daemon behind the same load balancer that shares the database. A sealed (HMAC/AEAD)
//! token would validate without a lookup, but single use needs a shared replay table anyway, and
//! revocation ("this VM was suspended: its outstanding tokens die now") would need a second one;
//! with the row there already, both are a column. The digest makes a leaked database useless for
//! opening consoles, and a plain SHA-256 suffices because the input has 256 bits of entropy.
//!
//! Never touches Proxmox or WebSockets: this is a small grant table and its rules.

use serde::{Deserialize, Serialize};

use crate::auth::secret_token;
use crate::store::{self, Db, StoreError};

/// Which console a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleKind {
    /// The VM's display, over VNC (RFB).
    Vnc,
    /// The VM's display as a text terminal, over termproxy.
    Term,
}

impl ConsoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vnc => "vnc",
            Self::Term => "term",
        }
    }

    /// `None` for a kind this version does not know.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "vnc" => Some(Self::Vnc),
            "term" => Some(Self::Term),
            _ => None,
        }
    }
}

/// What a token allows: this user, this service's console of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub user_id: i64,
    pub service_id: i64,
    pub kind: ConsoleKind,
}

/// A freshly minted token. The token itself exists only here and in the caller's answer.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a token opens nothing. Where the token is known, the grant names who tried, for the audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error("a console token is required")]
    Missing,
    #[error("unknown console token")]
    Unknown,
    #[error("the console token has expired; request a new one")]
    Expired(Grant),
    #[error("the console token was already used; request a new one")]
    Replayed(Grant),
    #[error("the console token was revoked")]
    Revoked(Grant),
}

impl TokenRefusal {
    /// The audit log's name for this refusal.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Unknown => "unknown_token",
            Self::Expired(_) => "expired_token",
            Self::Replayed(_) => "replayed_token",
            Self::Revoked(_) => "revoked_token",
        }
    }

    pub fn grant(&self) -> Option<Grant> {
        match self {
            Self::Missing | Self::Unknown => None,
            Self::Expired(grant) | Self::Replayed(grant) | Self::Revoked(grant) => Some(*grant),
        }
    }
}

/// Spent and expired tokens are kept this long (seconds), so a late replay is still reported as
/// a replay rather than as an unknown token, then purged.
const KEEP_SPENT_SECS: i64 = 60 * 60;

/// Stores a new token for `grant`, valid for `ttl_secs` from `now`, and purges long-dead ones.
pub async fn issue(
    db: &impl Db,
    grant: Grant,
    client: Option<&str>,
    now: i64,
    ttl_secs: i64,
) -> Result<IssuedToken, StoreError> {
    let token = secret_token::generate();
    let expires_at = now + ttl_secs;
    let hash = secret_token::digest(&token);
    store::console::insert_token(db, &hash, grant, client, now, expires_at).await?;
    store::console::purge_tokens(db, now - KEEP_SPENT_SECS).await?;
    Ok(IssuedToken { token, expires_at })
}

/// Spends `token` if it is unused, unrevoked and unexpired at `now`: exactly one caller wins.
pub async fn redeem(
    db: &impl Db,
    token: &str,
    now: i64,
) -> Result<Result<Grant, TokenRefusal>, StoreError> {
    store::console::redeem_token(db, &secret_token::digest(token), now).await
}

/// The grant of a token that would still open a console, without spending it. Used to name the
/// user in the audit entry when a request is refused before the token is redeemed.
pub async fn peek(db: &impl Db, token: &str, now: i64) -> Result<Option<Grant>, StoreError> {
    store::console::live_token(db, &secret_token::digest(token), now).await
}

/// Revokes every outstanding token of a service; returns how many.
pub async fn revoke_for_service(
    db: &impl Db,
    service_id: i64,
    now: i64,
) -> Result<u64, StoreError> {
    store::console::revoke_tokens_for_service(db, service_id, now).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::testing::{customer_on_a_cluster, on_both_backends};
    use crate::store::{Store, params};

    async fn database(store: &Store) -> Grant {
        let owner = customer_on_a_cluster(store).await.unwrap();
        let web = crate::store::services::ExistingVm {
            owner_id: owner,
            name: "web",
            cluster: "lab",
            node: "pve1",
            vmid: 101,
            plan: None,
            stopped: false,
        };
        let service = crate::store::services::insert_active(store, &web)
            .await
            .unwrap();
        Grant {
            user_id: owner,
            service_id: service.id,
            kind: ConsoleKind::Vnc,
        }
    }

    /// Several daemons on one PostgreSQL database each try every token at the same moment: each
    /// token opens one console, wherever it is redeemed.
    #[tokio::test]
    async fn racing_daemons_redeem_each_token_once() -> anyhow::Result<()> {
        let test = crate::store::testing::TestStore::postgres().await?;
        let grant = database(&test.store).await;
        let daemons = [
            test.store.clone(),
            test.another_daemon().await?,
            test.another_daemon().await?,
        ];
        for _ in 0..20 {
            let issued = issue(&daemons[0], grant, None, 1000, 20).await?;
            let attempts = daemons.iter().map(|daemon| {
                let (daemon, token) = (daemon.clone(), issued.token.clone());
                tokio::spawn(async move { redeem(&daemon, &token, 1001).await })
            });
            let mut opened = 0;
            for attempt in attempts.collect::<Vec<_>>() {
                match attempt.await?? {
                    Ok(_) => opened += 1,
                    Err(refusal) => assert_eq!(refusal, TokenRefusal::Replayed(grant)),
                }
            }
            assert_eq!(opened, 1);
        }
        Ok(())
    }

    on_both_backends! {
        async fn a_token_opens_once_and_a_replay_is_named_as_such(store: Store) -> anyhow::Result<()> {
            let grant = database(&store).await;
            let issued = issue(&store, grant, None, 1000, 20).await.unwrap();
            assert_eq!(issued.expires_at, 1020);
            assert_eq!(
                redeem(&store, &issued.token, 1001).await.unwrap(),
                Ok(grant)
            );
            assert_eq!(
                redeem(&store, &issued.token, 1002).await.unwrap(),
                Err(TokenRefusal::Replayed(grant))
            );
            Ok(())
        }

        async fn an_expired_token_is_refused_as_expired(store: Store) -> anyhow::Result<()> {
            let grant = database(&store).await;
            let issued = issue(&store, grant, None, 1000, 20).await.unwrap();
            assert_eq!(
                redeem(&store, &issued.token, 1020).await.unwrap(),
                Err(TokenRefusal::Expired(grant))
            );
            Ok(())
        }

        async fn revoked_tokens_stop_working_and_unknown_ones_say_so(store: Store) -> anyhow::Result<()> {
            let grant = database(&store).await;
            let issued = issue(&store, grant, None, 1000, 20).await.unwrap();
            assert_eq!(
                peek(&store, &issued.token, 1001).await.unwrap(),
                Some(grant)
            );
            assert_eq!(
                revoke_for_service(&store, grant.service_id, 1001)
                    .await
                    .unwrap(),
                1
            );
            assert_eq!(peek(&store, &issued.token, 1001).await.unwrap(), None);
            assert_eq!(
                redeem(&store, &issued.token, 1002).await.unwrap(),
                Err(TokenRefusal::Revoked(grant))
            );
            assert_eq!(
                redeem(&store, "not-a-token", 1002).await.unwrap(),
                Err(TokenRefusal::Unknown)
            );
            Ok(())
        }

        async fn tokens_are_stored_only_as_digests(store: Store) -> anyhow::Result<()> {
            let grant = database(&store).await;
            let issued = issue(&store, grant, None, 1000, 20).await.unwrap();
            let stored: Vec<u8> = store
                .query_one("SELECT token_hash FROM console_tokens", params![])
                .await
                .unwrap()
                .get(0)
                .unwrap();
            assert_eq!(stored, secret_token::digest(&issued.token));
            assert!(!format!("{issued:?}").contains(&issued.token));
            Ok(())
        }
    }
}
