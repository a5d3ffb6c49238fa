//! How failed calls are retried: the policy, and the delays between the attempts of one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::ErrorClass;

/// How failed calls are retried: `[retry]` of the config, whose defaults are these.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First delay after a throttled answer. The reference suggests about 10 s; the client
    /// paces itself below the limit, so a throttled answer is the platform's hidden global
    /// limit or another tool on the app, and 1 s doubling with each one backs off as fast
    /// without holding a backfill up for ten.
    pub throttled_delay: Duration,
    /// First delay after a transient failure (a 5xx, a timeout, a cut answer).
    pub transient_delay: Duration,
    /// No single delay is longer than this.
    pub max_delay: Duration,
    /// Attempts in all, the first one included.
    pub max_attempts: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            throttled_delay: Duration::from_secs(1),
            transient_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(120),
            max_attempts: 8,
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

/// The calls made under [`Waiting::watch`] that have nothing to do but wait — out a retry's
/// delay, or for requests the platform holds —, by the tag each was watched with, and until
/// when. A stream reading windows side by side lets another window start in place of one that
/// waits (the limiter still paces every call, and the readers keep the pace while some of them
/// back off: with 5 % faults they read a third fewer pages a second when a wait held a
/// reader), and when nothing else is left to read, reads a window that would wait longer than
/// reading it again takes again, in pieces.
#[derive(Debug, Default)]
pub struct Waiting {
    until: Mutex<HashMap<i64, Instant>>,
    changed: Notify,
}

tokio::task_local! {
    static WAITING: (Arc<Waiting>, i64);
}

impl Waiting {
    /// How many calls wait now.
    pub fn now(&self) -> usize {
        self.waits().len()
    }

    /// When the wait of the call watched with `tag` ends, if it waits now.
    pub fn until(&self, tag: i64) -> Option<Instant> {
        self.waits().get(&tag).copied()
    }

    /// Resolves once a call has started or ended a wait since the last time it resolved.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Runs `work`, its retries' waits known here by `tag`; `work` makes one call at a time.
    pub fn watch<F: Future>(
        self: &Arc<Self>,
        tag: i64,
        work: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        WAITING.scope((self.clone(), tag), work)
    }

    fn waits(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, tag: i64, until: Option<Instant>) {
        match until {
            Some(until) => self.waits().insert(tag, until),
            None => self.waits().remove(&tag),
        };
        // A permit is kept when nobody is waiting yet: no change is missed.
        self.changed.notify_one();
    }
}

/// Sleeps `delay` between two attempts of a call, known to the [`Waiting`] it runs under.
pub(super) async fn wait(delay: Duration) {
    let until = Instant::now() + delay;
    let known = stalled_until(until);
    tokio::time::sleep_until(until).await;
    drop(known);
}

/// Tells the [`Waiting`] the call runs under (if any) that it has nothing to do but wait until
/// `until` — a retry's delay, or requests held by the platform —, for as long as the returned
/// guard lives.
pub(super) fn stalled_until(until: Instant) -> Option<Stalled> {
    WAITING
        .try_with(|(w, tag)| {
            w.set(*tag, Some(until));
            Stalled(w.clone(), *tag)
        })
        .ok()
}

/// A call known to wait (see [`stalled_until`]) until this is dropped.
pub(super) struct Stalled(Arc<Waiting>, i64);

impl Drop for Stalled {
    fn drop(&mut self) {
        self.0.set(self.1, None);
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

    #[tokio::test]
    async fn a_wait_is_known_by_its_tag_until_it_ends_or_is_dropped() {
        let waiting = Arc::new(Waiting::default());
        let watched = waiting.watch(7, wait(Duration::from_millis(200)));
        let task = tokio::spawn(watched);
        waiting.changed().await;
        assert_eq!(waiting.now(), 1);
        let until = waiting.until(7).expect("tag 7 waits");
        assert!(
            until > Instant::now() + Duration::from_millis(100),
            "{until:?}"
        );
        assert_eq!(waiting.until(8), None);
        task.await.expect("the wait ends");
        assert_eq!((waiting.now(), waiting.until(7)), (0, None));
        // A wait given up (its window stopped) is forgotten at once.
        let task = tokio::spawn(waiting.watch(9, wait(Duration::from_secs(60))));
        // (A change may be told more than once.)
        while waiting.until(9).is_none() {
            waiting.changed().await;
        }
        task.abort();
        let _ = task.await;
        assert_eq!(waiting.now(), 0);
        // Outside any watch a wait is only a sleep.
        wait(Duration::from_millis(1)).await;
        assert_eq!(waiting.now(), 0);
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
