//! Replaceable time. Everything that asks "what time is it" goes through a [`Clock`], so the
//! simulator can run days in seconds and tests can jump ahead (quota resets, token expiry).
//!
//! Platform time is epoch milliseconds; business days are China time (UTC+8, no DST).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// China standard time offset (UTC+8) in milliseconds; the platform's day boundary.
pub const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;

/// A source of "now" in epoch milliseconds.
pub trait Clock: Send + Sync + Debug {
    /// The current time in epoch milliseconds.
    fn now_ms(&self) -> i64;
}

/// A clock shared between the parts of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wall_ms()
    }
}

/// Wall-clock epoch milliseconds.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The simulator's clock, which runs faster than the wall clock and can be moved by hand: the
/// demo, the tests and a daemon following a fast simulator (`[sim_clock]`) read time from it.
impl Clock for kwaishop_sim::ScaledClock {
    fn now_ms(&self) -> i64 {
        kwaishop_sim::ScaledClock::now_ms(self)
    }
}

/// The China-time calendar day number (days since 1970-01-01 in UTC+8) of an instant.
pub fn beijing_day(ms: i64) -> i64 {
    (ms + BEIJING_OFFSET_MS).div_euclid(DAY_MS)
}

/// The first instant (epoch ms) of the hour holding `ms`; the same hour in UTC and China time.
pub fn hour_start(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// The first instant (epoch ms) of the China-time day after the one holding `ms`.
pub fn next_beijing_midnight(ms: i64) -> i64 {
    (beijing_day(ms) + 1) * DAY_MS - BEIJING_OFFSET_MS
}

/// `3 d 4 h`, `2 h 5 min`, `12 min`, `45 s`, `850 ms`: a span of time in its two largest units.
pub fn human_span(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    match s {
        0 => format!("{ms} ms"),
        1..60 => format!("{s} s"),
        60..3_600 => format!("{m} min"),
        3_600..86_400 => format!("{} h {m} min", s / 3_600),
        _ => format!("{d} d {h} h"),
    }
}

/// Formats an epoch-ms instant as an RFC 3339 UTC string, for humans.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms}ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_midnight_is_16_utc() {
        // 2024-01-01T15:59:59.999Z is 23:59:59.999 in Beijing; one ms later is the next day.
        let before = 1_704_124_799_999;
        assert_eq!(next_beijing_midnight(before), before + 1);
        assert_eq!(beijing_day(before) + 1, beijing_day(before + 1));
    }

    #[test]
    fn hours_start_on_the_hour_before_and_after_1970() {
        assert_eq!(hour_start(1_704_124_799_999), 1_704_121_200_000);
        assert_eq!(hour_start(1_704_121_200_000), 1_704_121_200_000);
        assert_eq!(hour_start(-1), -HOUR_MS);
    }
}
