//! The time-windowed pollers (orders, refunds): window after window from the checkpoint, page
//! after page inside a window, each page committed with the next cursor; at `nomore` the
//! checkpoint moves to the window's end in that same transaction.

use std::ops::ControlFlow;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::planner::Planner;
use super::window::{HORIZON_MS, Window, plan_window};
use super::{Counts, RunOutcome, SyncContext, SyncError, SyncProgress};
use crate::clock::format_ms;
use crate::config::StreamConfig;
use crate::store::{Stream, StreamState, WindowRow};

mod pages;
mod side_by_side;
mod sinks;
mod writer;

pub(super) use pages::read_window;
use side_by_side::side_by_side;
use sinks::LiveSink;
pub(super) use sinks::ResyncSink;

/// Reads the stream's windows from its checkpoint until it has caught up with the moment the
/// run started, or is stopped.
pub(super) async fn run(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<RunOutcome, SyncError> {
    let cfg = cx.config.stream(stream).clone();
    // A run catches up to the moment it started: windows are planned against that instant, so
    // a busy shop cannot keep a run going forever re-reading its last minutes.
    let now = cx.clock.now_ms();
    let backfill_from = now - i64::from(cx.config.sync.backfill_days) * crate::clock::DAY_MS;
    let run = Run {
        cx,
        shop,
        stream,
        cfg,
        now,
        backfill_from,
        progress,
        cancel,
    };
    loop {
        if cancel.is_cancelled() {
            return Ok(RunOutcome::Stopped);
        }
        // Windows read side by side (planned below, or left by a stop or a crash): finish them
        // first, each from its own cursor.
        let pending = cx.store.windows(shop, stream).await?;
        let step = if pending.is_empty() {
            run.read_from_checkpoint(counts).await?
        } else {
            run.read_pending(pending, counts).await?
        };
        if let ControlFlow::Break(outcome) = step {
            return Ok(outcome);
        }
    }
}

/// One run of a windowed stream. Each of its steps says whether the run goes on or ends, with
/// what outcome.
struct Run<'a> {
    cx: &'a SyncContext,
    shop: &'a str,
    stream: Stream,
    cfg: StreamConfig,
    /// The moment the run catches up to.
    now: i64,
    /// Where a backfill starts.
    backfill_from: i64,
    progress: &'a dyn SyncProgress,
    cancel: &'a CancellationToken,
}

impl Run<'_> {
    /// Reads the windows planned to be read side by side (left by a stop or a crash), and more
    /// after them; or moves the checkpoint over them once all are read.
    async fn read_pending(
        &self,
        pending: Vec<WindowRow>,
        counts: &mut Counts,
    ) -> Result<ControlFlow<RunOutcome>, SyncError> {
        let (cx, shop, stream, now) = (self.cx, self.shop, self.stream, self.now);
        let width = self.cfg.window.as_millis() as i64;
        // Planned under a wider window setting (lowered after a 300019), or fallen past the
        // platform's horizon: sent as stored they would be refused at every run. Planned
        // again from the checkpoint, which no unfinished window is behind.
        if let Some(stale) = pending
            .iter()
            .find(|w| !w.done && (w.end_ms - w.begin_ms > width || w.begin_ms < now - HORIZON_MS))
        {
            warn!(shop, stream = stream.as_str(), begin = %format_ms(stale.begin_ms), stored_minutes = (stale.end_ms - stale.begin_ms) / 60_000, window_minutes = width / 60_000, "windows planned earlier no longer fit the configured window or the horizon; planning them again");
            cx.store.drop_windows(shop, stream).await?;
            return Ok(ControlFlow::Continue(()));
        }
        if pending.iter().all(|w| w.done) {
            // All read; the checkpoint has yet to move over them.
            cx.store
                .advance_windows(shop, stream, cx.clock.now_ms())
                .await?;
            if !cx.store.windows(shop, stream).await?.is_empty() {
                return Err(SyncError::Protocol(format!(
                    "{} windows finished but the checkpoint cannot move over them",
                    stream.as_str()
                )));
            }
            return Ok(ControlFlow::Continue(()));
        }
        // Windows left by a stop or a crash resume; more are planned after them.
        let frontier = pending.iter().map(|w| w.end_ms).max().unwrap_or(now);
        let planner =
            (cx.config.sync.concurrency > 1).then(|| self.planner(frontier).after(frontier));
        self.side_by_side(pending, planner, frontier, counts).await
    }

    /// Reads on from the checkpoint: several windows side by side, or one alone.
    async fn read_from_checkpoint(
        &self,
        counts: &mut Counts,
    ) -> Result<ControlFlow<RunOutcome>, SyncError> {
        let (cx, shop, stream, now) = (self.cx, self.shop, self.stream, self.now);
        let mut state = cx
            .store
            .load_state(shop, stream)
            .await?
            .unwrap_or_else(|| StreamState::new(shop, stream));
        // Several windows to read (a backfill, a long outage) and no single one in progress:
        // read them side by side, planned as readers free up. One window that reaches
        // `now − settle` (caught-up polling) is read alone.
        if state.window_begin_ms.is_none()
            && cx.config.sync.concurrency > 1
            && let Some(first) = self.plan(&state)
            && first.end_ms < now - self.cfg.settle.as_millis() as i64
        {
            let planner = self.planner(first.begin_ms);
            let pending = Vec::new();
            return self
                .side_by_side(pending, Some(planner), first.begin_ms, counts)
                .await;
        }
        let Some((window, cursor)) = self.window_to_read(&state) else {
            return Ok(ControlFlow::Break(RunOutcome::CaughtUp));
        };
        if window.end_ms <= window.begin_ms {
            return Ok(ControlFlow::Break(RunOutcome::CaughtUp));
        }
        self.progress.window(
            shop,
            stream,
            window.begin_ms,
            window.end_ms,
            self.backfill_from.min(window.begin_ms),
            now,
        );
        state.window_begin_ms = Some(window.begin_ms);
        state.window_end_ms = Some(window.end_ms);
        let mut sink = LiveSink { state: &mut state };
        let (progress, cancel) = (self.progress, self.cancel);
        let read = read_window(
            cx, shop, stream, window, cursor, &mut sink, progress, cancel, counts,
        )
        .await?;
        Ok(read_or_stopped(read))
    }

    /// The window to read alone and the cursor to read it from: the stream's unfinished one,
    /// or the next one planned. `None` when caught up.
    fn window_to_read(&self, state: &StreamState) -> Option<(Window, String)> {
        let (shop, stream, now) = (self.shop, self.stream, self.now);
        let width = self.cfg.window.as_millis() as i64;
        Some(match (state.window_begin_ms, state.window_end_ms) {
            // A window stored under a wider setting (the platform refused it, 300019, and the
            // window was lowered) is read again from its start at the width in force: sent as
            // stored, it would be refused again at every run.
            (Some(b), Some(e)) if b >= now - HORIZON_MS && e - b > width => {
                warn!(shop, stream = stream.as_str(), begin = %format_ms(b), stored_minutes = (e - b) / 60_000, window_minutes = width / 60_000, "the unfinished window is wider than the configured window; reading it again at the configured width");
                (
                    Window {
                        begin_ms: b,
                        end_ms: b + width,
                    },
                    String::new(),
                )
            }
            // A window older than the horizon can no longer be read: plan afresh.
            (Some(b), Some(e)) if b >= now - HORIZON_MS => (
                Window {
                    begin_ms: b,
                    end_ms: e,
                },
                state.cursor.clone().unwrap_or_default(),
            ),
            (Some(b), Some(_)) => {
                warn!(shop, stream = stream.as_str(), begin = %format_ms(b), "an unfinished window fell past the 90-day horizon; starting over at the horizon");
                (
                    self.plan(state).unwrap_or(Window {
                        begin_ms: now - HORIZON_MS,
                        end_ms: now - HORIZON_MS,
                    }),
                    String::new(),
                )
            }
            _ => (self.plan(state)?, String::new()),
        })
    }

    /// Reads `windows` and those `planner` plans side by side, the progress shown from
    /// `first_begin` (or the backfill's start, when earlier).
    async fn side_by_side(
        &self,
        windows: Vec<WindowRow>,
        planner: Option<Planner>,
        first_begin: i64,
        counts: &mut Counts,
    ) -> Result<ControlFlow<RunOutcome>, SyncError> {
        let span = (self.backfill_from.min(first_begin), self.now);
        let (cx, shop, stream) = (self.cx, self.shop, self.stream);
        let (progress, cancel) = (self.progress, self.cancel);
        let read = side_by_side(
            cx, shop, stream, windows, planner, span, progress, cancel, counts,
        )
        .await?;
        Ok(read_or_stopped(read))
    }

    /// The planner of the windows from `first_begin` to `now − settle`.
    fn planner(&self, first_begin: i64) -> Planner {
        let cfg = &self.cfg;
        Planner::new(
            first_begin,
            self.now - cfg.settle.as_millis() as i64,
            cfg.lookback.as_millis() as i64,
            cfg.window.as_millis() as i64,
            cfg.page_size,
            self.cx.config.sync.concurrency,
        )
    }

    fn plan(&self, state: &StreamState) -> Option<Window> {
        let cfg = &self.cfg;
        plan_window(
            state.checkpoint_ms,
            self.now,
            self.cx.config.sync.backfill_days,
            cfg.window,
            cfg.lookback,
            cfg.settle,
        )
    }
}

/// Goes on after windows read to their end; ends the run when they were stopped.
fn read_or_stopped(read: bool) -> ControlFlow<RunOutcome> {
    if read {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(RunOutcome::Stopped)
    }
}
