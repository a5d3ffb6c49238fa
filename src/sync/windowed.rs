//! The time-windowed pollers (orders, refunds): window after window from the checkpoint, page
//! after page inside a window, each page committed with the next cursor; at `nomore` the
//! checkpoint moves to the window's end in that same transaction.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

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
    let cfg = cx
        .config
        .stream(stream.as_str())
        .cloned()
        .ok_or_else(|| SyncError::Protocol(format!("no settings for stream {stream:?}")))?;
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
            if !side_by_side(cx, shop, stream, pending, progress, cancel, counts).await? {
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
        // plan them all, contiguous, and read them side by side.
        if state.window_begin_ms.is_none() && cx.config.sync.concurrency > 1 {
            let batch = plan_batch(&state, now, cx, &cfg);
            if batch.len() > 1 {
                cx.store.plan_windows(shop, stream, &batch).await?;
                continue;
            }
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

/// The windows from the next one to `now − settle`, each starting a lookback before the one
/// before ends, as a sequential backfill would read them, planned at once — and narrower than
/// the configured window when that gives fewer than `[sync] concurrency` of them, so every
/// window in flight has its own share of the range. One configured window that reaches
/// `now − settle` stays one window.
fn plan_batch(
    state: &StreamState,
    now: i64,
    cx: &SyncContext,
    cfg: &crate::config::StreamConfig,
) -> Vec<(i64, i64)> {
    let Some(first) = plan(state, now, cx, cfg) else {
        return Vec::new();
    };
    let lookback = cfg.lookback.as_millis() as i64;
    let last_end = now - cfg.settle.as_millis() as i64;
    if first.end_ms >= last_end {
        // One window covers it: caught-up polling reads one window.
        return vec![(first.begin_ms, first.end_ms)];
    }
    let at_once = i64::from(cx.config.sync.concurrency.max(1));
    // Each window overlaps the one before by the lookback; narrower than a few lookbacks, the
    // overlap would be a large part of what is read.
    let narrowest = 4 * lookback + 60_000;
    let width =
        (cfg.window.as_millis() as i64).min(((last_end - first.begin_ms) / at_once).max(narrowest));
    let first_end = (first.begin_ms + width).min(first.end_ms);
    let mut batch = vec![(first.begin_ms, first_end)];
    let mut end = first_end;
    // A window no wider than its lookback would not move (the config refuses it).
    while end < last_end && width > lookback {
        let begin = end - lookback;
        end = (begin + width).min(last_end);
        batch.push((begin, end));
    }
    batch
}

/// Reads the stream's pending windows, up to `[sync] concurrency` at once, all through the
/// client's one limiter; each commits its pages with its own cursor, and the last page of each
/// moves the checkpoint over the finished windows from the first. Returns false when stopped
/// (every unfinished window resumes from its cursor); the first failure cancels the others and
/// is returned once they have stopped.
async fn side_by_side(
    cx: &SyncContext,
    shop: &str,
    stream: Stream,
    windows: Vec<crate::store::WindowRow>,
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<bool, SyncError> {
    use futures_util::StreamExt as _;
    let at_once = cx.config.sync.concurrency.max(1) as usize;
    let stop = cancel.child_token();
    let mut todo: std::collections::VecDeque<_> = windows.into_iter().filter(|w| !w.done).collect();
    let mut running = futures_util::stream::FuturesUnordered::new();
    let (mut failure, mut stopped) = (None, false);
    loop {
        while running.len() < at_once && !stop.is_cancelled() {
            let Some(w) = todo.pop_front() else {
                break;
            };
            let stop = stop.clone();
            running.push(async move {
                let window = Window {
                    begin_ms: w.begin_ms,
                    end_ms: w.end_ms,
                };
                let mut sink = WindowSink {
                    shop: shop.to_string(),
                    stream,
                    begin_ms: w.begin_ms,
                };
                let mut own = Counts::default();
                let cursor = w.cursor.unwrap_or_default();
                let done = read_window(
                    cx, shop, stream, window, cursor, &mut sink, progress, &stop, &mut own,
                )
                .await;
                (done, own)
            });
        }
        let Some((done, own)) = running.next().await else {
            break;
        };
        counts.pages += own.pages;
        counts.received += own.received;
        counts.written += own.written;
        match done {
            Ok(true) => {}
            Ok(false) => stopped = true,
            Err(e) => {
                failure.get_or_insert(e);
                stop.cancel();
            }
        }
    }
    // Two last pages committed at the same moment may each have left the other's window for
    // the other to move over: move over every finished window now.
    let advanced = cx
        .store
        .advance_windows(shop, stream, cx.clock.now_ms())
        .await;
    if let Some(e) = failure {
        return Err(e);
    }
    advanced?;
    Ok(!stopped && !stop.is_cancelled() && todo.is_empty())
}

/// A window read side by side with others: its pages commit its own cursor.
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
    sink: &mut impl PageSink,
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<bool, SyncError> {
    let cfg = cx
        .config
        .stream(stream.as_str())
        .cloned()
        .ok_or_else(|| SyncError::Protocol(format!("no settings for stream {stream:?}")))?;
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
        let mut committed = sink.commit(cx, &page, next, window, now).await;
        // A passing failure (SQLite busy, a Postgres deadlock between two windows writing the
        // same record): the commit moved nothing, so it is tried again.
        for attempt in 1..=3u32 {
            match &committed {
                Err(e) if e.is_transient() => {
                    debug!(shop, stream = stream.as_str(), attempt, error = %e, "the page commit failed for a passing reason; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                        .await;
                    committed = sink.commit(cx, &page, next, window, now).await;
                }
                _ => break,
            }
        }
        let (page, outcome) = match committed {
            // The database refused the page (not for a passing reason): a record it cannot
            // store fails alone, set aside with the page's unreadable ones.
            Err(e) if e.is_refusal() && page.rows > 0 => {
                warn!(shop, stream = stream.as_str(), error = %e, "the database refused a page; storing its records one by one to set the refused ones aside");
                let page = set_aside_refused(cx, shop, sink.source(), page, now).await?;
                let outcome = sink.commit(cx, &page, next, window, now).await?;
                (page, outcome)
            }
            other => (page, other?),
        };
        counts.pages += 1;
        counts.received += outcome.received as u64;
        counts.written += outcome.written;
        progress.page(shop, stream, page.rows, i64::from(pages_here), None);
        debug!(
            shop,
            stream = stream.as_str(),
            rows = page.rows,
            written = outcome.written,
            last,
            "page committed"
        );
        if last {
            return Ok(true);
        }
        cursor = page.next_cursor;
    }
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
