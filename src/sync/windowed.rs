//! The time-windowed pollers (orders, refunds): window after window from the checkpoint, page
//! after page inside a window, each page committed with the next cursor; at `nomore` the
//! checkpoint moves to the window's end in that same transaction.

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::planner::Planner;
use super::window::{HORIZON_MS, Window, plan_window};
use super::{Counts, RunOutcome, SyncContext, SyncError, SyncProgress};
use crate::clock::format_ms;
use crate::store::{Stream, StreamState};

mod pages;
mod side_by_side;
mod sinks;
mod writer;

pub(super) use pages::read_window;
use side_by_side::side_by_side;
use sinks::LiveSink;
pub(super) use sinks::ResyncSink;

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
    loop {
        if cancel.is_cancelled() {
            return Ok(RunOutcome::Stopped);
        }
        // Windows read side by side (planned below, or left by a stop or a crash): finish them
        // first, each from its own cursor.
        let pending = cx.store.windows(shop, stream).await?;
        let width = cfg.window.as_millis() as i64;
        // Planned under a wider window setting (lowered after a 300019), or fallen past the
        // platform's horizon: sent as stored they would be refused at every run. Planned
        // again from the checkpoint, which no unfinished window is behind.
        if let Some(stale) = pending
            .iter()
            .find(|w| !w.done && (w.end_ms - w.begin_ms > width || w.begin_ms < now - HORIZON_MS))
        {
            warn!(shop, stream = stream.as_str(), begin = %format_ms(stale.begin_ms), stored_minutes = (stale.end_ms - stale.begin_ms) / 60_000, window_minutes = width / 60_000, "windows planned earlier no longer fit the configured window or the horizon; planning them again");
            cx.store.drop_windows(shop, stream).await?;
            continue;
        }
        if !pending.is_empty() {
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
                continue;
            }
            // Windows left by a stop or a crash resume; more are planned after them.
            let frontier = pending.iter().map(|w| w.end_ms).max().unwrap_or(now);
            let planner = (cx.config.sync.concurrency > 1)
                .then(|| planner_for(cx, &cfg, frontier, now).after(frontier));
            let span = (backfill_from.min(frontier), now);
            if !side_by_side(
                cx, shop, stream, pending, planner, span, progress, cancel, counts,
            )
            .await?
            {
                return Ok(RunOutcome::Stopped);
            }
            continue;
        }
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
            && let Some(first) = plan(&state, now, cx, &cfg)
            && first.end_ms < now - cfg.settle.as_millis() as i64
        {
            let planner = planner_for(cx, &cfg, first.begin_ms, now);
            let span = (backfill_from.min(first.begin_ms), now);
            let pending = Vec::new();
            if !side_by_side(
                cx,
                shop,
                stream,
                pending,
                Some(planner),
                span,
                progress,
                cancel,
                counts,
            )
            .await?
            {
                return Ok(RunOutcome::Stopped);
            }
            continue;
        }
        let (window, cursor) = match (state.window_begin_ms, state.window_end_ms) {
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
                    plan(&state, now, cx, &cfg).unwrap_or(Window {
                        begin_ms: now - HORIZON_MS,
                        end_ms: now - HORIZON_MS,
                    }),
                    String::new(),
                )
            }
            _ => match plan(&state, now, cx, &cfg) {
                Some(w) => (w, String::new()),
                None => return Ok(RunOutcome::CaughtUp),
            },
        };
        if window.end_ms <= window.begin_ms {
            return Ok(RunOutcome::CaughtUp);
        }
        progress.window(
            shop,
            stream,
            window.begin_ms,
            window.end_ms,
            backfill_from.min(window.begin_ms),
            now,
        );
        state.window_begin_ms = Some(window.begin_ms);
        state.window_end_ms = Some(window.end_ms);
        let mut sink = LiveSink { state: &mut state };
        if !read_window(
            cx, shop, stream, window, cursor, &mut sink, progress, cancel, counts,
        )
        .await?
        {
            return Ok(RunOutcome::Stopped);
        }
    }
}

/// The planner of the windows from `first_begin` to `now − settle`.
fn planner_for(
    cx: &SyncContext,
    cfg: &crate::config::StreamConfig,
    first_begin: i64,
    now: i64,
) -> Planner {
    Planner::new(
        first_begin,
        now - cfg.settle.as_millis() as i64,
        cfg.lookback.as_millis() as i64,
        cfg.window.as_millis() as i64,
        cfg.page_size,
        cx.config.sync.concurrency,
    )
}

fn plan(
    state: &StreamState,
    now: i64,
    cx: &SyncContext,
    cfg: &crate::config::StreamConfig,
) -> Option<Window> {
    plan_window(
        state.checkpoint_ms,
        now,
        cx.config.sync.backfill_days,
        cfg.window,
        cfg.lookback,
        cfg.settle,
    )
}
