//! Reading one window page after page: each page fetched, checked against the defences and
//! handed on, until the window ends.

use std::collections::HashSet;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::super::window::Window;
use super::super::{Counts, SyncContext, SyncError, SyncProgress};
use super::sinks::{Deliver, Delivered};
use crate::api::calls::{OrderQuery, QueryType, RefundQuery};
use crate::clock::format_ms;
use crate::store::Stream;

/// The end marker of cursor paging.
const NOMORE: &str = "nomore";

/// One fetched page, whichever the stream.
pub(in crate::sync) struct Page {
    pub(super) next_cursor: String,
    pub(super) rows: usize,
    pub(super) update_times: Vec<i64>,
    pub(super) orders: Vec<crate::api::records::Order>,
    pub(super) refunds: Vec<crate::api::records::Refund>,
    /// Elements that could not be read: quarantined with the page.
    pub(super) rejected: Vec<crate::api::records::Rejected>,
}

impl Page {
    /// Whether the window ends here: `nomore`, or no record and no cursor (an empty cursor or
    /// `data: null`: how the platform answers an empty window is not documented, and either
    /// is a plausible answer).
    fn ends_window(&self) -> bool {
        self.next_cursor == NOMORE || (self.rows == 0 && self.next_cursor.trim().is_empty())
    }
}

/// Reads one window to its end, committing each page through `sink`. Returns false when
/// stopped in the middle (resumable from the committed cursor).
#[allow(clippy::too_many_arguments)]
pub(in crate::sync) async fn read_window(
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
mod tests;
