//! The time-windowed pollers (orders, refunds): window after window from the checkpoint, page
//! after page inside a window, each page committed with the next cursor; at `nomore` the
//! checkpoint moves to the window's end in that same transaction.

use std::collections::{HashMap, HashSet};

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::planner::Planner;
use super::window::{HORIZON_MS, Window, plan_window};
use super::{Counts, RunOutcome, SyncContext, SyncError, SyncProgress};
use crate::api::calls::{OrderQuery, QueryType, RefundQuery};
use crate::api::records::Rejected;
use crate::clock::format_ms;
use crate::store::{PageOutcome, ResyncRequest, Source, StoreError, Stream, StreamState};

/// The end marker of cursor paging.
const NOMORE: &str = "nomore";

/// One fetched page, whichever the stream.
pub(super) struct Page {
    next_cursor: String,
    rows: usize,
    update_times: Vec<i64>,
    orders: Vec<crate::api::records::Order>,
    refunds: Vec<crate::api::records::Refund>,
    /// Elements that could not be read: quarantined with the page.
    rejected: Vec<crate::api::records::Rejected>,
}

impl Page {
    /// Whether the window ends here: `nomore`, or no record and no cursor (an empty cursor or
    /// `data: null`: how the platform answers an empty window is not documented, and either
    /// is a plausible answer).
    fn ends_window(&self) -> bool {
        self.next_cursor == NOMORE || (self.rows == 0 && self.next_cursor.trim().is_empty())
    }
}

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

/// Reads the stream's pending windows, up to `[sync] concurrency` at once, all through the
/// client's one limiter. Fetching does not wait for commits: each page goes through a bounded
/// queue to one writer, which commits what queues up within [`BATCH_WAIT`] (up to
/// [`BATCH_ROWS`] records) in one transaction, each page with its window's cursor; a window's
/// last page moves the checkpoint over the finished windows from the first. Returns false when
/// stopped (every unfinished window resumes from its committed cursor); the first failure, of
/// a window or of the writer, stops the others and is returned once they have stopped and the
/// pages read are committed.
#[allow(clippy::too_many_arguments)]
async fn side_by_side(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    windows: Vec<crate::store::WindowRow>,
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
    let method = super::stream_method(stream);
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
                        read.per_ms = super::planner::density(g.rows, g.first_ms, g.last_ms);
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

/// How many records the writer commits in one transaction at most …
const BATCH_ROWS: usize = 1_000;
/// … and how long the first page of a transaction waits for more to join it: fetching does
/// not wait for commits, so fewer, larger transactions cost nothing but this delay of the
/// pages' cursors (fewer commits: less CPU, fewer fsyncs and fewer pages written twice).
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What the writer is handed, in order.
enum ToWriter {
    /// A window about to be read, `[begin, end]`.
    Plan(i64, i64),
    /// A page read.
    Page(Queued),
    /// The window starting here, stopped after the pages queued before this, shared out into
    /// these pieces (the `splits` of `Store::commit_window_pages`).
    Split(i64, Vec<(i64, i64)>),
}

impl ToWriter {
    fn rows(&self) -> usize {
        match self {
            ToWriter::Plan(..) | ToWriter::Split(..) => 0,
            ToWriter::Page(q) => q.page.rows,
        }
    }
}

/// A page read by one of the windows side by side, on its way to the writer.
struct Queued {
    begin_ms: i64,
    window: Window,
    page: Page,
    next: Option<String>,
    now: i64,
}

impl Queued {
    fn as_page(&self) -> crate::store::WindowPage<'_> {
        crate::store::WindowPage {
            begin_ms: self.begin_ms,
            orders: &self.page.orders,
            refunds: &self.page.refunds,
            rejected: &self.page.rejected,
            next_cursor: self.next.as_deref(),
        }
    }
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

/// Commits the queued pages: what queues up within [`BATCH_WAIT`] of the first, up to
/// [`BATCH_ROWS`] records, in one transaction — commits grow with the rate pages arrive at.
/// Up to [`BATCHES_AT_ONCE`] batches are written side by side (on Postgres; SQLite takes them
/// in turn), each committing its cursors once the one before it has committed; a batch that
/// writes a record of one in flight waits for it. A batch the database refuses (not for a
/// passing reason) is committed page by page, setting aside the records it refuses. On failure
/// every window is stopped and the queue closed.
async fn write_queued(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    mut queued: tokio::sync::mpsc::Receiver<ToWriter>,
    progress: &dyn SyncProgress,
    stop: &CancellationToken,
    counts: &mut Counts,
) -> Result<(), SyncError> {
    let mut in_flight = InFlight::default();
    let written = async {
        while let Some(first) = queued.recv().await {
            let mut rows = first.rows();
            // A split ends a batch: it is applied after the pages before it, and before any
            // after.
            let mut split = matches!(first, ToWriter::Split(..));
            let mut items = vec![first];
            let deadline = tokio::time::Instant::now() + BATCH_WAIT;
            while rows < BATCH_ROWS && !split {
                match tokio::time::timeout_at(deadline, queued.recv()).await {
                    Ok(Some(next)) => {
                        rows += next.rows();
                        split = matches!(next, ToWriter::Split(..));
                        items.push(next);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            let batch = Batch::new(cx, items);
            let keys = batch.keys();
            while in_flight.must_wait(keys.as_ref()) {
                in_flight
                    .settle_first(cx, shop, stream, progress, counts)
                    .await?;
            }
            match cx.store.begin_window_pages(shop, stream).await {
                Ok(open) => in_flight.start(cx, shop, stream, batch, open, keys),
                // Committed alone, after those in flight, with the retries and the page-by-page
                // fallback.
                Err(_) => {
                    in_flight.settle(cx, shop, stream, progress, counts).await?;
                    commit_batch(cx, shop, stream, batch, progress, counts).await?;
                }
            }
        }
        in_flight.settle(cx, shop, stream, progress, counts).await
    }
    .await;
    if written.is_err() {
        stop.cancel();
    }
    written
}

/// How many batches one writer has written and not yet committed at most. Postgres runs their
/// statements side by side on as many connections (a batch's records take the server about
/// 30 µs each; one connection alone kept the 200,000-order backfill at 0.63 of the rate
/// limit).
const BATCHES_AT_ONCE: usize = 3;

/// The batches a writer has in flight, oldest first, each committing after the one before.
/// None in flight: every batch before has committed (or been committed again, one by one).
#[derive(Default)]
struct InFlight {
    batches: std::collections::VecDeque<Committing>,
}

impl InFlight {
    /// Whether a batch writing `keys` (`None`: rows no key set describes) must wait for the
    /// oldest in flight first: too many are in flight, or one of them writes the same rows.
    /// Two transactions writing one row wait for each other, and a wait on a later batch,
    /// which itself waits for the earlier to commit, would never end.
    fn must_wait(&self, keys: Option<&HashSet<i64>>) -> bool {
        self.batches.len() >= BATCHES_AT_ONCE
            || self.batches.iter().any(|c| match (keys, &c.keys) {
                (Some(keys), Some(theirs)) => !keys.is_disjoint(theirs),
                _ => true,
            })
    }

    /// Writes the batch in a task of its own, which commits once the batch before has.
    fn start(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        batch: Batch,
        open: crate::store::OpenPages,
        keys: Option<HashSet<i64>>,
    ) {
        let (store, shop) = (cx.store.clone(), shop.to_string());
        let before = self.batches.back_mut().and_then(|c| c.told.take());
        let (told, told_next) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let pages = batch.pages();
            let written = store
                .write_window_pages(open, &shop, stream, &batch.planned, &pages, batch.now)
                .await;
            // A batch before that did not commit leaves this one to be committed again.
            let before_committed = match before {
                Some(before) => before.await.unwrap_or(false),
                None => true,
            };
            let finished = match (before_committed, written) {
                (true, Ok(written)) => store
                    .finish_window_pages(written, &shop, stream, &pages, &batch.splits, batch.now)
                    .await
                    .map_err(Some),
                (true, Err(e)) => Err(Some(e)),
                (false, _) => Err(None),
            };
            let _ = told.send(finished.is_ok());
            drop(pages);
            (batch, finished)
        });
        self.batches.push_back(Committing {
            task,
            keys,
            told: Some(told_next),
        });
    }

    /// Waits for the oldest batch to commit. When it did not, every later one was rolled
    /// back: all of them are committed again, one by one, with [`commit_batch`].
    async fn settle_first(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        counts: &mut Counts,
    ) -> Result<(), SyncError> {
        let Some(first) = self.batches.pop_front() else {
            return Ok(());
        };
        let Err(failed) = first.settle(shop, stream, progress, counts).await else {
            return Ok(());
        };
        let mut again = vec![failed];
        while let Some(next) = self.batches.pop_front() {
            if let Err(batch) = next.settle(shop, stream, progress, counts).await {
                again.push(batch);
            }
        }
        for batch in again {
            commit_batch(cx, shop, stream, batch, progress, counts).await?;
        }
        Ok(())
    }

    /// Waits for every batch in flight.
    async fn settle(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        counts: &mut Counts,
    ) -> Result<(), SyncError> {
        while !self.batches.is_empty() {
            self.settle_first(cx, shop, stream, progress, counts)
                .await?;
        }
        Ok(())
    }
}

/// How a batch written in a task of its own ended: committed, or not (`None`: rolled back
/// because the batch before did not commit).
type Finished = Result<(PageOutcome, Option<i64>), Option<StoreError>>;

/// A batch being written and committed in a task of its own. Dropped, the task is aborted (and
/// the transaction rolled back unless it had committed).
struct Committing {
    task: tokio::task::JoinHandle<(Batch, Finished)>,
    /// The records it writes (see [`InFlight::must_wait`]).
    keys: Option<HashSet<i64>>,
    /// Told whether it committed: what the batch after it waits for (taken by that batch).
    told: Option<tokio::sync::oneshot::Receiver<bool>>,
}

impl Committing {
    /// Waits for the commit; counts the batch, or hands it back to be committed again.
    async fn settle(
        mut self,
        shop: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        counts: &mut Counts,
    ) -> Result<(), Batch> {
        let (batch, finished) = match (&mut self.task).await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        match finished {
            Ok(committed) => {
                batch.committed(shop, stream, committed, progress, counts);
                Ok(())
            }
            Err(e) => {
                if let Some(e) = e {
                    debug!(shop, stream = stream.as_str(), error = %e, "a batch's commit failed; committing it again");
                }
                Err(batch)
            }
        }
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A batch of queued pages for one transaction, with the windows planned and shared out among
/// them.
struct Batch {
    planned: Vec<(i64, i64)>,
    queued: Vec<Queued>,
    splits: Vec<(i64, Vec<(i64, i64)>)>,
    now: i64,
}

impl Batch {
    fn new(cx: &SyncContext, items: Vec<ToWriter>) -> Self {
        let (mut planned, mut splits) = (Vec::new(), Vec::new());
        let queued: Vec<Queued> = items
            .into_iter()
            .filter_map(|item| match item {
                ToWriter::Plan(begin, end) => {
                    planned.push((begin, end));
                    None
                }
                ToWriter::Page(q) => Some(q),
                // Last in its batch (`write_queued`): after the pages the window read before
                // it stopped.
                ToWriter::Split(begin, pieces) => {
                    splits.push((begin, pieces));
                    None
                }
            })
            .collect();
        let now = queued
            .iter()
            .map(|q| q.now)
            .max()
            .unwrap_or_else(|| cx.clock.now_ms());
        Batch {
            planned,
            queued,
            splits,
            now,
        }
    }

    /// The ids of the records it writes; `None` when it also quarantines elements (rows
    /// keyed otherwise).
    fn keys(&self) -> Option<HashSet<i64>> {
        if self.queued.iter().any(|q| !q.page.rejected.is_empty()) {
            return None;
        }
        let pages = self.queued.iter().map(|q| &q.page);
        let orders = pages
            .clone()
            .flat_map(|p| &p.orders)
            .flat_map(|o| std::iter::once(o.oid).chain(o.gifts.iter().map(|g| g.oid)));
        let refunds = pages.flat_map(|p| &p.refunds).map(|r| r.refund_id);
        Some(orders.chain(refunds).collect())
    }

    fn pages(&self) -> Vec<crate::store::WindowPage<'_>> {
        self.queued.iter().map(Queued::as_page).collect()
    }

    /// Counts the committed batch and shows it on the progress bar.
    fn committed(
        &self,
        shop: &str,
        stream: Stream,
        (outcome, moved): (PageOutcome, Option<i64>),
        progress: &dyn SyncProgress,
        counts: &mut Counts,
    ) {
        if let Some(checkpoint) = moved {
            debug!(shop, stream = stream.as_str(), checkpoint = %format_ms(checkpoint), "windows finished; the checkpoint moved");
        }
        counts.add(self.queued.len() as u64, outcome);
        for q in &self.queued {
            progress.page(shop, stream, q.page.rows, 0, None);
        }
    }
}

/// Commits a batch of queued pages in one transaction (tried again on a passing failure), or
/// page by page when the database refuses the batch.
async fn commit_batch(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    mut batch: Batch,
    progress: &dyn SyncProgress,
    counts: &mut Counts,
) -> Result<(), SyncError> {
    let pages = batch.pages();
    let commit = || {
        cx.store.commit_window_pages(
            shop,
            stream,
            &batch.planned,
            &pages,
            &batch.splits,
            batch.now,
        )
    };
    let mut committed = commit().await;
    for attempt in 1..=COMMIT_RETRIES {
        match &committed {
            Err(e) if e.is_transient() => {
                debug!(shop, stream = stream.as_str(), attempt, error = %e, "the batch commit failed for a passing reason; trying again");
                tokio::time::sleep(commit_retry_delay(attempt)).await;
                committed = commit().await;
            }
            _ => break,
        }
    }
    match committed {
        Ok(committed) => {
            drop(pages);
            batch.committed(shop, stream, committed, progress, counts);
            Ok(())
        }
        Err(e) if e.is_refusal() => {
            drop(pages);
            warn!(shop, stream = stream.as_str(), pages = batch.queued.len(), error = %e, "the database refused a batch of pages; committing them one by one");
            if !batch.planned.is_empty() {
                cx.store.plan_windows(shop, stream, &batch.planned).await?;
            }
            for q in std::mem::take(&mut batch.queued) {
                let mut sink = WindowSink {
                    shop: shop.to_string(),
                    stream,
                    begin_ms: q.begin_ms,
                };
                let next = q.next.as_deref();
                let (page, outcome) =
                    commit_page(cx, shop, stream, &mut sink, q.page, next, q.window, q.now).await?;
                counts.add(1, outcome);
                progress.page(shop, stream, page.rows, 0, None);
            }
            for (begin, pieces) in &batch.splits {
                cx.store.split_window(shop, stream, *begin, pieces).await?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A window read side by side with others, committed page by page (the writer's fallback when
/// the database refuses a batch): its pages commit its own cursor.
struct WindowSink {
    shop: String,
    stream: Stream,
    begin_ms: i64,
}

impl PageSink for WindowSink {
    fn source(&self) -> Source {
        Source::Poll
    }

    async fn commit(
        &mut self,
        cx: &SyncContext,
        page: &Page,
        next: Option<&str>,
        _window: Window,
        now: i64,
    ) -> Result<PageOutcome, StoreError> {
        let write = crate::store::WindowPage {
            begin_ms: self.begin_ms,
            orders: &page.orders,
            refunds: &page.refunds,
            rejected: &page.rejected,
            next_cursor: next,
        };
        let (outcome, moved) = cx
            .store
            .commit_window_page(&self.shop, self.stream, write, now)
            .await?;
        if let Some(checkpoint) = moved {
            debug!(shop = self.shop, stream = self.stream.as_str(), checkpoint = %format_ms(checkpoint), "windows finished; the checkpoint moved");
        }
        Ok(outcome)
    }
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

/// Where a page and the position after it are committed: the live stream state, or a resync
/// request's own progress. Either way the records and the position go in one transaction (I3).
pub(super) trait PageSink {
    /// How the records it writes are marked.
    fn source(&self) -> Source;

    /// Commits `page`; `next` is the cursor of the following page, `None` when the window ended.
    /// On failure nothing moved, in the database or in the sink.
    async fn commit(
        &mut self,
        cx: &SyncContext,
        page: &Page,
        next: Option<&str>,
        window: Window,
        now: i64,
    ) -> Result<PageOutcome, StoreError>;
}

/// What became of a page handed on by [`read_window`].
pub(super) enum Delivered {
    /// Committed here, with what it wrote.
    Committed(PageOutcome),
    /// Queued for a writer, which commits and counts it.
    Queued,
}

/// Where [`read_window`] hands each page it reads: a [`PageSink`] commits it at once; a
/// window read side by side queues it for the writer.
pub(super) trait Deliver {
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        page: Page,
        next: Option<&str>,
        window: Window,
        now: i64,
    ) -> Result<Delivered, SyncError>;
}

impl<S: PageSink> Deliver for S {
    async fn deliver(
        &mut self,
        cx: &SyncContext,
        shop: &str,
        stream: Stream,
        page: Page,
        next: Option<&str>,
        window: Window,
        now: i64,
    ) -> Result<Delivered, SyncError> {
        let (_, outcome) = commit_page(cx, shop, stream, self, page, next, window, now).await?;
        Ok(Delivered::Committed(outcome))
    }
}

/// The live poller's sink: the stream state, whose checkpoint moves at each window's end.
struct LiveSink<'a> {
    state: &'a mut StreamState,
}

impl PageSink for LiveSink<'_> {
    fn source(&self) -> Source {
        Source::Poll
    }

    async fn commit(
        &mut self,
        cx: &SyncContext,
        page: &Page,
        next: Option<&str>,
        window: Window,
        now: i64,
    ) -> Result<PageOutcome, StoreError> {
        let mut next_state = self.state.clone();
        let state = &mut next_state;
        match next {
            None => {
                state.checkpoint_ms = Some(
                    state
                        .checkpoint_ms
                        .map_or(window.end_ms, |c| c.max(window.end_ms)),
                );
                state.window_begin_ms = None;
                state.window_end_ms = None;
                state.cursor = None;
            }
            Some(cursor) => state.cursor = Some(cursor.to_string()),
        }
        state.updated_at_ms = now;
        state.rows_total += page.rows as i64;
        let shop = state.shop_id.clone();
        let outcome = match state.stream {
            Stream::Orders => {
                cx.store
                    .commit_order_page(
                        &shop,
                        &page.orders,
                        Source::Poll,
                        state,
                        now,
                        &page.rejected,
                    )
                    .await?
            }
            _ => {
                cx.store
                    .commit_refund_page(
                        &shop,
                        &page.refunds,
                        Source::Poll,
                        state,
                        now,
                        &page.rejected,
                    )
                    .await?
            }
        };
        *self.state = next_state;
        Ok(outcome)
    }
}

/// A resync's sink: the request's own window and cursor; the live checkpoint is not touched.
pub(super) struct ResyncSink<'a> {
    pub request: &'a mut ResyncRequest,
}

impl PageSink for ResyncSink<'_> {
    fn source(&self) -> Source {
        Source::Resync
    }

    async fn commit(
        &mut self,
        cx: &SyncContext,
        page: &Page,
        next: Option<&str>,
        window: Window,
        now: i64,
    ) -> Result<PageOutcome, StoreError> {
        let mut next_request = self.request.clone();
        let request = &mut next_request;
        match next {
            // The next window starts where this one ended.
            None => {
                request.window_begin_ms = Some(window.end_ms);
                request.window_end_ms = None;
                request.cursor = None;
            }
            Some(cursor) => request.cursor = Some(cursor.to_string()),
        }
        request.rows += page.rows as i64;
        let outcome = cx
            .store
            .commit_resync_page(&page.orders, &page.refunds, request, now, &page.rejected)
            .await?;
        *self.request = next_request;
        Ok(outcome)
    }
}

/// Reads one window to its end, committing each page through `sink`. Returns false when
/// stopped in the middle (resumable from the committed cursor).
#[allow(clippy::too_many_arguments)]
pub(super) async fn read_window(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    window: Window,
    mut cursor: String,
    sink: &mut impl Deliver,
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<bool, SyncError> {
    let cfg = cx.config.stream(stream).clone();
    let mut seen_cursors = HashSet::new();
    let mut pages_here = 0u32;
    loop {
        if cancel.is_cancelled() {
            return Ok(false);
        }
        let page = fetch(cx, shop, stream, &cfg, window, &cursor).await?;
        pages_here += 1;
        check_page(
            stream,
            window,
            &cursor,
            &page,
            &mut seen_cursors,
            pages_here,
            cx.config.sync.max_pages_per_window,
        )?;
        let last = page.ends_window();
        let next_cursor = page.next_cursor.clone();
        let next = (!last).then_some(next_cursor.as_str());
        let now = cx.clock.now_ms();
        let rows = page.rows;
        match sink
            .deliver(cx, shop, stream, page, next, window, now)
            .await?
        {
            Delivered::Committed(outcome) => {
                counts.add(1, outcome);
                progress.page(shop, stream, rows, i64::from(pages_here), None);
                debug!(
                    shop,
                    stream = stream.as_str(),
                    rows,
                    written = outcome.written,
                    last,
                    "page committed"
                );
            }
            Delivered::Queued => {}
        }
        if last {
            return Ok(true);
        }
        cursor = next_cursor;
    }
}

/// Commits `page` through `sink`, tried again on a passing failure; a page the database
/// refuses (not for a passing reason) is stored record by record, the refused ones set aside
/// in quarantine, and committed without them. Returns the page as committed.
#[allow(clippy::too_many_arguments)]
async fn commit_page(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    sink: &mut (impl PageSink + ?Sized),
    page: Page,
    next: Option<&str>,
    window: Window,
    now: i64,
) -> Result<(Page, PageOutcome), SyncError> {
    let mut committed = sink.commit(cx, &page, next, window, now).await;
    // A passing failure (SQLite busy, a Postgres deadlock between two writers of the same
    // record): the commit moved nothing, so it is tried again. (The batch's loop is its twin: a
    // helper taking the commit as an async closure cannot hold `&mut sink` and stay `Send`.)
    for attempt in 1..=COMMIT_RETRIES {
        match &committed {
            Err(e) if e.is_transient() => {
                debug!(shop, stream = stream.as_str(), attempt, error = %e, "the page commit failed for a passing reason; trying again");
                tokio::time::sleep(commit_retry_delay(attempt)).await;
                committed = sink.commit(cx, &page, next, window, now).await;
            }
            _ => break,
        }
    }
    match committed {
        // A record the database cannot store fails alone, set aside with the page's
        // unreadable ones.
        Err(e) if e.is_refusal() && page.rows > 0 => {
            warn!(shop, stream = stream.as_str(), error = %e, "the database refused a page; storing its records one by one to set the refused ones aside");
            let page = set_aside_refused(cx, shop, sink.source(), page, now).await?;
            let outcome = sink.commit(cx, &page, next, window, now).await?;
            Ok((page, outcome))
        }
        other => Ok((page, other?)),
    }
}

/// How many times a commit that failed for a passing reason is tried again …
const COMMIT_RETRIES: u32 = 3;

/// … and how long before the `attempt`th time.
fn commit_retry_delay(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis(50 * u64::from(attempt))
}

/// Stores the page's records one at a time, each in its own transaction, and moves those the
/// database refuses to the page's rejected ones; the others are committed again with the page
/// (the version guard makes that a no-op).
async fn set_aside_refused(
    cx: &SyncContext,
    shop: &str,
    source: Source,
    mut page: Page,
    now: i64,
) -> Result<Page, StoreError> {
    let mut orders = Vec::with_capacity(page.orders.len());
    for order in std::mem::take(&mut page.orders) {
        match cx
            .store
            .upsert_orders(shop, std::slice::from_ref(&order), source, now)
            .await
        {
            Ok(_) => orders.push(order),
            Err(e) if e.is_refusal() => {
                warn!(shop, oid = order.oid, error = %e, "the database refused an order; it is quarantined");
                page.rejected
                    .push(Rejected::refused(order.oid, &order.raw, e));
            }
            Err(e) => return Err(e),
        }
    }
    let mut refunds = Vec::with_capacity(page.refunds.len());
    for refund in std::mem::take(&mut page.refunds) {
        match cx
            .store
            .upsert_refunds(shop, std::slice::from_ref(&refund), source, now)
            .await
        {
            Ok(_) => refunds.push(refund),
            Err(e) if e.is_refusal() => {
                warn!(shop, refund = refund.refund_id, error = %e, "the database refused a refund; it is quarantined");
                page.rejected
                    .push(Rejected::refused(refund.refund_id, &refund.raw, e));
            }
            Err(e) => return Err(e),
        }
    }
    page.orders = orders;
    page.refunds = refunds;
    Ok(page)
}

async fn fetch(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    cfg: &crate::config::StreamConfig,
    w: Window,
    cursor: &str,
) -> Result<Page, SyncError> {
    Ok(match stream {
        Stream::Orders => {
            let q = OrderQuery {
                begin_ms: w.begin_ms,
                end_ms: w.end_ms,
                cursor: cursor.to_string(),
                page_size: cfg.page_size,
                query_type: QueryType::UpdateTime,
                sort: cfg.sort,
            };
            let p = cx.client.order_page(shop, &q).await?;
            Page {
                next_cursor: p.cursor,
                rows: p.orders.len() + p.rejected.len(),
                update_times: p.orders.iter().map(|o| o.update_time).collect(),
                orders: p.orders,
                refunds: Vec::new(),
                rejected: p.rejected,
            }
        }
        _ => {
            let q = RefundQuery {
                begin_ms: w.begin_ms,
                end_ms: w.end_ms,
                pcursor: cursor.to_string(),
                page_size: cfg.page_size,
                query_type: QueryType::UpdateTime,
                sort: cfg.sort,
            };
            let p = cx.client.refund_page(shop, &q).await?;
            Page {
                next_cursor: p.pcursor,
                rows: p.refunds.len() + p.rejected.len(),
                update_times: p.refunds.iter().map(|r| r.update_time).collect(),
                orders: Vec::new(),
                refunds: p.refunds,
                rejected: p.rejected,
            }
        }
    })
}

/// The defences of design.md: a repeated cursor, an empty page that claims more, an unexpected
/// end marker, or more pages than a window can hold stop the window (its checkpoint stays).
fn check_page(
    stream: Stream,
    window: Window,
    cursor: &str,
    page: &Page,
    seen: &mut HashSet<String>,
    pages: u32,
    max_pages: u32,
) -> Result<(), SyncError> {
    let what = format!(
        "{} window {}..{}",
        stream.as_str(),
        format_ms(window.begin_ms),
        format_ms(window.end_ms)
    );
    let next = page.next_cursor.as_str();
    let ends = page.ends_window();
    if !ends && next.trim().is_empty() {
        return Err(SyncError::Protocol(format!(
            "{what}: {} records and no cursor to go on with",
            page.rows
        )));
    }
    if next == "no_more" {
        return Err(SyncError::Protocol(format!(
            "{what}: unexpected end marker {next:?} (expected \"nomore\")"
        )));
    }
    if !ends && (next == cursor || !seen.insert(next.to_string())) {
        return Err(SyncError::Protocol(format!(
            "{what}: the cursor {next:?} repeated"
        )));
    }
    if !ends && page.rows == 0 {
        return Err(SyncError::Protocol(format!(
            "{what}: an empty page claims there is more"
        )));
    }
    check_pages(&what, pages, max_pages)?;
    if let Some(out) = page
        .update_times
        .iter()
        .find(|t| **t < window.begin_ms || **t > window.end_ms)
    {
        warn!(stream = stream.as_str(), update_time = %format_ms(*out), "a record outside its window (it changed while paging; it is kept, the version guard decides)");
    }
    let ascending = page.update_times.windows(2).all(|w| w[0] <= w[1]);
    let descending = page.update_times.windows(2).all(|w| w[0] >= w[1]);
    if !ascending && !descending {
        warn!(
            stream = stream.as_str(),
            "updateTime is not monotonic within a page"
        );
    }
    Ok(())
}

fn check_pages(what: &str, pages: u32, max_pages: u32) -> Result<(), SyncError> {
    if pages > max_pages {
        return Err(SyncError::Protocol(format!(
            "{what}: more than {max_pages} pages; stopping this window"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(next: &str, rows: usize) -> Page {
        Page {
            next_cursor: next.into(),
            rows,
            update_times: vec![5; rows],
            orders: Vec::new(),
            refunds: Vec::new(),
            rejected: Vec::new(),
        }
    }

    const W: Window = Window {
        begin_ms: 0,
        end_ms: 10,
    };

    #[tokio::test]
    async fn a_batch_waits_for_one_in_flight_that_writes_the_same_records() {
        let keys = |ids: &[i64]| Some(ids.iter().copied().collect::<HashSet<i64>>());
        // A batch in flight, never ending (aborted when dropped).
        let committing = |keys| Committing {
            task: tokio::spawn(std::future::pending()),
            keys,
            told: None,
        };
        let mut in_flight = InFlight::default();
        in_flight.batches.push_back(committing(keys(&[1, 2])));
        in_flight.batches.push_back(committing(keys(&[3])));
        assert!(!in_flight.must_wait(keys(&[4, 5]).as_ref()));
        assert!(
            in_flight.must_wait(keys(&[5, 2]).as_ref()),
            "order 2 is in flight"
        );
        assert!(in_flight.must_wait(None), "rows no key set describes");
        in_flight.batches.push_back(committing(None));
        assert!(
            in_flight.must_wait(keys(&[9]).as_ref()),
            "beside quarantined elements"
        );
        in_flight.batches.pop_back();
        in_flight.batches.push_back(committing(keys(&[7])));
        assert_eq!(in_flight.batches.len(), BATCHES_AT_ONCE);
        assert!(
            in_flight.must_wait(keys(&[9]).as_ref()),
            "as many in flight as allowed"
        );
    }

    #[test]
    fn the_defences_stop_a_window() {
        let check = |cursor: &str, p: &Page, seen: &mut HashSet<String>, pages: u32| {
            check_page(Stream::Orders, W, cursor, p, seen, pages, 100)
        };
        let mut seen = HashSet::new();
        assert!(check("", &page("5_1", 50), &mut seen, 1).is_ok());
        assert!(check("5_1", &page("5_2", 50), &mut seen, 2).is_ok());
        // The same cursor again, or the one just sent back.
        assert!(check("5_2", &page("5_1", 50), &mut seen, 3).is_err());
        assert!(check("5_3", &page("5_3", 50), &mut HashSet::new(), 1).is_err());
        // An empty page that says there is more.
        assert!(check("", &page("5_9", 0), &mut HashSet::new(), 1).is_err());
        // Records with no cursor to go on with, and an unexpected end marker.
        assert!(check("", &page("", 3), &mut HashSet::new(), 1).is_err());
        assert!(check("", &page("no_more", 3), &mut HashSet::new(), 1).is_err());
        // An empty window answered with an empty cursor (or `data: null`, read as one) ends it.
        assert!(page("", 0).ends_window() && page(" ", 0).ends_window());
        assert!(check("", &page("", 0), &mut HashSet::new(), 1).is_ok());
        assert!(!page("", 3).ends_window() && !page("5_1", 0).ends_window());
        // Too many pages for one window.
        assert!(check("", &page("5_7", 50), &mut HashSet::new(), 101).is_err());
        // The normal end, also on an empty window.
        assert!(check("", &page("nomore", 0), &mut HashSet::new(), 1).is_ok());
    }
}
