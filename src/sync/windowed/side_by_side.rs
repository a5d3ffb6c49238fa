//! Windows read side by side: up to `[sync] concurrency` at once, planned as readers free up,
//! a window far denser than planned or waiting too long shared out in pieces, each page queued
//! for the writer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Sender, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::super::planner::{Planner, density};
use super::super::{Counts, SyncContext, SyncError, SyncProgress};
use super::pages::{Page, read_window};
use super::sinks::{Deliver, Delivered};
use super::writer::{Queued, ToWriter, write_queued};
use crate::api::Method;
use crate::api::retry::Waiting;
use crate::clock::format_ms;
use crate::store::{Stream, WindowRow};
use crate::sync::window::Window;

/// Reads the stream's pending windows, up to `[sync] concurrency` at once, all through the
/// client's one limiter. Fetching does not wait for commits: each page goes through a bounded
/// queue to one writer, which commits what queues up within the writer's `BATCH_WAIT` (up to
/// `BATCH_ROWS` records) in one transaction, each page with its window's cursor; a window's
/// last page moves the checkpoint over the finished windows from the first. Returns false when
/// stopped (every unfinished window resumes from its committed cursor); the first failure, of a
/// window or of the writer, stops the others and is returned once they have stopped and the
/// pages read are committed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn side_by_side(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    windows: Vec<WindowRow>,
    planner: Option<Planner>,
    (from, to): (i64, i64),
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<bool, SyncError> {
    let at_once = cx.config.sync.concurrency.max(1) as usize;
    let stop = cancel.child_token();
    let (queue, queued) = tokio::sync::mpsc::channel::<ToWriter>(2 * at_once);
    let (glimpse, glimpses) = tokio::sync::mpsc::unbounded_channel::<Glimpse>();
    let mut fetching = Fetching {
        cx,
        shop,
        stream,
        progress,
        done_ms: windows.iter().map(|w| w.begin_ms).min().unwrap_or(from) - from,
        span: (from, to),
        at_once,
        todo: windows.into_iter().filter(|w| !w.done).collect(),
        planner,
        glimpse,
        reading: HashMap::new(),
        method: super::super::stream_method(stream),
        waiting: Arc::new(Waiting::default()),
        stop: stop.clone(),
        shared_out: VecDeque::new(),
        failure: None,
        stopped: false,
    };
    let fetchers = fetching.fetch(queue, glimpses);
    let writer = write_queued(cx, shop, stream, queued, progress, &stop, counts);
    let ((), written) = tokio::join!(fetchers, writer);
    // Two last pages committed at the same moment may each have left the other's window for
    // the other to move over: move over every finished window now.
    let advanced = cx
        .store
        .advance_windows(shop, stream, cx.clock.now_ms())
        .await;
    // A window that failed first is the cause; the writer's failure otherwise.
    if let Some(e) = fetching.failure {
        return Err(e);
    }
    written?;
    advanced?;
    Ok(!fetching.stopped && !stop.is_cancelled() && fetching.todo.is_empty())
}

/// The fetching side of [`side_by_side`]: the windows to read and those being read, and how
/// the reading ended.
struct Fetching<'a> {
    cx: &'a SyncContext,
    shop: &'a str,
    stream: Stream,
    progress: &'a dyn SyncProgress,
    /// What the progress bar shows: the span before the first window, and each window read.
    done_ms: i64,
    span: (i64, i64),
    at_once: usize,
    /// Windows to read before any new one is planned: unfinished ones, and pieces.
    todo: VecDeque<WindowRow>,
    planner: Option<Planner>,
    /// The first page of each fresh window, for the planner (see `Planner::glimpsed`).
    glimpse: UnboundedSender<Glimpse>,
    /// Each window being read, by start (see `Planner::split` and `Planner::reread`).
    reading: HashMap<i64, Reading>,
    method: Method,
    /// A window whose call waits out a retry's delay lets another start in its place (up to
    /// `at_once` more): the limiter paces them all, and the readers keep the pace.
    waiting: Arc<Waiting>,
    stop: CancellationToken,
    /// Windows stopped to be shared out whose split waits for room in the writer's queue, with
    /// their pieces, oldest first. No new window starts before they are queued.
    shared_out: VecDeque<(i64, Vec<(i64, i64)>)>,
    /// The first failure of a window.
    failure: Option<SyncError>,
    /// Whether a window was stopped before its end.
    stopped: bool,
}

/// What a reader ends with: whether its window was read to its end, the window, and for a
/// fresh one the records it read.
type ReaderEnd = (Result<bool, SyncError>, Window, Option<u64>);

impl<'a> Fetching<'a> {
    /// Starts windows as readers free up until none is left to start and every reader has
    /// ended; then closes the queue.
    async fn fetch(&mut self, queue: Sender<ToWriter>, mut glimpses: UnboundedReceiver<Glimpse>) {
        use futures_util::StreamExt as _;
        let mut running = futures_util::stream::FuturesUnordered::new();
        let at_once = self.at_once;
        loop {
            while self.shared_out.is_empty()
                && running.len() < at_once + self.waiting.now().min(at_once)
                && !self.stop.is_cancelled()
            {
                let Some(w) = self.next_window(&queue, !running.is_empty()).await else {
                    break;
                };
                running.push(self.start(w, &queue));
            }
            self.reread_if_idle(running.len());
            let (from, to) = self.span;
            let (shop, stream) = (self.shop, self.stream);
            self.progress
                .windows(shop, stream, self.done_ms, running.len(), from, to);
            // Nothing else is awaited here: a reader left unpolled meanwhile may hold what the
            // awaited thing waits for (its turn at the database's writer, to count a call).
            let next = tokio::select! {
                // With none running, only room for a split waiting is awaited.
                next = running.next(), if !running.is_empty() || self.shared_out.is_empty() => next,
                room = queue.reserve(), if !self.shared_out.is_empty() => {
                    match room {
                        Ok(room) => self.split_queued(room),
                        // The writer failed and stopped everything.
                        Err(_) => self.shared_out.clear(),
                    }
                    continue;
                }
                () = self.waiting.changed() => continue,
                Some(g) = glimpses.recv() => {
                    self.glimpsed(g);
                    continue;
                }
            };
            let Some(end) = next else {
                break;
            };
            self.ended(end);
        }
        // The writer ends once every sender is gone and the queue is empty.
        drop(queue);
    }

    /// The next window to read: the first one left, or else the next one planned. `None` when
    /// there is none to start now (`running`: whether other windows are being read).
    async fn next_window(&mut self, queue: &Sender<ToWriter>, running: bool) -> Option<WindowRow> {
        if let Some(w) = self.todo.pop_front() {
            return Some(w);
        }
        // A window planned now is recorded by the writer, ahead of its pages
        // in the queue (so it is stored before any later window can finish). Only
        // the windows being read are awaited here: an await on anything else would
        // leave them unpolled, holding what that other thing may wait for.
        let (begin_ms, end_ms) = self.planner.as_ref().and_then(|p| p.peek())?;
        match queue.try_send(ToWriter::Plan(begin_ms, end_ms)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) if running => return None,
            Err(_) => {
                // Full with nothing else running (the writer is draining it),
                // or closed (the writer failed and stopped everything).
                let plan = ToWriter::Plan(begin_ms, end_ms);
                if queue.send(plan).await.is_err() {
                    return None;
                }
            }
        }
        if let Some(p) = self.planner.as_mut() {
            p.next_window();
        }
        Some(WindowRow {
            begin_ms,
            end_ms,
            cursor: None,
            done: false,
        })
    }

    /// Starts reading `w`, its pages queued for the writer: the reader to run.
    fn start(
        &mut self,
        w: WindowRow,
        queue: &Sender<ToWriter>,
    ) -> impl Future<Output = ReaderEnd> + use<'a> {
        // A resumed window tells nothing of its whole range's density.
        let fresh = w.cursor.is_none();
        let glimpse = (fresh && self.planner.is_some()).then(|| self.glimpse.clone());
        let split = CancellationToken::new();
        let read = Reading {
            end_ms: w.end_ms,
            per_ms: None,
            split: split.clone(),
            pieces: None,
        };
        self.reading.insert(w.begin_ms, read);
        let begin_ms = w.begin_ms;
        let sink = QueueSink {
            begin_ms,
            queue: queue.clone(),
            stop: self.stop.clone(),
            rows: 0,
            glimpse,
        };
        let (cx, shop, stream, progress) = (self.cx, self.shop, self.stream, self.progress);
        let reader = sink.read(cx, shop, stream, progress, w, split);
        self.waiting.watch(begin_ms, reader)
    }

    /// With no window left to start, the windows whose reader waits longer than reading them
    /// again would take are stopped to be read again in pieces ([`reread_waiting`]).
    fn reread_if_idle(&mut self, running: usize) {
        // Pieces of a window shared out are still to come.
        if self.todo.is_empty()
            && self.shared_out.is_empty()
            && let Some(p) = self.planner.as_ref().filter(|p| p.peek().is_none())
        {
            // Until a few answers are timed, as long as the configured timeout.
            let answer = self.cx.client.answer_time(self.method);
            let answer = answer.unwrap_or(self.cx.config.platform.timeout);
            let busy = running.saturating_sub(self.waiting.now());
            let idle = self.at_once.saturating_sub(busy);
            let (shop, stream) = (self.shop, self.stream);
            reread_waiting(
                (shop, stream),
                p,
                &mut self.reading,
                &self.waiting,
                (idle, answer),
            );
        }
    }

    /// What the first page of a fresh window tells the planner: its density, and whether the
    /// window is to be shared out.
    fn glimpsed(&mut self, g: Glimpse) {
        let (shop, stream) = (self.shop, self.stream);
        // Only fresh windows tell their first page, and only to a planner.
        let read = self
            .reading
            .get_mut(&g.begin_ms)
            .filter(|r| r.pieces.is_none());
        if let (Some(p), Some(read)) = (self.planner.as_mut(), read) {
            read.per_ms = density(g.rows, g.first_ms, g.last_ms);
            let first = (g.first_ms, g.last_ms);
            let (cx, method) = (self.cx, self.method);
            if let Some(pieces) =
                p.split((g.begin_ms, read.end_ms), g.rows, first, pace(cx, method))
            {
                debug!(shop, stream = stream.as_str(), begin = %format_ms(g.begin_ms), pieces = pieces.len(), "a window holds far more than planned; sharing it out");
                read.pieces = Some(pieces);
                read.split.cancel();
            }
        }
        if let Some(p) = self.planner.as_mut() {
            p.glimpsed(g.begin_ms, g.rows, g.first_ms, g.last_ms);
        }
    }

    /// Takes in how a reader ended: shared out, read, stopped, or failed (which stops the
    /// others). It never waits: the other readers are not polled meanwhile.
    fn ended(&mut self, (done, window, rows): ReaderEnd) {
        let pieces = self
            .reading
            .remove(&window.begin_ms)
            .and_then(|fresh| fresh.pieces);
        match done {
            // Its pages queued so far go first; then it is shared out, and the pieces
            // are read before any new window.
            Ok(false) if let Some(pieces) = pieces => {
                self.shared_out.push_back((window.begin_ms, pieces));
            }
            Ok(true) => {
                self.done_ms += window.end_ms - window.begin_ms;
                if let (Some(planner), Some(rows)) = (self.planner.as_mut(), rows) {
                    planner.learned(window.begin_ms, window.end_ms, rows);
                }
            }
            Ok(false) => self.stopped = true,
            Err(e) => {
                self.failure.get_or_insert(e);
                self.stop.cancel();
            }
        }
    }

    /// Queues the oldest split waiting, in the room reserved for it; its pieces are read
    /// first of the windows left.
    fn split_queued(&mut self, room: tokio::sync::mpsc::Permit<'_, ToWriter>) {
        let Some((begin_ms, pieces)) = self.shared_out.pop_front() else {
            return;
        };
        room.send(ToWriter::Split(begin_ms, pieces.clone()));
        for (begin_ms, end_ms) in pieces.into_iter().rev() {
            self.todo.push_front(WindowRow {
                begin_ms,
                end_ms,
                cursor: None,
                done: false,
            });
        }
    }
}

/// How fast one reader reads a page, and all of them together (see `Planner::split`).
fn pace(cx: &SyncContext, method: Method) -> Option<(std::time::Duration, f64)> {
    let answer = cx.client.answer_time(method)?;
    Some((answer, cx.client.limits().effective_qps(method)))
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

impl QueueSink {
    /// Reads window `w` from its cursor, its pages queued; stopped by `split` to be shared out.
    async fn read(
        mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        w: WindowRow,
        split: CancellationToken,
    ) -> ReaderEnd {
        let window = Window {
            begin_ms: w.begin_ms,
            end_ms: w.end_ms,
        };
        let fresh = w.cursor.is_none();
        let cursor = w.cursor.unwrap_or_default();
        let stop = self.stop.clone();
        let mut unused = Counts::default();
        // Stopped to be shared out: what it queued is committed before the split.
        let done = tokio::select! {
            done = read_window(
                cx,
                shop,
                stream,
                window,
                cursor,
                &mut self,
                progress,
                &stop,
                &mut unused,
            ) => done,
            () = split.cancelled() => Ok(false),
        };
        (done, window, fresh.then_some(self.rows))
    }
}
