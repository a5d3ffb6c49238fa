//! The item scan: items have no time filter, so the whole list is read by page number, each
//! page committed with the next page number. Only after a scan that completed, items it did not
//! see are looked up one by one (page-number paging over a changing list can skip one), and those
//! the platform no longer has get `deleted_at`; nothing is ever hard-deleted.

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Counts, RunOutcome, SyncContext, SyncError, SyncProgress};
use crate::store::{Stream, StreamState};

pub(super) async fn run(
    cx: &SyncContext,
    shop: &str,
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<RunOutcome, SyncError> {
    let page_size = cx.config.items.page_size;
    let mut state = cx
        .store
        .load_state(shop, Stream::Items)
        .await?
        .unwrap_or_else(|| StreamState::new(shop, Stream::Items));
    let (scan_id, mut page) = match state.scan_id {
        Some(id) => (
            id,
            state
                .cursor
                .as_deref()
                .and_then(|c| c.parse::<i64>().ok())
                .unwrap_or(1),
        ),
        None => (cx.clock.now_ms(), 1),
    };
    state.scan_id = Some(scan_id);
    loop {
        if cancel.is_cancelled() {
            return Ok(RunOutcome::Stopped);
        }
        let fetched = cx.client.item_page(shop, page, page_size).await?;
        let last = page >= fetched.total_page || fetched.items.is_empty();
        state.cursor = Some((page + 1).to_string());
        let now = cx.clock.now_ms();
        state.updated_at_ms = now;
        let outcome = cx
            .store
            .commit_item_page(shop, &fetched.items, scan_id, &state, now)
            .await?;
        counts.pages += 1;
        counts.received += outcome.received as u64;
        counts.written += outcome.written;
        progress.page(
            shop,
            Stream::Items,
            fetched.items.len(),
            page,
            Some(fetched.total_page.max(page)),
        );
        if last {
            break;
        }
        page += 1;
    }
    // The scan is complete. An item it missed may have moved between pages: ask for it.
    let unseen = cx.store.unseen_items(shop, scan_id).await?;
    let mut gone = 0;
    for id in &unseen {
        if cancel.is_cancelled() {
            return Ok(RunOutcome::Stopped);
        }
        let now = cx.clock.now_ms();
        match cx.client.item(shop, *id).await? {
            Some(item) => {
                cx.store
                    .commit_item_page(shop, std::slice::from_ref(&item), scan_id, &state, now)
                    .await?;
            }
            None => gone += 1,
        }
        counts.pages += 1;
    }
    let now = cx.clock.now_ms();
    state.checkpoint_ms = Some(scan_id);
    state.scan_id = None;
    state.cursor = None;
    state.updated_at_ms = now;
    let deleted = cx
        .store
        .finish_item_scan(shop, scan_id, &state, now)
        .await?;
    info!(
        shop,
        pages = counts.pages,
        unseen = unseen.len(),
        gone,
        deleted,
        "item scan complete"
    );
    Ok(RunOutcome::CaughtUp)
}
