//! The item scan: items have no time filter, so the whole list is read by page number, each
//! page committed with the next page number (a page too large to read is read again in smaller
//! pages). Only after a scan that completed, items it did not see are looked up one by one
//! (page-number paging over a changing list can skip one): those the platform no longer lists,
//! or lists as deleted, get `deleted_at` (`open.item.deleted.get` confirms the deletions of the
//! last 7 days); nothing is ever hard-deleted.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Counts, RunOutcome, SyncContext, SyncError, SyncProgress};
use crate::api::records::Rejected;
use crate::store::{Source, Stream, StreamState};

/// The smallest page the item list takes (reference §10: 10–100).
const MIN_PAGE_SIZE: u32 = 10;

/// Where a scan stands: the next page at a page size. Stored as `page/size` (a bare `page` is
/// at the configured size), since a page too large to read is read again in smaller pages.
fn position(cursor: Option<&str>, configured: u32) -> (i64, u32) {
    let Some(cursor) = cursor else {
        return (1, configured);
    };
    let (page, size) = cursor.split_once('/').unwrap_or((cursor, ""));
    let page = page
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let size = size.trim().parse::<u32>().unwrap_or(configured);
    (
        page,
        size.clamp(MIN_PAGE_SIZE, configured.max(MIN_PAGE_SIZE)),
    )
}

pub(super) async fn run(
    cx: &SyncContext,
    shop: &str,
    progress: &dyn SyncProgress,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<RunOutcome, SyncError> {
    let configured = cx.config.items.page_size;
    let mut state = cx
        .store
        .load_state(shop, Stream::Items)
        .await?
        .unwrap_or_else(|| StreamState::new(shop, Stream::Items));
    let (scan_id, (mut page, mut page_size)) = match state.scan_id {
        Some(id) => (id, position(state.cursor.as_deref(), configured)),
        None => (cx.clock.now_ms(), (1, configured)),
    };
    state.scan_id = Some(scan_id);
    loop {
        if cancel.is_cancelled() {
            return Ok(RunOutcome::Stopped);
        }
        let mut fetched = match cx.client.item_page(shop, page, page_size).await {
            // Too large to read (items with long details): the same items in smaller pages.
            Err(e) if e.too_large && page_size > MIN_PAGE_SIZE => {
                let offset = (page - 1) * i64::from(page_size);
                page_size = (page_size / 2).max(MIN_PAGE_SIZE);
                page = offset / i64::from(page_size) + 1;
                warn!(shop, page, page_size, error = %e, "an item page was too large; reading smaller pages");
                continue;
            }
            other => other?,
        };
        let last =
            page >= fetched.total_page || (fetched.items.is_empty() && fetched.rejected.is_empty());
        state.cursor = Some(format!("{}/{page_size}", page + 1));
        state.updated_at_ms = cx.clock.now_ms();
        let outcome = commit_page(cx, shop, &mut fetched, scan_id, &state).await?;
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
    // The scan is complete. An item it missed may have moved between pages, or be gone: ask.
    if !finish_scan(cx, shop, scan_id, state, cancel, counts).await? {
        return Ok(RunOutcome::Stopped);
    }
    Ok(RunOutcome::CaughtUp)
}

/// Commits a page of the scan with its state; when the database refuses the page, the items
/// it cannot store fail alone (quarantined) and the rest commits.
async fn commit_page(
    cx: &SyncContext,
    shop: &str,
    fetched: &mut crate::api::records::ItemPage,
    scan_id: i64,
    state: &StreamState,
) -> Result<crate::store::PageOutcome, SyncError> {
    let now = state.updated_at_ms;
    let store = &cx.store;
    match store
        .commit_item_page(shop, &fetched.items, scan_id, state, now, &fetched.rejected)
        .await
    {
        Err(e) if e.is_refusal() => {
            warn!(shop, error = %e, "the database refused an item page; storing its items one by one to set the refused ones aside");
            set_refused_aside(cx, shop, fetched, now).await?;
            Ok(store
                .commit_item_page(shop, &fetched.items, scan_id, state, now, &fetched.rejected)
                .await?)
        }
        other => Ok(other?),
    }
}

/// Stores a refused page's items one by one: those the database refuses go to the page's
/// rejected records (quarantine), the others stay on the page.
async fn set_refused_aside(
    cx: &SyncContext,
    shop: &str,
    fetched: &mut crate::api::records::ItemPage,
    now: i64,
) -> Result<(), SyncError> {
    let mut kept = Vec::with_capacity(fetched.items.len());
    for item in std::mem::take(&mut fetched.items) {
        let one = std::slice::from_ref(&item);
        match cx.store.upsert_items(shop, one, Source::Poll, now).await {
            Ok(_) => kept.push(item),
            Err(e) if e.is_refusal() => {
                warn!(shop, item = item.kwai_item_id, error = %e, "the database refused an item; it is quarantined");
                fetched
                    .rejected
                    .push(Rejected::refused(item.kwai_item_id, &item.raw, e));
            }
            Err(e) => return Err(e.into()),
        }
    }
    fetched.items = kept;
    Ok(())
}

/// After the last page: asks about each item the scan did not see (moved between pages, or
/// gone), then closes the scan, soft-deleting what is gone. `false` when stopped first.
async fn finish_scan(
    cx: &SyncContext,
    shop: &str,
    scan_id: i64,
    mut state: StreamState,
    cancel: &CancellationToken,
    counts: &mut Counts,
) -> Result<bool, SyncError> {
    let unseen = cx.store.unseen_items(shop, scan_id).await?;
    let (mut gone, mut confirmed) = (0, 0);
    for id in &unseen {
        if cancel.is_cancelled() {
            return Ok(false);
        }
        let now = cx.clock.now_ms();
        match cx.client.item(shop, *id).await? {
            // Listed with a deleted status, it is written and soft-deleted with that status.
            Some(item) => {
                gone += usize::from(item.is_deleted());
                cx.store
                    .commit_item_page(shop, std::slice::from_ref(&item), scan_id, &state, now, &[])
                    .await?;
            }
            None => {
                gone += 1;
                confirmed += usize::from(cx.client.item_deleted(shop, *id).await?);
                counts.pages += 1;
            }
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
        confirmed_deleted = confirmed,
        deleted,
        "item scan complete"
    );
    Ok(true)
}
