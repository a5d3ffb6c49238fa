//! How long work shows its progress: bars on a terminal, one per (shop, stream), and plain log
//! lines for journals and pipes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing::info;

use super::sync::outcome_text;
use crate::clock::format_ms;
use crate::store::Stream;
use crate::sync::{RunOutcome, SyncProgress};

/// Progress bars, one per (shop, stream): how much of its span is read, its records, their
/// rate, the windows in flight and an estimate of the time left.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<(String, Stream), BarState>>,
}

struct BarState {
    bar: ProgressBar,
    rows: u64,
    /// Windows being read side by side, when more than one.
    in_flight: Option<usize>,
    /// The window being read, when one at a time.
    range: Option<String>,
}

impl BarState {
    fn show(&self, page: Option<(i64, i64)>) {
        let secs = self.bar.elapsed().as_secs_f64().max(0.001);
        let rate = self.rows as f64 / secs;
        let mut msg = self
            .range
            .as_ref()
            .map(|r| format!("{r}, "))
            .unwrap_or_default();
        match page {
            Some((page, of)) => msg.push_str(&format!("page {page}/{of}, {} records", self.rows)),
            None => msg.push_str(&format!("{} records", self.rows)),
        }
        msg.push_str(&format!(", {rate:.0}/s"));
        if let Some(n) = self.in_flight {
            msg.push_str(&format!(", {n} windows in flight"));
        }
        self.bar.set_message(msg);
    }
}

impl Bars {
    pub fn new() -> Self {
        Self::with_target(indicatif::ProgressDrawTarget::stderr())
    }

    /// Bars drawn to `target` (hidden in tests).
    pub fn with_target(target: indicatif::ProgressDrawTarget) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the (shop, stream)'s bar, made on first use.
    fn with_bar<T>(&self, shop: &str, stream: Stream, f: impl FnOnce(&mut BarState) -> T) -> T {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let state = bars.entry((shop.to_string(), stream)).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(1000));
            let style = ProgressStyle::with_template(
                "{prefix:>18} [{bar:30}] {percent:>3}% {msg} (left {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{shop} {}", stream.as_str()));
            BarState {
                bar,
                rows: 0,
                in_flight: None,
                range: None,
            }
        });
        f(state)
    }

    /// The (shop, stream)'s bar: its position, length and message.
    pub fn snapshot(&self, shop: &str, stream: Stream) -> (u64, Option<u64>, String) {
        self.with_bar(shop, stream, |s| {
            (s.bar.position(), s.bar.length(), s.bar.message())
        })
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

/// Per mille of `[from, to]` that `done` is.
fn per_mille(done: i64, from: i64, to: i64) -> u64 {
    let span = (to - from).max(1) as f64;
    ((done as f64 / span) * 1000.0).clamp(0.0, 1000.0) as u64
}

impl SyncProgress for Bars {
    fn window(&self, shop: &str, stream: Stream, begin: i64, end: i64, from: i64, to: i64) {
        self.with_bar(shop, stream, |s| {
            s.bar.set_position(per_mille(begin - from, from, to));
            s.in_flight = None;
            s.range = Some(format!(
                "window {} → {}",
                short_date(begin),
                short_date(end)
            ));
            s.show(None);
        });
    }

    fn windows(&self, shop: &str, stream: Stream, done: i64, in_flight: usize, from: i64, to: i64) {
        self.with_bar(shop, stream, |s| {
            // Never back: a resumed batch counts from where it resumed.
            let at = per_mille(done, from, to).max(s.bar.position());
            s.bar.set_position(at);
            s.in_flight = Some(in_flight);
            s.range = None;
            s.show(None);
        });
    }

    fn page(&self, shop: &str, stream: Stream, rows: usize, page: i64, of: Option<i64>) {
        self.with_bar(shop, stream, |s| {
            s.rows += rows as u64;
            match of {
                Some(of) => {
                    s.bar.set_length(of.max(1) as u64);
                    s.bar.set_position(page as u64);
                    s.show(Some((page, of)));
                }
                None => s.show(None),
            }
        });
    }

    fn finished(&self, shop: &str, stream: Stream, outcome: &RunOutcome) {
        self.with_bar(shop, stream, |s| {
            if *outcome == RunOutcome::CaughtUp {
                s.bar.set_position(s.bar.length().unwrap_or(1000));
            }
            s.bar.finish_with_message(outcome_text(outcome));
        });
    }
}

/// Log lines instead of bars, for journals and pipes.
#[derive(Debug, Default)]
pub struct LogLines;

impl SyncProgress for LogLines {
    fn window(&self, shop: &str, stream: Stream, begin: i64, end: i64, _from: i64, _to: i64) {
        info!(shop, stream = stream.as_str(), begin = %format_ms(begin), end = %format_ms(end), "window");
    }

    fn finished(&self, shop: &str, stream: Stream, outcome: &RunOutcome) {
        info!(shop, stream = stream.as_str(), outcome = %outcome_text(outcome), "finished");
    }
}

fn short_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// The progress reporter for this process: bars on a terminal, log lines otherwise.
pub fn progress_for_terminal() -> Arc<dyn SyncProgress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bars::new())
    } else {
        Arc::new(LogLines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_per_stream_moves_with_the_windows_read() {
        let bars = Bars::with_target(indicatif::ProgressDrawTarget::hidden());
        let (from, to) = (0, 100_000);
        bars.windows("s", Stream::Orders, 0, 16, from, to);
        bars.page("s", Stream::Orders, 50, 0, None);
        bars.page("s", Stream::Orders, 50, 0, None);
        bars.windows("s", Stream::Orders, 25_000, 16, from, to);
        let (at, len, msg) = bars.snapshot("s", Stream::Orders);
        assert_eq!((at, len), (250, Some(1000)));
        assert!(
            msg.starts_with("100 records, ") && msg.contains("/s"),
            "{msg}"
        );
        assert!(msg.ends_with("16 windows in flight"), "{msg}");
        // Never back; another stream has its own bar.
        bars.windows("s", Stream::Orders, 10_000, 3, from, to);
        assert_eq!(bars.snapshot("s", Stream::Orders).0, 250);
        assert_eq!(bars.snapshot("s", Stream::Refunds).0, 0);
        // One window at a time: its range.
        bars.window("s", Stream::Refunds, 50_000, 60_000, from, to);
        let (at, _, msg) = bars.snapshot("s", Stream::Refunds);
        assert_eq!(at, 500);
        assert!(
            msg.starts_with("window ") && !msg.contains("in flight"),
            "{msg}"
        );
        bars.finished("s", Stream::Orders, &RunOutcome::CaughtUp);
        assert_eq!(bars.snapshot("s", Stream::Orders).0, 1000);
    }
}
