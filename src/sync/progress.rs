//! How a run reports its progress: progress bars on a terminal, log lines otherwise, nothing in
//! the daemon. The sync code calls these hooks; the CLI decides what to show.

use super::RunOutcome;
use crate::store::Stream;

/// Hooks a running sync calls.
pub trait SyncProgress: Send + Sync {
    /// A window starts (or resumes): `[begin, end]`, out of the whole span `[from, to]`.
    fn window(&self, _shop: &str, _stream: Stream, _begin: i64, _end: i64, _from: i64, _to: i64) {}
    /// Windows read side by side: `done` milliseconds of the span `[from, to]` are read (the
    /// finished windows), and `in_flight` windows are being read.
    fn windows(
        &self,
        _shop: &str,
        _stream: Stream,
        _done: i64,
        _in_flight: usize,
        _from: i64,
        _to: i64,
    ) {
    }
    /// A page was committed: `rows` records, and for item scans the page out of `of`.
    fn page(&self, _shop: &str, _stream: Stream, _rows: usize, _page: i64, _of: Option<i64>) {}
    /// The run ended.
    fn finished(&self, _shop: &str, _stream: Stream, _outcome: &RunOutcome) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl SyncProgress for NoProgress {}
