//! Faults on demand: a share of calls that fail the way a real gateway and network fail.

use serde::{Deserialize, Serialize};

/// Shares (0.0–1.0) of API calls that meet each fault, and how long slow and hung calls take.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// HTTP 502/503 with an HTML page.
    pub error_5xx: f64,
    /// The answer never comes within `timeout_ms` (the client's timeout should fire first).
    pub timeout: f64,
    /// A throttled envelope (802000/802005) although the limit was not reached.
    pub throttle: f64,
    /// The answer is delayed by `slow_ms`, then correct.
    pub slow: f64,
    /// The body is cut off halfway and the connection closed.
    pub cut: f64,
    /// An internal-timeout envelope (806000/806001).
    pub internal_timeout: f64,
    pub slow_ms: u64,
    pub timeout_ms: u64,
}

impl FaultConfig {
    /// A configuration with every fault at the same share (`--faults`), split evenly.
    pub fn uniform(total: f64) -> Self {
        let share = (total / 5.0).clamp(0.0, 0.2);
        Self {
            error_5xx: share,
            timeout: share,
            throttle: share,
            slow: share,
            cut: share,
            internal_timeout: 0.0,
            slow_ms: 0,
            timeout_ms: 0,
        }
    }

    pub fn slow_ms(&self) -> u64 {
        if self.slow_ms == 0 {
            1_500
        } else {
            self.slow_ms
        }
    }

    pub fn timeout_ms(&self) -> u64 {
        if self.timeout_ms == 0 {
            60_000
        } else {
            self.timeout_ms
        }
    }

    /// Picks the fault for one call from a uniform draw in [0, 1).
    pub fn pick(&self, draw: f64) -> Option<Fault> {
        let table = [
            (self.error_5xx, Fault::ServerError),
            (self.timeout, Fault::Timeout),
            (self.throttle, Fault::Throttle),
            (self.slow, Fault::Slow),
            (self.cut, Fault::Cut),
            (self.internal_timeout, Fault::InternalTimeout),
        ];
        let mut edge = 0.0;
        for (share, fault) in table {
            edge += share.max(0.0);
            if draw < edge {
                return Some(fault);
            }
        }
        None
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    ServerError,
    Timeout,
    Throttle,
    Slow,
    Cut,
    InternalTimeout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_follows_the_shares() {
        let f = FaultConfig {
            error_5xx: 0.1,
            cut: 0.1,
            ..Default::default()
        };
        assert_eq!(f.pick(0.05), Some(Fault::ServerError));
        assert_eq!(f.pick(0.15), Some(Fault::Cut));
        assert_eq!(f.pick(0.25), None);
        assert_eq!(FaultConfig::default().pick(0.0), None);
    }
}
