//! The simulator's time: epoch milliseconds on a clock that can run faster than the wall clock
//! and be moved forward by hand, so days of platform behaviour (quota resets, token expiry, order
//! lifecycles) take seconds. China time (UTC+8, no DST) draws the platform's day boundary.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;
/// The platform's day boundary: China standard time is UTC+8.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;

/// Wall-clock epoch milliseconds.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The China-time calendar day number (days since 1970-01-01 in UTC+8) of an instant.
pub fn beijing_day(ms: i64) -> i64 {
    (ms + CHINA_OFFSET_MS).div_euclid(DAY_MS)
}

/// A clock that runs `speed` times faster than the wall clock from a fixed origin, and can be
/// moved forward by hand. Two processes given the same origin and speed read the same time, which
/// is how a daemon follows a fast simulator it does not share memory with.
#[derive(Debug)]
pub struct ScaledClock {
    /// Wall-clock ms at which this clock read `origin_ms`.
    wall_origin_ms: i64,
    origin_ms: i64,
    speed: f64,
    offset_ms: AtomicI64,
}

impl ScaledClock {
    /// A clock reading `origin_ms` at wall time `wall_origin_ms`, running `speed` times as fast.
    pub fn new(wall_origin_ms: i64, origin_ms: i64, speed: f64) -> Self {
        Self {
            wall_origin_ms,
            origin_ms,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
            offset_ms: AtomicI64::new(0),
        }
    }

    /// A clock that reads `origin_ms` and moves only when [`advance`](Self::advance)d: tests
    /// that must know the instant a run plans from (to put records on a window's edge) use it.
    pub fn stopped_at(origin_ms: i64) -> Self {
        Self {
            wall_origin_ms: wall_ms(),
            origin_ms,
            speed: 0.0,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// A clock that starts at the wall time now and runs `speed` times as fast.
    pub fn starting_now(speed: f64) -> Self {
        let now = wall_ms();
        Self::new(now, now, speed)
    }

    /// The current time in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let elapsed = (wall_ms() - self.wall_origin_ms) as f64 * self.speed;
        self.origin_ms + elapsed as i64 + self.offset_ms.load(Ordering::SeqCst)
    }

    /// Jumps the clock forward (or back, with a negative value) by `ms`.
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// How many times faster than the wall clock this clock runs (0 for a stopped clock).
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The (wall origin, origin) pair that another process needs to read the same time.
    pub fn origin(&self) -> (i64, i64) {
        (
            self.wall_origin_ms,
            self.origin_ms + self.offset_ms.load(Ordering::SeqCst),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn china_days_turn_at_16_utc() {
        // 2024-01-01T15:59:59.999Z is 23:59:59.999 in Beijing; one ms later is the next day.
        let before = 1_704_124_799_999;
        assert_eq!(beijing_day(before) + 1, beijing_day(before + 1));
    }

    #[test]
    fn scaled_clock_runs_fast_and_advances() {
        let c = ScaledClock::new(wall_ms() - 1_000, 0, 100.0);
        let now = c.now_ms();
        assert!((99_000..200_000).contains(&now), "{now}");
        c.advance(DAY_MS);
        assert!(c.now_ms() >= now + DAY_MS);
    }

    #[test]
    fn a_stopped_clock_moves_only_by_hand() {
        let c = ScaledClock::stopped_at(5_000);
        assert_eq!(c.now_ms(), 5_000);
        c.advance(10);
        assert_eq!(c.now_ms(), 5_010);
        assert_eq!(c.origin().1, 5_010);
    }
}
