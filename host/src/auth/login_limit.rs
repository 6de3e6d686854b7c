//! Sign-in rate limits, per account and per client address.
//!
//! Failed attempts are counted in a sliding window; past the limit, further attempts are refused
//! without checking the password until the window lets the oldest failure go. An attempt counts
//! as failed from the moment it is let through, in the same lock as the check, and is taken back
//! when its password proves right: password hashing is slow on purpose, so counting only after it
//! would let a burst of parallel guesses all pass the check before the first one is counted. The per-address
//! limit stops one client guessing across many accounts; the per-account limit stops many clients
//! guessing one account. A success clears the account's count. State is in memory: a restart
//! forgets it, which costs an attacker a restart they cannot cause.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Default)]
struct Failures {
    by_account: HashMap<String, VecDeque<Instant>>,
    by_address: HashMap<IpAddr, VecDeque<Instant>>,
}

pub struct LoginLimiter {
    limits: Limits,
    failures: Mutex<Failures>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            failures: Mutex::new(Failures::default()),
        }
    }

    /// Lets an attempt through, counting it as failed until [`Self::succeeded`] says otherwise,
    /// or `Err(retry_after)` when it must be refused before looking at the password.
    pub fn begin(&self, account: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.lock();
        let window = self.limits.window;
        let account_wait = wait(
            failures.by_account.get_mut(account),
            self.limits.per_account,
            window,
            now,
        );
        let address_wait = wait(
            failures.by_address.get_mut(&address),
            self.limits.per_address,
            window,
            now,
        );
        if let Some(retry_after) = account_wait.max(address_wait) {
            return Err(retry_after);
        }
        failures
            .by_account
            .entry(account.to_owned())
            .or_default()
            .push_back(now);
        failures
            .by_address
            .entry(address)
            .or_default()
            .push_back(now);
        // Bound memory under a spray of distinct usernames or addresses.
        if failures.by_account.len() > 100_000 || failures.by_address.len() > 100_000 {
            failures
                .by_account
                .retain(|_, times| prune(times, window, now));
            failures
                .by_address
                .retain(|_, times| prune(times, window, now));
        }
        Ok(())
    }

    /// The attempt begun at `began` had the right password: the account's count is cleared and
    /// the address no longer holds that attempt against it.
    pub fn succeeded(&self, account: &str, address: IpAddr, began: Instant) {
        let mut failures = self.lock();
        failures.by_account.remove(account);
        if let Some(times) = failures.by_address.get_mut(&address)
            && let Some(at) = times.iter().position(|&t| t == began)
        {
            times.remove(at);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failures> {
        // The map holds counters only; after a panic elsewhere its contents are still usable.
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Drops failures older than the window; true while any remain.
fn prune(times: &mut VecDeque<Instant>, window: Duration, now: Instant) -> bool {
    while times
        .front()
        .is_some_and(|&t| now.duration_since(t) >= window)
    {
        times.pop_front();
    }
    !times.is_empty()
}

fn wait(
    times: Option<&mut VecDeque<Instant>>,
    limit: usize,
    window: Duration,
    now: Instant,
) -> Option<Duration> {
    let times = times?;
    prune(times, window, now);
    if times.len() < limit {
        return None;
    }
    let oldest = *times.front()?;
    Some(
        window
            .saturating_sub(now.duration_since(oldest))
            .max(Duration::from_secs(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(Limits {
            window: Duration::from_secs(60),
            per_account: 3,
            per_address: 5,
        })
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn an_account_is_locked_after_its_limit_and_released_by_the_window() {
        let limiter = limiter();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.begin("alice", HOME, start).is_ok());
        }
        let retry = limiter.begin("alice", HOME, start).unwrap_err();
        assert_eq!(retry, Duration::from_secs(60));
        assert!(
            limiter.begin("bob", HOME, start).is_ok(),
            "other accounts stay open"
        );
        assert!(
            limiter
                .begin("alice", HOME, start + Duration::from_secs(61))
                .is_ok()
        );
    }

    #[test]
    fn attempts_in_flight_count_before_their_passwords_are_checked() {
        let limiter = limiter();
        let now = Instant::now();
        // Three guesses let through at once, none of them answered yet: the fourth waits.
        for _ in 0..3 {
            assert!(limiter.begin("alice", HOME, now).is_ok());
        }
        assert!(limiter.begin("alice", HOME, now).is_err());
    }

    #[test]
    fn one_address_guessing_many_accounts_is_stopped() {
        let limiter = limiter();
        let now = Instant::now();
        for account in ["a", "b", "c", "d", "e"] {
            assert!(limiter.begin(account, HOME, now).is_ok());
        }
        assert!(limiter.begin("fresh", HOME, now).is_err());
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));
        assert!(limiter.begin("fresh", elsewhere, now).is_ok());
    }

    #[test]
    fn success_clears_the_account_count_and_the_attempt_from_the_address() {
        let limiter = limiter();
        let now = Instant::now();
        for _ in 0..2 {
            assert!(limiter.begin("alice", HOME, now).is_ok());
        }
        let right = now + Duration::from_secs(1);
        assert!(limiter.begin("alice", HOME, right).is_ok());
        limiter.succeeded("alice", HOME, right);
        for _ in 0..2 {
            assert!(limiter.begin("alice", HOME, now).is_ok());
        }
        assert!(limiter.begin("alice", HOME, now).is_ok(), "count cleared");
        // The address holds the four failures and the fifth attempt, not the right one.
        assert!(limiter.begin("other", HOME, now).is_err());
    }
}
