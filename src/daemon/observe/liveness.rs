//! Which loops must keep making progress: each registers how long it may stay silent and beats
//! when it makes progress. `/healthz` and the systemd watchdog ask which ones are stalled.
//!
//! Real time ([`Instant`]), not the replaceable clock: a simulated clock that jumps a day ahead
//! must not declare every loop stalled, and a stuck loop must be caught however the clock runs.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which loops must keep making progress (for /healthz and the systemd watchdog).
#[derive(Debug, Default)]
pub struct Liveness {
    /// In registration order; a handful of loops, so a list is enough.
    loops: Mutex<Vec<Loop>>,
}

#[derive(Debug)]
struct Loop {
    name: &'static str,
    max_silence: Duration,
    last_beat: Instant,
}

/// How long a registered loop has been silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopSilence {
    pub name: &'static str,
    /// Since its last beat (or its registration).
    pub silent_for: Duration,
    /// The longest silence allowed.
    pub max_silence: Duration,
}

impl LoopSilence {
    /// Silent for longer than allowed.
    pub fn is_stalled(&self) -> bool {
        self.silent_for > self.max_silence
    }
}

impl Liveness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a loop that must report progress at least every `max_silence`. Registering
    /// counts as a beat; registering a name again replaces its limit.
    pub fn register(&self, name: &'static str, max_silence: std::time::Duration) {
        let now = Instant::now();
        let mut loops = self.lock();
        match loops.iter_mut().find(|l| l.name == name) {
            Some(l) => {
                l.max_silence = max_silence;
                l.last_beat = now;
            }
            None => loops.push(Loop {
                name,
                max_silence,
                last_beat: now,
            }),
        }
    }

    /// The loop made progress now. A name that was never registered is ignored: only
    /// registered loops are watched.
    pub fn beat(&self, name: &'static str) {
        let now = Instant::now();
        if let Some(l) = self.lock().iter_mut().find(|l| l.name == name) {
            l.last_beat = now;
        }
    }

    /// The loops silent for longer than allowed (empty = all live), in registration order.
    pub fn stalled(&self) -> Vec<&'static str> {
        self.silences()
            .into_iter()
            .filter(LoopSilence::is_stalled)
            .map(|s| s.name)
            .collect()
    }

    /// Every registered loop's silence, in registration order (for metrics).
    pub fn silences(&self) -> Vec<LoopSilence> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|l| LoopSilence {
                name: l.name,
                silent_for: now.saturating_duration_since(l.last_beat),
                max_silence: l.max_silence,
            })
            .collect()
    }

    /// The list, even if a thread panicked holding it: it holds only instants.
    fn lock(&self) -> MutexGuard<'_, Vec<Loop>> {
        self.loops.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_is_stalled_only_past_its_limit_and_a_beat_revives_it() {
        let live = Liveness::new();
        live.register("worker", Duration::ZERO);
        live.register("scheduler", Duration::from_secs(3_600));
        live.beat("never-registered");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(live.stalled(), vec!["worker"]);
        live.register("worker", Duration::from_secs(3_600));
        assert!(live.stalled().is_empty());
        assert_eq!(live.silences().len(), 2);
    }
}
