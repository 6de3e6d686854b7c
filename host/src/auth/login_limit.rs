//! Sign-in rate limits, per account and per client address, shared by every daemon on the
//! database.
//!
//! Failed attempts are counted in a sliding window; past the limit, further attempts are refused
//! without checking the password until the window lets the oldest failure go. An attempt counts
//! as failed from the moment it is let through, in the same transaction as the check, and is
//! taken back when its password proves right: password hashing is slow on purpose, so counting
//! only after it would let a burst of parallel guesses all pass the check before the first one
//! is counted. The per-address limit stops one client guessing across many accounts; the
//! per-account limit stops many clients guessing one account. A success clears the account's
//! count.
//!
//! The attempts are rows in the database ([`store::login_attempts`]), so guesses spread over
//! the daemons behind a load balancer are counted together, and a restart forgets nothing. On
//! PostgreSQL the check and the count are one serializable transaction: of parallel guesses at
//! the last place, one gets it.

use std::net::IpAddr;
use std::time::Duration;

use crate::store::{Store, StoreError, login_attempts};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: Duration,
    pub per_account: usize,
    pub per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            per_account: 5,
            per_address: 20,
        }
    }
}

/// An attempt let through; hand it to [`LoginLimiter::succeeded`] when its password is right.
#[derive(Debug)]
#[must_use = "an attempt whose password was right must be reported, or it counts as failed"]
pub struct Attempt {
    id: i64,
}

pub struct LoginLimiter {
    store: Store,
    limits: Limits,
}

impl LoginLimiter {
    pub fn new(store: Store, limits: Limits) -> Self {
        Self { store, limits }
    }

    /// Lets an attempt made at `now` (unix seconds) through, counting it as failed until
    /// [`Self::succeeded`] says otherwise, or `Err(retry_after)` when it must be refused before
    /// looking at the password. `now` is the answering daemon's clock: daemons a few seconds
    /// apart shift a 15-minute window by as much, which changes nothing that matters.
    pub async fn begin(
        &self,
        account: &str,
        address: IpAddr,
        now: i64,
    ) -> Result<Result<Attempt, Duration>, StoreError> {
        let (limits, address) = (self.limits, address.to_string());
        let window = i64::try_from(limits.window.as_secs()).unwrap_or(i64::MAX);
        let since = now.saturating_sub(window);
        let address = address.as_str();
        self.store
            .transaction(|tx| async move {
                let (by_account, by_address) =
                    login_attempts::failures(&tx, account, address, since).await?;
                let refused = wait(by_account, limits.per_account, window, now).max(wait(
                    by_address,
                    limits.per_address,
                    window,
                    now,
                ));
                if let Some(retry_after) = refused {
                    return Ok::<_, StoreError>(Err(retry_after));
                }
                let id = login_attempts::insert(&tx, account, address, now).await?;
                Ok(Ok(Attempt { id }))
            })
            .await
    }

    /// `attempt` at `account` had the right password: the account's count is cleared and the
    /// address no longer holds that attempt against it.
    pub async fn succeeded(&self, account: &str, attempt: Attempt) -> Result<(), StoreError> {
        let id = attempt.id;
        self.store
            .transaction(|tx| async move { login_attempts::succeeded(&tx, id, account).await })
            .await
    }

    /// `attempt`'s password was right but a second factor is still to come: it is no failure,
    /// yet the account's count stands, so wrong codes between right passwords add up.
    pub async fn password_only(&self, attempt: Attempt) -> Result<(), StoreError> {
        login_attempts::discard(&self.store, attempt.id).await
    }

    /// Deletes the attempts that left the window before `now`; returns how many.
    pub async fn forget_old(&self, now: i64) -> Result<u64, StoreError> {
        let window = i64::try_from(self.limits.window.as_secs()).unwrap_or(i64::MAX);
        login_attempts::purge(&self.store, now.saturating_sub(window)).await
    }
}

/// How long until one of `counted`'s failures leaves the window, if they reach `limit`.
fn wait(counted: login_attempts::Counted, limit: usize, window: i64, now: i64) -> Option<Duration> {
    if counted.count < limit {
        return None;
    }
    let oldest = counted.oldest?;
    let left = window.saturating_sub(now.saturating_sub(oldest)).max(1);
    Some(Duration::from_secs(u64::try_from(left).unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both_backends;

    fn limiter(store: &Store) -> LoginLimiter {
        LoginLimiter::new(
            store.clone(),
            Limits {
                window: Duration::from_secs(60),
                per_account: 3,
                per_address: 5,
            },
        )
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const START: i64 = 1_700_000_000;

    async fn let_through(limiter: &LoginLimiter, account: &str, address: IpAddr, now: i64) -> bool {
        limiter.begin(account, address, now).await.unwrap().is_ok()
    }

    on_both_backends! {
        async fn an_account_is_locked_after_its_limit_and_released_by_the_window(store: Store) -> anyhow::Result<()> {
            let limiter = limiter(&store);
            for _ in 0..3 {
                assert!(let_through(&limiter, "alice", HOME, START).await);
            }
            let retry = limiter.begin("alice", HOME, START).await?.unwrap_err();
            assert_eq!(retry, Duration::from_secs(60));
            assert!(
                let_through(&limiter, "bob", HOME, START).await,
                "other accounts stay open"
            );
            assert!(let_through(&limiter, "alice", HOME, START + 61).await);
            Ok(())
        }

        async fn one_address_guessing_many_accounts_is_stopped(store: Store) -> anyhow::Result<()> {
            let limiter = limiter(&store);
            for account in ["a", "b", "c", "d", "e"] {
                assert!(let_through(&limiter, account, HOME, START).await);
            }
            assert!(!let_through(&limiter, "fresh", HOME, START).await);
            let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));
            assert!(let_through(&limiter, "fresh", elsewhere, START).await);
            Ok(())
        }

        async fn success_clears_the_account_count_and_the_attempt_from_the_address(store: Store) -> anyhow::Result<()> {
            let limiter = limiter(&store);
            for _ in 0..2 {
                assert!(let_through(&limiter, "alice", HOME, START).await);
            }
            let right = limiter.begin("alice", HOME, START + 1).await?.unwrap();
            limiter.succeeded("alice", right).await?;
            for _ in 0..2 {
                assert!(let_through(&limiter, "alice", HOME, START).await);
            }
            assert!(let_through(&limiter, "alice", HOME, START).await, "count cleared");
            // The address holds the four failures and the fifth attempt, not the right one.
            assert!(!let_through(&limiter, "other", HOME, START).await);
            Ok(())
        }
    }

    /// Guesses at one account spread over three daemons, all at once: the account's limit
    /// holds across them (the check and the count are one transaction).
    #[tokio::test]
    async fn parallel_guesses_over_three_daemons_are_counted_together() {
        let first = crate::store::testing::TestStore::postgres().await.unwrap();
        let mut limiters = vec![limiter(&first.store)];
        for _ in 0..2 {
            limiters.push(limiter(&first.another_daemon().await.unwrap()));
        }
        let guesses = (0..24).map(|n| {
            let limiter = &limiters[n % limiters.len()];
            let address = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, n as u8));
            async move {
                limiter
                    .begin("alice", address, START)
                    .await
                    .unwrap()
                    .is_ok()
            }
        });
        let through = futures_util::future::join_all(guesses)
            .await
            .into_iter()
            .filter(|&ok| ok)
            .count();
        assert_eq!(through, 3);
    }
}
