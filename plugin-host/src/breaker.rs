//! The circuit breaker that switches off a plugin which keeps misbehaving: a pure state machine
//! over an injected clock.
//!
//! Only misbehaviour counts: traps, timeouts, limit violations, invalid output, and errors the
//! plugin itself calls `internal`. An upstream outage reported properly by the plugin does not.
//! After `threshold` such failures in a row the breaker opens; calls are refused until an operator
//! resets it or `cool_down` has passed. Then exactly one trial call is let through (half-open)
//! while every other call is still refused: a trial that misbehaves opens the breaker for a fresh
//! cool-down, one that behaves closes it, and one that never reached a verdict (cancelled, or
//! refused before the guest ran) hands the trial to the next call.
//!
//! Every admission carries a [`Permit`] naming the breaker's generation at that moment, and a
//! verdict counts only for the generation it was admitted in: a call that started before the
//! breaker opened cannot close it by finishing well, nor end a trial that is not its own.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; `failures` misbehaviours not yet forgiven, and `successes` good answers in a
    /// row since the last of them.
    Closed { failures: u32, successes: u32 },
    /// Calls are refused until `until`; the first call after it is the trial.
    Open { until: Instant },
    /// The one trial call is in flight; everyone else waits for its verdict.
    HalfOpen,
}

/// Leave to make one call, from [`Breaker::admit`]; hand it back with the call's [`Outcome`].
impl BreakerState {
    /// Closed with nothing held against the plugin.
    pub const CLEAN: Self = Self::Closed {
        failures: 0,
        successes: 0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a permit must be settled, or a trial holds the breaker half-open"]
pub struct Permit {
    generation: u64,
    trial: bool,
}

impl Permit {
    /// Whether this call is the trial after a cool-down.
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go(Permit),
    Refused,
}

/// How an admitted call ended, as far as the plugin's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The plugin answered and its answer was usable.
    Success,
    /// The plugin answered properly with an error of its own (an upstream outage, a bad request):
    /// neither a misbehaviour nor a success for the count, but a trial that gets this far shows
    /// the plugin runs again.
    ReportedError,
    /// Trap, timeout, limit, unusable output, or an `internal` error.
    Misbehaviour,
    /// The guest never ran to a verdict: cancelled, or no sandbox was free.
    NoVerdict,
}

/// What settling a call did to the breaker, for the caller to persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    /// The breaker opened (first trip, or a failed trial).
    Opened,
    /// An open or half-open breaker closed.
    Closed,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    generation: u64,
    threshold: u32,
    cool_down: Duration,
}

impl Breaker {
    pub fn new(threshold: u32, cool_down: Duration) -> Self {
        Self {
            state: BreakerState::CLEAN,
            generation: 0,
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
            BreakerState::Closed { .. } => Admission::Go(self.permit(false)),
            BreakerState::Open { until } if now >= until => {
                self.enter(BreakerState::HalfOpen);
                Admission::Go(self.permit(true))
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => Admission::Refused,
        }
    }

    /// Records how the call admitted with `permit` ended.
    pub fn settle(&mut self, permit: Permit, outcome: Outcome, now: Instant) -> Transition {
        if permit.generation != self.generation {
            // Admitted before the breaker last changed state: its verdict is about a past state.
            return Transition::None;
        }
        match (self.state, outcome) {
            (
                BreakerState::Closed {
                    failures,
                    successes,
                },
                Outcome::Success,
            ) => {
                self.state = if successes + 1 >= self.threshold {
                    BreakerState::CLEAN
                } else {
                    BreakerState::Closed {
                        failures,
                        successes: successes + 1,
                    }
                };
                Transition::None
            }
            (BreakerState::Closed { failures, .. }, Outcome::Misbehaviour) => {
                if failures + 1 >= self.threshold {
                    self.open(now);
                    Transition::Opened
                } else {
                    self.state = BreakerState::Closed {
                        failures: failures + 1,
                        successes: 0,
                    };
                    Transition::None
                }
            }
            (BreakerState::Closed { .. }, Outcome::ReportedError | Outcome::NoVerdict) => {
                Transition::None
            }
            (BreakerState::HalfOpen, Outcome::Success | Outcome::ReportedError) => {
                self.enter(BreakerState::CLEAN);
                Transition::Closed
            }
            (BreakerState::HalfOpen, Outcome::Misbehaviour) => {
                self.open(now);
                Transition::Opened
            }
            // The cool-down is over already; the next call becomes the trial.
            (BreakerState::HalfOpen, Outcome::NoVerdict) => {
                self.enter(BreakerState::Open { until: now });
                Transition::None
            }
            // An open breaker admits nobody, so no permit of its generation exists.
            (BreakerState::Open { .. }, _) => Transition::None,
        }
    }

    /// Opens the breaker as for a trip `ago` before `now` (a trip remembered across a restart),
    /// so it stays open for whatever is left of its cool-down.
    pub fn restore_trip(&mut self, ago: Duration, now: Instant) {
        let until = now + self.cool_down.saturating_sub(ago);
        self.enter(BreakerState::Open { until });
    }

    /// An operator's reset.
    pub fn reset(&mut self) {
        self.enter(BreakerState::CLEAN);
    }

    /// Whether calls are being kept off (open, or waiting on the trial).
    pub fn is_tripped(&self) -> bool {
        !matches!(self.state, BreakerState::Closed { .. })
    }

    fn open(&mut self, now: Instant) {
        self.enter(BreakerState::Open {
            until: now + self.cool_down,
        });
    }

    fn enter(&mut self, state: BreakerState) {
        self.state = state;
        self.generation += 1;
    }

    fn permit(&self, trial: bool) -> Permit {
        Permit {
            generation: self.generation,
            trial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(60);

    fn go(breaker: &mut Breaker, now: Instant) -> Permit {
        match breaker.admit(now) {
            Admission::Go(permit) => permit,
            Admission::Refused => panic!("refused in {:?}", breaker.state()),
        }
    }

    /// A breaker with threshold 1 tripped at `now`.
    fn tripped(now: Instant) -> Breaker {
        let mut b = Breaker::new(1, COOL);
        let permit = go(&mut b, now);
        assert_eq!(
            b.settle(permit, Outcome::Misbehaviour, now),
            Transition::Opened
        );
        b
    }

    #[test]
    fn opens_after_threshold_failures_in_a_row() {
        let now = Instant::now();
        let mut b = Breaker::new(3, COOL);
        for expected in [Transition::None, Transition::None, Transition::Opened] {
            let permit = go(&mut b, now);
            assert_eq!(b.settle(permit, Outcome::Misbehaviour, now), expected);
        }
        assert_eq!(b.admit(now), Admission::Refused);
    }

    /// Settles one call of each outcome in turn, returning the last transition.
    fn calls(b: &mut Breaker, outcomes: &[Outcome], now: Instant) -> Transition {
        outcomes.iter().fold(Transition::None, |_, &outcome| {
            let permit = go(b, now);
            b.settle(permit, outcome, now)
        })
    }

    #[test]
    fn threshold_successes_in_a_row_forgive_and_a_reported_error_does_not_count() {
        use Outcome::*;
        let now = Instant::now();
        let mut b = Breaker::new(2, COOL);
        calls(&mut b, &[Misbehaviour, Success, Success], now);
        assert_eq!(b.state(), BreakerState::CLEAN);
        assert_eq!(
            calls(&mut b, &[Misbehaviour, ReportedError], now),
            Transition::None
        );
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                failures: 1,
                successes: 0
            }
        );
    }

    #[test]
    fn failing_every_other_call_still_trips() {
        use Outcome::*;
        let now = Instant::now();
        let mut b = Breaker::new(3, COOL);
        let alternating = [Misbehaviour, Success, Misbehaviour, Success, Misbehaviour];
        assert_eq!(calls(&mut b, &alternating, now), Transition::Opened);
        assert_eq!(b.admit(now), Admission::Refused);
    }

    #[test]
    fn refused_during_the_cool_down() {
        let now = Instant::now();
        let mut b = tripped(now);
        assert_eq!(b.admit(now + COOL / 2), Admission::Refused);
        assert!(b.is_tripped());
    }

    #[test]
    fn after_the_cool_down_exactly_one_trial_runs_and_its_success_closes() {
        let now = Instant::now();
        let mut b = tripped(now);
        let later = now + COOL;
        let trial = go(&mut b, later);
        assert!(trial.is_trial());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        for _ in 0..3 {
            assert_eq!(b.admit(later), Admission::Refused);
        }
        assert_eq!(b.settle(trial, Outcome::Success, later), Transition::Closed);
        assert!(!go(&mut b, later).is_trial());
    }

    #[test]
    fn a_trial_that_reports_an_error_properly_closes() {
        let now = Instant::now();
        let mut b = tripped(now);
        let trial = go(&mut b, now + COOL);
        assert_eq!(
            b.settle(trial, Outcome::ReportedError, now + COOL),
            Transition::Closed
        );
    }

    #[test]
    fn a_failed_trial_opens_again_for_a_full_cool_down() {
        let now = Instant::now();
        let mut b = tripped(now);
        let later = now + COOL;
        let trial = go(&mut b, later);
        assert_eq!(
            b.settle(trial, Outcome::Misbehaviour, later),
            Transition::Opened
        );
        assert_eq!(b.admit(later + COOL / 2), Admission::Refused);
        assert!(go(&mut b, later + COOL).is_trial());
    }

    #[test]
    fn a_trial_without_a_verdict_hands_the_trial_to_the_next_call() {
        let now = Instant::now();
        let mut b = tripped(now);
        let later = now + COOL;
        let trial = go(&mut b, later);
        assert_eq!(b.settle(trial, Outcome::NoVerdict, later), Transition::None);
        let next = go(&mut b, later);
        assert!(next.is_trial());
        assert_eq!(b.admit(later), Admission::Refused);
    }

    #[test]
    fn a_call_admitted_before_the_trip_cannot_close_or_end_the_trial() {
        let now = Instant::now();
        let mut b = Breaker::new(1, COOL);
        let early = go(&mut b, now);
        let tripping = go(&mut b, now);
        b.settle(tripping, Outcome::Misbehaviour, now);
        assert_eq!(b.settle(early, Outcome::Success, now), Transition::None);
        assert_eq!(b.admit(now), Admission::Refused);

        let trial = go(&mut b, now + COOL);
        assert_eq!(
            b.settle(early, Outcome::Misbehaviour, now + COOL),
            Transition::None
        );
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.settle(trial, Outcome::Success, now + COOL),
            Transition::Closed
        );
    }

    #[test]
    fn reset_closes_an_open_breaker_and_forgets_earlier_calls() {
        let now = Instant::now();
        let mut b = Breaker::new(2, COOL);
        let before = go(&mut b, now);
        let permit = go(&mut b, now);
        b.settle(permit, Outcome::Misbehaviour, now);
        b.reset();
        assert!(!b.is_tripped());
        b.settle(before, Outcome::Misbehaviour, now);
        assert_eq!(b.state(), BreakerState::CLEAN);
    }

    #[test]
    fn a_restored_trip_keeps_what_is_left_of_its_cool_down() {
        let now = Instant::now();
        let mut b = Breaker::new(5, COOL);
        b.restore_trip(COOL / 4, now);
        assert_eq!(b.admit(now + COOL / 2), Admission::Refused);
        assert!(go(&mut b, now + COOL * 3 / 4).is_trial());

        let mut long_ago = Breaker::new(5, COOL);
        long_ago.restore_trip(COOL * 10, now);
        assert!(go(&mut long_ago, now).is_trial());
    }
}
