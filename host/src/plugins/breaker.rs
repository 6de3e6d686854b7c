//! The circuit breaker that switches off a plugin which keeps misbehaving: a pure state machine
//! over an injected clock.
//!
//! Only misbehaviour counts: traps, timeouts, limit violations, invalid output, and errors the
//! plugin itself calls `internal`. An upstream outage reported properly by the plugin does not.
//! After `threshold` such failures in a row the breaker opens; calls are refused until an operator
//! resets it or `cool_down` has passed, when one trial call is let through (half-open): success
//! closes the breaker, failure opens it again for another cool-down.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; `failures` misbehaviours in a row so far.
    Closed { failures: u32 },
    /// Calls are refused since `since`.
    Open { since: Instant },
    /// One trial call is in flight after a cool-down.
    Probing,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    threshold: u32,
    cool_down: Duration,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    Refused { since: Instant },
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            state: BreakerState::Closed { failures: 0 },
            threshold: threshold.max(1),
            cool_down,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Asks to start a call at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => Admission::Go,
            BreakerState::Open { since } if now.duration_since(since) >= self.cool_down => {
                self.state = BreakerState::Probing;
                Admission::Go
            }
            BreakerState::Open { since } => Admission::Refused { since },
            // The trial call has not finished; everyone else waits for its verdict.
            BreakerState::Probing => Admission::Refused { since: now },
        }
    }

    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// Records a misbehaviour; returns true when this one opened the breaker.
    pub fn record_failure(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { failures } if failures + 1 >= self.threshold => {
                self.state = BreakerState::Open { since: now };
                true
            }
            BreakerState::Closed { failures } => {
                self.state = BreakerState::Closed {
                    failures: failures + 1,
                };
                false
            }
            BreakerState::Probing => {
                self.state = BreakerState::Open { since: now };
                true
            }
            BreakerState::Open { .. } => false,
        }
    }

    /// Opens the breaker as of `since` (a trip remembered across a restart).
    pub fn trip(&mut self, since: Instant) {
        self.state = BreakerState::Open { since };
    }

    /// An operator's reset.
    pub fn reset(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, BreakerState::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(60);

    #[test]
    fn opens_after_threshold_failures_in_a_row() {
        let now = Instant::now();
        let mut b = Breaker::new(3, COOL);
        assert!(!b.record_failure(now));
        assert!(!b.record_failure(now));
        assert!(b.record_failure(now));
        assert_eq!(b.admit(now), Admission::Refused { since: now });
    }

    #[test]
    fn a_success_resets_the_count() {
        let now = Instant::now();
        let mut b = Breaker::new(2, COOL);
        b.record_failure(now);
        b.record_success();
        assert!(!b.record_failure(now));
        assert_eq!(b.admit(now), Admission::Go);
    }

    #[test]
    fn after_cool_down_one_trial_is_admitted_and_success_closes() {
        let now = Instant::now();
        let mut b = Breaker::new(1, COOL);
        b.record_failure(now);
        let later = now + COOL;
        assert_eq!(b.admit(later), Admission::Go);
        assert_eq!(b.state(), BreakerState::Probing);
        assert!(matches!(b.admit(later), Admission::Refused { .. }));
        b.record_success();
        assert_eq!(b.admit(later), Admission::Go);
    }

    #[test]
    fn a_failed_trial_opens_again_for_a_full_cool_down() {
        let now = Instant::now();
        let mut b = Breaker::new(1, COOL);
        b.record_failure(now);
        let later = now + COOL;
        b.admit(later);
        assert!(b.record_failure(later));
        assert!(matches!(
            b.admit(later + COOL / 2),
            Admission::Refused { .. }
        ));
        assert_eq!(b.admit(later + COOL), Admission::Go);
    }

    #[test]
    fn reset_closes_an_open_breaker() {
        let now = Instant::now();
        let mut b = Breaker::new(1, COOL);
        b.record_failure(now);
        b.reset();
        assert!(!b.is_open());
        assert_eq!(b.admit(now), Admission::Go);
    }
}
