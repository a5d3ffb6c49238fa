//! Where a page read goes: a sink commits it with the position after it (the live stream state
//! or a resync request's own), tried again on a passing failure and with the records the
//! database refuses set aside; a window read side by side hands it on to the writer instead.

use tracing::{debug, warn};

use super::super::window::Window;
use super::super::{SyncContext, SyncError};
use super::pages::Page;
use crate::api::records::Rejected;
use crate::store::{PageOutcome, ResyncRequest, Source, StoreError, Stream, StreamState};

/// Where a page and the position after it are committed: the live stream state, or a resync
/// request's own progress. Either way the records and the position go in one transaction (I3).
pub(in crate::sync) trait PageSink {
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

/// What became of a page handed on by [`read_window`](super::pages::read_window).
pub(in crate::sync) enum Delivered {
    /// Committed here, with what it wrote.
    Committed(PageOutcome),
    /// Queued for a writer, which commits and counts it.
    Queued,
}

/// Where [`read_window`](super::pages::read_window) hands each page it reads: a [`PageSink`] commits it at once; a
/// window read side by side queues it for the writer.
pub(in crate::sync) trait Deliver {
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
pub(super) struct LiveSink<'a> {
    pub(super) state: &'a mut StreamState,
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
pub(in crate::sync) struct ResyncSink<'a> {
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

/// Commits `page` through `sink`, tried again on a passing failure; a page the database
/// refuses (not for a passing reason) is stored record by record, the refused ones set aside
/// in quarantine, and committed without them. Returns the page as committed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn commit_page(
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
pub(super) const COMMIT_RETRIES: u32 = 3;

/// … and how long before the `attempt`th time.
pub(super) fn commit_retry_delay(attempt: u32) -> std::time::Duration {
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
