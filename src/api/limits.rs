//! Staying within the platform's limits (I7): a governor rate limiter per (app, method) shared by
//! all shops, and a daily call counter per shop whose day ends at Beijing midnight.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::Method;

/// The share of a configured QPS the client actually spends. The platform counts arrivals, and
/// requests paced evenly at the limit arrive bunched whenever something on the way stalls (the
/// network, a busy host, the platform's own gateway): 10 % headroom lets about a tenth of a
/// second of such bunching pass in any second without a throttled answer, which would cost a
/// backoff of seconds. (3 % was too little: stalls of 70–150 ms on one loaded host, measured by
/// the two-daemon test, drew throttled answers.)
pub const QPS_HEADROOM: f64 = 0.9;

/// How many calls of a method may pass back to back after a lull. A waiting caller is woken
/// a little after its turn (timers tick in milliseconds, and a busy host wakes it later still):
/// with no burst each such delay is lost, and at 270 calls a second about a tenth of the
/// pace went that way (measured: 243 calls a second). A burst lets the late turns be caught up.
/// It is paid for out of the headroom — any second holds at most `rate + burst` calls — and takes
/// at most a quarter of it, so three quarters remain for calls bunched on the way.
fn burst(qps: f64) -> NonZeroU32 {
    let spare = qps * (1.0 - QPS_HEADROOM) / 4.0;
    NonZeroU32::new(spare.floor() as u32).unwrap_or(NonZeroU32::MIN)
}

/// One pacing limiter per API method, shared by every shop of the app.
#[derive(Debug, Clone)]
pub struct RateLimits {
    limiters: BTreeMap<Method, Arc<DefaultDirectRateLimiter>>,
    qps: BTreeMap<Method, f64>,
}

impl RateLimits {
    /// Limiters for the configured QPS of each method (`qps(method)`), paced evenly at the
    /// headroom's share of it, with the small burst of `burst` so that callers woken late
    /// do not lose their turns.
    pub fn new(qps: impl Fn(Method) -> f64) -> Self {
        let mut limiters = BTreeMap::new();
        let mut rates = BTreeMap::new();
        for method in Method::ALL {
            let qps = qps(method).max(0.01);
            let rate = qps * QPS_HEADROOM;
            let period = Duration::from_secs_f64(1.0 / rate);
            let quota = Quota::with_period(period)
                .expect("period is positive")
                .allow_burst(burst(qps));
            limiters.insert(method, Arc::new(RateLimiter::direct(quota)));
            rates.insert(method, rate);
        }
        Self {
            limiters,
            qps: rates,
        }
    }

    /// Limiters that take over from others (a new share of the budget, a reloaded config) at
    /// this instant: each counts a call made just now, so its first call waits a whole period. A
    /// fresh limiter would let one through at once, right after the old one's last: two calls
    /// closer than either pace allows, and a second over the limit.
    pub fn replacing(qps: impl Fn(Method) -> f64) -> Self {
        let limits = Self::new(qps);
        for limiter in limits.limiters.values() {
            // Every call the burst would let through at once counts as made just now.
            while limiter.check().is_ok() {}
        }
        limits
    }

    /// Waits until one more call of `method` fits the limit.
    pub async fn acquire(&self, method: Method) {
        if let Some(limiter) = self.limiters.get(&method) {
            limiter.until_ready().await;
        }
    }

    /// The pace actually used for a method, in calls per second.
    pub fn effective_qps(&self, method: Method) -> f64 {
        self.qps.get(&method).copied().unwrap_or(0.0)
    }
}

/// A failure of the usage counter's storage.
#[derive(Debug, Clone, thiserror::Error)]
#[error("usage counter: {0}")]
pub struct UsageError(pub String);

/// Where the daily call counts and quota pauses live, so they survive restarts. The database
/// implementation arrives with the store; [`MemoryUsage`] serves tests and one-shot runs.
#[async_trait::async_trait]
pub trait UsageStore: Send + Sync + std::fmt::Debug {
    /// Counts one call of `method` by `shop` on China-time `day` unless the shop already made
    /// `limit` calls that day; returns the new total, or `None` when the limit was reached (and
    /// nothing was counted). Check and count are one atomic step, so concurrent callers cannot
    /// together pass the limit.
    async fn try_add_call(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        limit: Option<u64>,
    ) -> Result<Option<u64>, UsageError>;
    /// Counts up to `want` calls of `method` at once, ahead of their use (a block the caller
    /// spends call by call), fewer when `limit` leaves fewer; returns how many it counted
    /// (0: the limit is reached). Atomic as [`UsageStore::try_add_call`].
    async fn try_add_calls(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        want: u64,
        limit: Option<u64>,
    ) -> Result<u64, UsageError>;
    /// Uncounts `n` calls counted ahead on `day` and never made (at a stop, or a pause).
    async fn give_back(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        n: u64,
    ) -> Result<(), UsageError>;
    /// The shop's calls on `day`.
    async fn calls(&self, shop: &str, day: i64) -> Result<u64, UsageError>;
    /// Records that the shop may not call again before `until_ms` (the quota is spent).
    async fn pause_until(&self, shop: &str, until_ms: i64) -> Result<(), UsageError>;
    /// When the shop's quota pause ends, if one was recorded.
    async fn paused_until(&self, shop: &str) -> Result<Option<i64>, UsageError>;
    /// Records that the shop may not call `method` again before `until_ms` (that API's own
    /// quota is spent; the shop's other APIs go on).
    async fn pause_api_until(
        &self,
        shop: &str,
        method: Method,
        until_ms: i64,
    ) -> Result<(), UsageError>;
    /// When the shop's pause of `method` ends, if one was recorded.
    async fn api_paused_until(&self, shop: &str, method: Method)
    -> Result<Option<i64>, UsageError>;
}

/// An in-memory [`UsageStore`].
#[derive(Debug, Default)]
pub struct MemoryUsage {
    calls: Mutex<HashMap<(String, i64), u64>>,
    pauses: Mutex<HashMap<String, i64>>,
    api_pauses: Mutex<HashMap<(String, Method), i64>>,
}

fn poisoned<T>(_: T) -> UsageError {
    UsageError("a lock was poisoned by a panic".into())
}

#[async_trait::async_trait]
impl UsageStore for MemoryUsage {
    async fn try_add_call(
        &self,
        shop: &str,
        day: i64,
        _method: Method,
        limit: Option<u64>,
    ) -> Result<Option<u64>, UsageError> {
        let mut calls = self.calls.lock().map_err(poisoned)?;
        let n = calls.entry((shop.to_string(), day)).or_insert(0);
        if limit.is_some_and(|limit| *n >= limit) {
            return Ok(None);
        }
        *n += 1;
        Ok(Some(*n))
    }

    async fn try_add_calls(
        &self,
        shop: &str,
        day: i64,
        _method: Method,
        want: u64,
        limit: Option<u64>,
    ) -> Result<u64, UsageError> {
        let mut calls = self.calls.lock().map_err(poisoned)?;
        let n = calls.entry((shop.to_string(), day)).or_insert(0);
        let granted = limit.map_or(want, |limit| want.min(limit.saturating_sub(*n)));
        *n += granted;
        Ok(granted)
    }

    async fn give_back(
        &self,
        shop: &str,
        day: i64,
        _method: Method,
        n: u64,
    ) -> Result<(), UsageError> {
        let mut calls = self.calls.lock().map_err(poisoned)?;
        if let Some(count) = calls.get_mut(&(shop.to_string(), day)) {
            *count = count.saturating_sub(n);
        }
        Ok(())
    }

    async fn calls(&self, shop: &str, day: i64) -> Result<u64, UsageError> {
        let calls = self.calls.lock().map_err(poisoned)?;
        Ok(calls.get(&(shop.to_string(), day)).copied().unwrap_or(0))
    }

    async fn pause_until(&self, shop: &str, until_ms: i64) -> Result<(), UsageError> {
        self.pauses
            .lock()
            .map_err(poisoned)?
            .insert(shop.to_string(), until_ms);
        Ok(())
    }

    async fn paused_until(&self, shop: &str) -> Result<Option<i64>, UsageError> {
        Ok(self.pauses.lock().map_err(poisoned)?.get(shop).copied())
    }

    async fn pause_api_until(
        &self,
        shop: &str,
        method: Method,
        until_ms: i64,
    ) -> Result<(), UsageError> {
        self.api_pauses
            .lock()
            .map_err(poisoned)?
            .insert((shop.to_string(), method), until_ms);
        Ok(())
    }

    async fn api_paused_until(
        &self,
        shop: &str,
        method: Method,
    ) -> Result<Option<i64>, UsageError> {
        let pauses = self.api_pauses.lock().map_err(poisoned)?;
        Ok(pauses.get(&(shop.to_string(), method)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn pacing_spreads_calls_beyond_a_small_burst() {
        let limits = RateLimits::new(|_| 100.0);
        let burst = burst(100.0).get();
        assert_eq!(burst, 2);
        let start = Instant::now();
        for _ in 0..burst + 10 {
            limits.acquire(Method::ItemList).await;
        }
        // Past the burst, ten gaps of at least 1/90 s each.
        assert!(
            start.elapsed() >= Duration::from_millis(110),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn the_burst_is_paid_for_out_of_the_headroom() {
        for qps in [0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 300.0, 1000.0] {
            let burst = f64::from(burst(qps).get());
            // The most calls any second can hold stays within the limit …
            assert!(
                (qps * QPS_HEADROOM + burst).floor() <= qps.max(1.0),
                "{qps}: {burst}"
            );
            // … with at least three quarters of the headroom left where there is a burst.
            if burst > 1.0 {
                assert!(burst <= qps * (1.0 - QPS_HEADROOM) / 4.0, "{qps}: {burst}");
            }
        }
        assert_eq!(burst(300.0).get(), 7);
    }

    #[tokio::test]
    async fn a_caller_woken_late_keeps_its_turn() {
        // 270 calls a second: a turn every 3.7 ms. A caller that comes back 12 ms late
        // (three turns) finds the turns it missed, up to the burst, still there.
        let limits = RateLimits::new(|_| 300.0);
        let limiter = &limits.limiters[&Method::OrderCursorList];
        while limiter.check().is_ok() {}
        tokio::time::sleep(Duration::from_millis(12)).await;
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_ok(), "a late turn was lost");
    }

    #[tokio::test]
    async fn a_replacing_limiter_waits_a_period_before_its_first_call() {
        let limits = RateLimits::replacing(|_| 10.0);
        let start = Instant::now();
        limits.acquire(Method::ItemList).await;
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn memory_usage_counts_per_shop_and_day() {
        let usage = MemoryUsage::default();
        let add = |day, limit| usage.try_add_call("a", day, Method::ItemList, limit);
        assert_eq!(add(1, Some(2)).await.expect("ok"), Some(1));
        assert_eq!(add(1, Some(2)).await.expect("ok"), Some(2));
        assert_eq!(add(1, Some(2)).await.expect("ok"), None);
        assert_eq!(usage.calls("a", 1).await.expect("ok"), 2);
        assert_eq!(add(2, None).await.expect("ok"), Some(1));
        assert_eq!(usage.calls("b", 1).await.expect("ok"), 0);
        usage.pause_until("a", 99).await.expect("ok");
        assert_eq!(usage.paused_until("a").await.expect("ok"), Some(99));
    }
}
