//! How long recent answers took, per method: the quick timeout and when a request is sent a
//! second time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::api::Method;

/// How long the last answers of each method took. A request waits for its answer ten times
/// as long as nine in ten of them took, at least [`QUICK_TIMEOUT_FLOOR`] and at most the
/// configured timeout: a request that hangs (a lost connection, a gateway that swallowed it)
/// is given up and sent again in seconds, not held for the whole timeout while every other
/// window finishes. Until enough answers are known (of the method, or for a list, of all
/// lists), the configured timeout holds.
#[derive(Debug, Default)]
pub(super) struct AnswerTimes(Mutex<HashMap<Method, std::collections::VecDeque<Duration>>>);

/// The shortest quick timeout.
const QUICK_TIMEOUT_FLOOR: Duration = Duration::from_secs(2);
/// How many answers per method the quick timeout is computed from (and needs).
const ANSWERS_KEPT: usize = 64;
const ANSWERS_NEEDED: usize = 16;
/// How many answers a second request beside a slow first needs: a few. A backfill's first
/// windows are planned from the first pages of the ones before them, so one held first page
/// in the first second would otherwise hold the stream's whole plan until it is answered (the
/// quick timeout's sixteen answers are not known yet). Sending a read twice costs a call; the
/// floor of half a second keeps it for answers that are really late.
pub(super) const ANSWERS_TO_HEDGE: usize = 4;

impl AnswerTimes {
    pub(super) fn add(&self, method: Method, took: Duration) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let times = all.entry(method).or_default();
        if times.len() == ANSWERS_KEPT {
            times.pop_front();
        }
        times.push_back(took);
    }

    /// The ninth decile of the method's recent answer times; `None` until `needed` are known.
    /// A list with fewer stands in the others' answers: the platform is as far away for each
    /// (an item page that hung in a backfill's first second, its list answered three times,
    /// once held its stream for the whole configured timeout while the orders were timed).
    pub(super) fn p90(&self, method: Method, needed: usize) -> Option<Duration> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut sorted: Vec<Duration> = match all.get(&method).filter(|t| t.len() >= needed) {
            Some(times) => times.iter().copied().collect(),
            None if method.lists() => all
                .iter()
                .filter(|(m, _)| m.lists())
                .flat_map(|(_, times)| times.iter().copied())
                .collect(),
            None => return None,
        };
        if sorted.len() < needed {
            return None;
        }
        sorted.sort_unstable();
        Some(sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)])
    }

    pub(super) fn quick_timeout(&self, method: Method, configured: Duration) -> Duration {
        self.p90(method, ANSWERS_NEEDED).map_or(configured, |p90| {
            (p90 * 10).clamp(QUICK_TIMEOUT_FLOOR.min(configured), configured)
        })
    }

    /// After how long an unanswered request is sent a second time beside the first: three
    /// times the ninth decile of recent answers, at least [`HEDGE_FLOOR`]; `None` until enough
    /// answers are known ([`ANSWERS_TO_HEDGE`]).
    pub(super) fn hedge_after(&self, method: Method) -> Option<Duration> {
        self.p90(method, ANSWERS_TO_HEDGE)
            .map(|p90| (p90 * 3).max(HEDGE_FLOOR))
    }
}

/// The shortest wait before a request is sent a second time beside the first.
const HEDGE_FLOOR: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests;
