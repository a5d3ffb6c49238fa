//! The writer of windows read side by side: the pages queued by their readers committed in
//! batches, several in flight at once, each page with its window's cursor.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::super::window::Window;
use super::super::{Counts, SyncContext, SyncError, SyncProgress};
use super::pages::Page;
use super::sinks::{COMMIT_RETRIES, PageSink, commit_page, commit_retry_delay};
use crate::clock::format_ms;
use crate::store::{PageOutcome, Source, StoreError, Stream};

mod in_flight;

use in_flight::InFlight;

/// How many records the writer commits in one transaction at most …
const BATCH_ROWS: usize = 1_000;
/// … and how long the first page of a transaction waits for more to join it: fetching does
/// not wait for commits, so fewer, larger transactions cost nothing but this delay of the
/// pages' cursors (fewer commits: less CPU, fewer fsyncs and fewer pages written twice).
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What the writer is handed, in order.
pub(super) enum ToWriter {
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
pub(super) struct Queued {
    pub(super) begin_ms: i64,
    pub(super) window: Window,
    pub(super) page: Page,
    pub(super) next: Option<String>,
    pub(super) now: i64,
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

/// Commits the queued pages: what queues up within [`BATCH_WAIT`] of the first, up to
/// [`BATCH_ROWS`] records, in one transaction — commits grow with the rate pages arrive at.
/// Up to `BATCHES_AT_ONCE` (see `in_flight`) batches are written side by side (on Postgres;
/// SQLite takes them in turn), each committing its cursors once the one before it has
/// committed; a batch that writes a record of one in flight waits for it. A batch the database
/// refuses (not for a passing reason) is committed page by page, setting aside the records it
/// refuses. On failure every window is stopped and the queue closed.
pub(super) async fn write_queued(
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
