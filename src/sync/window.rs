//! Window planning (design.md "Sync algorithm"): the next window starts a lookback before the
//! checkpoint (or at the backfill start), ends at most `window` later and never after
//! `now − settle`, and never reaches past the platform's 90-day horizon.

use std::time::Duration;

use crate::clock::DAY_MS;

/// The platform's horizon, less a margin so a window planned now is still valid when sent.
pub const HORIZON_MS: i64 = 90 * DAY_MS - 10 * 60_000;

/// A time window `[begin_ms, end_ms]` of a list API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub begin_ms: i64,
    pub end_ms: i64,
}

/// The next window after `checkpoint` (none yet: a backfill of `backfill_days`), or `None` when
/// there is nothing new to read.
pub fn plan_window(
    checkpoint: Option<i64>,
    now: i64,
    backfill_days: u32,
    max_window: Duration,
    lookback: Duration,
    settle: Duration,
) -> Option<Window> {
    let horizon = now - HORIZON_MS;
    let start = match checkpoint {
        Some(c) => c - lookback.as_millis() as i64,
        None => now - i64::from(backfill_days) * DAY_MS,
    };
    let begin = start.max(horizon);
    let end = (begin + max_window.as_millis() as i64).min(now - settle.as_millis() as i64);
    if end <= begin || checkpoint.is_some_and(|c| end <= c) {
        return None;
    }
    Some(Window {
        begin_ms: begin,
        end_ms: end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    #[test]
    fn backfill_starts_at_the_horizon_and_caps_the_width() {
        let now = 1_000 * DAY_MS;
        let w = plan_window(None, now, 90, WEEK, 10 * MIN, MIN).expect("window");
        assert_eq!(w.begin_ms, now - HORIZON_MS);
        assert_eq!(w.end_ms - w.begin_ms, 7 * DAY_MS);
        let w = plan_window(None, now, 30, WEEK, 10 * MIN, MIN).expect("window");
        assert_eq!(w.begin_ms, now - 30 * DAY_MS);
    }

    #[test]
    fn later_windows_overlap_by_the_lookback_and_stop_before_settle() {
        let now = 1_000 * DAY_MS;
        let checkpoint = now - 3_600_000;
        let w = plan_window(Some(checkpoint), now, 90, WEEK, 10 * MIN, MIN).expect("window");
        assert_eq!(w.begin_ms, checkpoint - 600_000);
        assert_eq!(w.end_ms, now - 60_000);
        // Caught up: nothing beyond the checkpoint yet.
        assert_eq!(
            plan_window(Some(now - 60_000), now, 90, WEEK, 10 * MIN, MIN),
            None
        );
        // A checkpoint older than the horizon restarts at the horizon.
        let w =
            plan_window(Some(now - 200 * DAY_MS), now, 90, WEEK, 10 * MIN, MIN).expect("window");
        assert_eq!(w.begin_ms, now - HORIZON_MS);
    }
}
