//! Windows read side by side: up to `[sync] concurrency` at once, planned as readers free up,
//! a window far denser than planned or waiting too long shared out in pieces, each page queued
//! for the writer.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::super::planner::{Planner, density};
use super::super::{Counts, SyncContext, SyncError, SyncProgress};
use super::pages::{Page, read_window};
use super::sinks::{Deliver, Delivered};
use super::writer::{Queued, ToWriter, write_queued};
use crate::clock::format_ms;
use crate::store::{Stream, WindowRow};
use crate::sync::window::Window;

/// Reads the stream's pending windows, up to `[sync] concurrency` at once, all through the
/// client's one limiter. Fetching does not wait for commits: each page goes through a bounded
/// queue to one writer, which commits what queues up within
/// [`BATCH_WAIT`](super::writer::BATCH_WAIT) (up to [`BATCH_ROWS`](super::writer::BATCH_ROWS)
/// records) in one transaction, each page with its window's cursor; a window's last page moves
/// the checkpoint over the finished windows from the first. Returns false when stopped (every
/// unfinished window resumes from its committed cursor); the first failure, of a window or of
/// the writer, stops the others and is returned once they have stopped and the pages read are
/// committed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn side_by_side(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    windows: Vec<WindowRow>,
    mut planner: Option<Planner>,
    (from, to): (i64, i64),
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<bool, SyncError> {
    use futures_util::StreamExt as _;
    // What the progress bar shows: the span before the first window, and each window read.
    let mut done_ms = windows.iter().map(|w| w.begin_ms).min().unwrap_or(from) - from;
    let at_once = cx.config.sync.concurrency.max(1) as usize;
    let stop = cancel.child_token();
    let (queue, queued) = tokio::sync::mpsc::channel::<ToWriter>(2 * at_once);
    let mut todo: std::collections::VecDeque<_> = windows.into_iter().filter(|w| !w.done).collect();
    // The first page of each fresh window, for the planner (see `Planner::glimpsed`).
    let (glimpse, mut glimpses) = tokio::sync::mpsc::unbounded_channel::<Glimpse>();
    // Each window being read, by start (see `Planner::split` and `Planner::reread`).
    let mut reading: HashMap<i64, Reading> = HashMap::new();
    // How fast one reader reads a page, and all of them together (see `Planner::split`).
    let method = super::super::stream_method(stream);
    let pace = || {
        let answer = cx.client.answer_time(method)?;
        Some((answer, cx.client.limits().effective_qps(method)))
    };
    // A window whose call waits out a retry's delay lets another start in its place (up to
    // `at_once` more): the limiter paces them all, and the readers keep the pace.
    let waiting = std::sync::Arc::new(crate::api::retry::Waiting::default());
    let fetchers = async {
        let mut running = futures_util::stream::FuturesUnordered::new();
        let (mut failure, mut stopped) = (None, false);
        loop {
            while running.len() < at_once + waiting.now().min(at_once) && !stop.is_cancelled() {
                let w = match todo.pop_front() {
                    Some(w) => w,
                    // A window planned now is recorded by the writer, ahead of its pages
                    // in the queue (so it is stored before any later window can finish). Only
                    // the windows being read are awaited here: an await on anything else would
                    // leave them unpolled, holding what that other thing may wait for.
                    None => {
                        let Some((begin_ms, end_ms)) = planner.as_ref().and_then(|p| p.peek())
                        else {
                            break;
                        };
                        match queue.try_send(ToWriter::Plan(begin_ms, end_ms)) {
                            Ok(()) => {}
                            Err(tokio::sync::mpsc::error::TrySendError::Full(_))
                                if !running.is_empty() =>
                            {
                                break;
                            }
                            Err(_) => {
                                // Full with nothing else running (the writer is draining it),
                                // or closed (the writer failed and stopped everything).
                                let plan = ToWriter::Plan(begin_ms, end_ms);
                                if queue.send(plan).await.is_err() {
                                    break;
                                }
                            }
                        }
                        if let Some(p) = planner.as_mut() {
                            p.next_window();
                        }
                        crate::store::WindowRow {
                            begin_ms,
                            end_ms,
                            cursor: None,
                            done: false,
                        }
                    }
                };
                let (stop, queue) = (stop.clone(), queue.clone());
                // A resumed window tells nothing of its whole range's density.
                let fresh = w.cursor.is_none();
                let glimpse = (fresh && planner.is_some()).then(|| glimpse.clone());
                let split = CancellationToken::new();
                let read = Reading {
                    end_ms: w.end_ms,
                    per_ms: None,
                    split: split.clone(),
                    pieces: None,
                };
                reading.insert(w.begin_ms, read);
                running.push(waiting.watch(w.begin_ms, async move {
                    let window = Window {
                        begin_ms: w.begin_ms,
                        end_ms: w.end_ms,
                    };
                    let mut sink = QueueSink {
                        begin_ms: w.begin_ms,
                        queue,
                        stop: stop.clone(),
                        rows: 0,
                        glimpse,
                    };
                    let cursor = w.cursor.unwrap_or_default();
                    let mut unused = Counts::default();
                    // Stopped to be shared out: what it queued is committed before the split.
                    let done = tokio::select! {
                        done = read_window(
                            cx,
                            shop,
                            stream,
                            window,
                            cursor,
                            &mut sink,
                            progress,
                            &stop,
                            &mut unused,
                        ) => done,
                        () = split.cancelled() => Ok(false),
                    };
                    (done, window, fresh.then_some(sink.rows))
                }));
            }
            if todo.is_empty()
                && let Some(p) = planner.as_ref().filter(|p| p.peek().is_none())
            {
                // Until a few answers are timed, as long as the configured timeout.
                let answer = cx.client.answer_time(method);
                let answer = answer.unwrap_or(cx.config.platform.timeout);
                let busy = running.len().saturating_sub(waiting.now());
                let idle = at_once.saturating_sub(busy);
                reread_waiting((shop, stream), p, &mut reading, &waiting, (idle, answer));
            }
            progress.windows(shop, stream, done_ms, running.len(), from, to);
            let next = tokio::select! {
                next = running.next() => next,
                () = waiting.changed() => continue,
                Some(g) = glimpses.recv() => {
                    // Only fresh windows tell their first page, and only to a planner.
                    let read = reading.get_mut(&g.begin_ms).filter(|r| r.pieces.is_none());
                    if let (Some(p), Some(read)) = (planner.as_mut(), read) {
                        read.per_ms = density(g.rows, g.first_ms, g.last_ms);
                        let first = (g.first_ms, g.last_ms);
                        if let Some(pieces) = p.split((g.begin_ms, read.end_ms), g.rows, first, pace()) {
                            debug!(shop, stream = stream.as_str(), begin = %format_ms(g.begin_ms), pieces = pieces.len(), "a window holds far more than planned; sharing it out");
                            read.pieces = Some(pieces);
                            read.split.cancel();
                        }
                    }
                    if let Some(p) = planner.as_mut() {
                        p.glimpsed(g.begin_ms, g.rows, g.first_ms, g.last_ms);
                    }
                    continue;
                }
            };
            let Some((done, window, rows)) = next else {
                break;
            };
            let pieces = reading
                .remove(&window.begin_ms)
                .and_then(|fresh| fresh.pieces);
            match done {
                // Its pages queued so far go first; then it is shared out, and the pieces
                // are read before any new window.
                Ok(false) if let Some(pieces) = pieces => {
                    let split = ToWriter::Split(window.begin_ms, pieces.clone());
                    if queue.send(split).await.is_ok() {
                        for (begin_ms, end_ms) in pieces.into_iter().rev() {
                            todo.push_front(crate::store::WindowRow {
                                begin_ms,
                                end_ms,
                                cursor: None,
                                done: false,
                            });
                        }
                    }
                }
                Ok(true) => {
                    done_ms += window.end_ms - window.begin_ms;
                    if let (Some(planner), Some(rows)) = (planner.as_mut(), rows) {
                        planner.learned(window.begin_ms, window.end_ms, rows);
                    }
                }
                Ok(false) => stopped = true,
                Err(e) => {
                    failure.get_or_insert(e);
                    stop.cancel();
                }
            }
        }
        // The writer ends once every sender is gone and the queue is empty.
        drop(queue);
        (failure, stopped)
    };
    let writer = write_queued(cx, shop, stream, queued, progress, &stop, counts);
    let ((failure, stopped), written) = tokio::join!(fetchers, writer);
    // Two last pages committed at the same moment may each have left the other's window for
    // the other to move over: move over every finished window now.
    let advanced = cx
        .store
        .advance_windows(shop, stream, cx.clock.now_ms())
        .await;
    // A window that failed first is the cause; the writer's failure otherwise.
    if let Some(e) = failure {
        return Err(e);
    }
    written?;
    advanced?;
    Ok(!stopped && !stop.is_cancelled() && todo.is_empty())
}

/// Where a window read side by side hands its pages: the writer's queue.
struct QueueSink {
    begin_ms: i64,
    queue: tokio::sync::mpsc::Sender<ToWriter>,
    stop: CancellationToken,
    /// Records read in this window (a resumed one: since it resumed).
    rows: u64,
    /// Where the first page of a fresh window is told to the planner.
    glimpse: Option<tokio::sync::mpsc::UnboundedSender<Glimpse>>,
}

/// A window being read side by side: its end, the density its first page showed (a fresh
/// one's), and once it is to be shared out (its first page showed it far denser than planned,
/// or at the end of the range it waits longer than reading it again would take), the pieces
/// and what stops its reader.
struct Reading {
    end_ms: i64,
    per_ms: Option<f64>,
    split: CancellationToken,
    pieces: Option<Vec<(i64, i64)>>,
}

/// With no other window to start (the range is all planned, or the next window waits for one
/// being read to tell its density, perhaps the one waiting) and `idle` readers: each window
/// whose reader waits out a retry's delay longer than reading it again in pieces would take
/// (see `Planner::reread`; `answer`: a page's answer time), the longest wait first, is
/// stopped to be read again in pieces.
fn reread_waiting(
    (shop, stream): (&str, Stream),
    planner: &Planner,
    reading: &mut HashMap<i64, Reading>,
    waiting: &crate::api::retry::Waiting,
    (mut idle, answer): (usize, std::time::Duration),
) {
    let now = tokio::time::Instant::now();
    let mut waits: Vec<_> = reading
        .iter()
        .filter(|(_, r)| r.pieces.is_none())
        .filter_map(|(begin, _)| Some((waiting.until(*begin)?, *begin)))
        .collect();
    waits.sort_unstable_by(|a, b| b.cmp(a));
    for (until, begin) in waits {
        let Some(r) = reading.get_mut(&begin) else {
            continue;
        };
        let wait = until.saturating_duration_since(now);
        let Some(pieces) = planner.reread((begin, r.end_ms), r.per_ms, idle, wait, answer) else {
            continue;
        };
        debug!(shop, stream = stream.as_str(), begin = %format_ms(begin), pieces = pieces.len(), wait_ms = wait.as_millis() as u64, "a window waits longer than reading it again takes; reading it again in pieces");
        idle = idle.saturating_sub(pieces.len());
        r.pieces = Some(pieces);
        r.split.cancel();
    }
}

/// What the first page of a window that goes on says of its density.
struct Glimpse {
    begin_ms: i64,
    rows: usize,
    first_ms: i64,
    last_ms: i64,
}

impl Deliver for QueueSink {
    async fn deliver(
        &mut self,
        _cx: &SyncContext,
        _shop: &str,
        _stream: Stream,
        page: Page,
        next: Option<&str>,
        window: Window,
        now: i64,
    ) -> Result<Delivered, SyncError> {
        self.rows += page.rows as u64;
        if let Some(glimpse) = self.glimpse.take()
            && next.is_some()
        {
            let times = || page.update_times.iter().copied();
            if let (Some(first_ms), Some(last_ms)) = (times().min(), times().max()) {
                // The planner may be gone (the fetching ended): nothing to tell.
                let _ = glimpse.send(Glimpse {
                    begin_ms: self.begin_ms,
                    rows: page.rows,
                    first_ms,
                    last_ms,
                });
            }
        }
        let queued = Queued {
            begin_ms: self.begin_ms,
            window,
            next: next.map(str::to_string),
            page,
            now,
        };
        // A closed queue: the writer failed, and has stopped every window (`stop`) first.
        if self.queue.send(ToWriter::Page(queued)).await.is_err() {
            self.stop.cancel();
        }
        Ok(Delivered::Queued)
    }
}
