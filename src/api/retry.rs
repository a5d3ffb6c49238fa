//! How failed calls are retried: the policy, and the delays between the attempts of one call.

use std::time::Duration;

use super::ErrorClass;

/// How failed calls are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First delay after a throttled answer (the reference suggests about 10 s).
    pub throttled_delay: Duration,
    /// First delay after a transient failure (about 5 s).
    pub transient_delay: Duration,
    /// No single delay is longer than this.
    pub max_delay: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            throttled_delay: Duration::from_secs(10),
            transient_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(120),
            max_attempts: 5,
        }
    }
}

/// The delays between the attempts of one call. Throttled answers and transient failures
/// each back off from their own first delay, doubling with each failure of their kind, with a
/// jitter of up to the delay again: a throttled answer after two cut connections waits the
/// throttled delay, not one grown by the failures before it (it once waited four times as
/// long, the last page of a backfill held for four seconds).
#[derive(Debug)]
pub(super) struct Delays<'a> {
    policy: &'a RetryPolicy,
    throttled: u32,
    transient: u32,
}

impl<'a> Delays<'a> {
    pub(super) fn new(policy: &'a RetryPolicy) -> Self {
        Self {
            policy,
            throttled: 0,
            transient: 0,
        }
    }

    /// The delay before the next attempt after a failure of `class`, before jitter.
    pub(super) fn base_after(&mut self, class: ErrorClass) -> Duration {
        let (first, count) = match class {
            ErrorClass::Throttled => (self.policy.throttled_delay, &mut self.throttled),
            _ => (self.policy.transient_delay, &mut self.transient),
        };
        let doubled = first.saturating_mul(1 << (*count).min(20));
        *count += 1;
        doubled.min(self.policy.max_delay)
    }

    /// The delay before the next attempt after a failure of `class`: [`Delays::base_after`]
    /// and up to as much again at random, no longer than the policy's longest.
    pub(super) fn after(&mut self, class: ErrorClass) -> Duration {
        let base = self.base_after(class);
        base.mul_f64(1.0 + rand::random::<f64>())
            .min(self.policy.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            throttled_delay: Duration::from_secs(1),
            transient_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_attempts: 8,
        }
    }

    #[test]
    fn a_throttled_answer_after_transient_failures_waits_the_throttled_delay() {
        let policy = policy();
        let mut delays = Delays::new(&policy);
        let (transient, throttled) = (ErrorClass::Transient, ErrorClass::Throttled);
        let bases = [transient, transient, throttled, throttled, transient]
            .map(|class| delays.base_after(class).as_millis());
        assert_eq!(bases, [250, 500, 1_000, 2_000, 1_000]);
    }

    #[test]
    fn delays_double_up_to_the_longest_and_jitter_within_it() {
        let policy = policy();
        let mut delays = Delays::new(&policy);
        let bases: Vec<_> = (0..6)
            .map(|_| delays.base_after(ErrorClass::Throttled))
            .collect();
        assert_eq!(
            bases,
            [1, 2, 4, 8, 10, 10].map(Duration::from_secs),
            "doubling, then the longest"
        );
        for _ in 0..100 {
            let mut delays = Delays::new(&policy);
            let d = delays.after(ErrorClass::Transient);
            assert!((250..500).contains(&d.as_millis()), "{d:?}");
            for _ in 0..40 {
                assert!(delays.after(ErrorClass::Throttled) <= policy.max_delay);
            }
        }
    }
}
