//! The platform's answers counted per (shop, hour, method, outcome) until they are written to
//! the database (`api_calls`), where the status page reads the last 24 hours. The daemon drains
//! the counts every few seconds; a write that fails puts them back, so none is lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Method;

/// Answers of one shop to one method in one hour with one outcome (`ok` or the failure class).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HourlyCount {
    pub shop_id: String,
    /// The hour's first instant, epoch ms ([`crate::clock::hour_start`]).
    pub hour_ms: i64,
    pub method: Method,
    pub outcome: &'static str,
    pub calls: u64,
}

type Key = (String, i64, Method, &'static str);

/// Counts not written yet. Cheap to clone: clones share the counts, so every holder of the
/// client (the worker, the pollers, the keeper; a reload reconfigures it in place) adds to the
/// one buffer the daemon drains.
#[derive(Debug, Clone, Default)]
pub struct HourlyCalls {
    counts: Arc<Mutex<HashMap<Key, u64>>>,
}

impl HourlyCalls {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u64>> {
        // A panic elsewhere while holding the lock leaves plain numbers behind: keep them.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `calls` answers.
    pub fn add(
        &self,
        shop_id: &str,
        hour_ms: i64,
        method: Method,
        outcome: &'static str,
        calls: u64,
    ) {
        *self
            .counts()
            .entry((shop_id.to_string(), hour_ms, method, outcome))
            .or_insert(0) += calls;
    }

    /// Takes every count out, sorted; the buffer is empty afterwards.
    pub fn drain(&self) -> Vec<HourlyCount> {
        let mut out: Vec<HourlyCount> = self
            .counts()
            .drain()
            .map(|((shop_id, hour_ms, method, outcome), calls)| HourlyCount {
                shop_id,
                hour_ms,
                method,
                outcome,
                calls,
            })
            .collect();
        out.sort();
        out
    }

    /// Puts drained counts back (their write failed), adding them to any counted meanwhile.
    pub fn restore(&self, counts: Vec<HourlyCount>) {
        let mut map = self.counts();
        for c in counts {
            *map.entry((c.shop_id, c.hour_ms, c.method, c.outcome))
                .or_insert(0) += c.calls;
        }
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.counts().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_empties_and_restore_adds_back() {
        let calls = HourlyCalls::default();
        calls.add("s", 0, Method::ItemList, "ok", 2);
        calls.add("s", 0, Method::ItemList, "ok", 1);
        calls.add("s", 3_600_000, Method::ItemList, "transient", 1);
        let drained = calls.drain();
        assert_eq!(drained.len(), 2);
        assert_eq!((drained[0].hour_ms, drained[0].calls), (0, 3));
        assert!(calls.is_empty());
        calls.add("s", 0, Method::ItemList, "ok", 5);
        calls.restore(drained);
        let again = calls.drain();
        assert_eq!(again[0].calls, 8, "{again:?}");
        assert_eq!(again[1].outcome, "transient");
    }

    #[test]
    fn clones_share_the_counts() {
        let a = HourlyCalls::default();
        let b = a.clone();
        b.add("s", 0, Method::OrderDetail, "ok", 1);
        assert_eq!(a.drain().len(), 1);
        assert!(b.is_empty());
    }
}
