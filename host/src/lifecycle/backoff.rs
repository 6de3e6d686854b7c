//! Retry timing: exponential backoff with full jitter, so many jobs failing against the same
//! cluster at once do not retry in lockstep.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Attempts of one step before the job gives up on it (a provision then rolls back, a
    /// teardown parks for an operator).
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(5 * 60),
            max_attempts: 8,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt + 1`, given `attempt` failures so far (1-based), drawn
    /// uniformly from [cap/2, cap] where cap doubles per attempt up to `max`.
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let cap = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        let half = cap / 2;
        half + half.mul_f64(unit_random.clamp(0.0, 1.0))
    }

    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jittered_bounds_and_stop_at_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_attempts: 5,
        };
        assert_eq!(backoff.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff.delay(4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff.delay(40, 1.0), Duration::from_secs(60));
        assert!(!backoff.exhausted(4));
        assert!(backoff.exhausted(5));
    }
}
