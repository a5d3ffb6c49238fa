//! The windows of one stream read side by side (`sync_windows`): each keeps its own cursor,
//! committed with its page and records (I3); the stream's checkpoint moves to the end of the
//! longest run of finished windows from the first, never ahead of committed rows.

use super::db::{Tx, Val};
use super::quarantine::{quarantine_in, release_in};
use super::records::{write_orders_of, write_refunds_of};
use super::state::{load_state_in, write_state};
use super::{PageOutcome, Source, Store, StoreError, Stream, StreamState};
use crate::api::records::{Order, Refund, Rejected};

/// One window of a stream being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    pub begin_ms: i64,
    pub end_ms: i64,
    /// Where its next page starts; `None` before its first page.
    pub cursor: Option<String>,
    /// Its last page is committed.
    pub done: bool,
}

/// A page of one window: its records, the elements that could not be read, and the cursor of
/// the next page (`None`: the window's last page).
#[derive(Debug, Clone, Copy)]
pub struct WindowPage<'a> {
    pub begin_ms: i64,
    pub orders: &'a [Order],
    pub refunds: &'a [Refund],
    pub rejected: &'a [Rejected],
    pub next_cursor: Option<&'a str>,
}

const SELECT_WINDOWS: &str = "SELECT begin_ms, end_ms, cursor, done FROM sync_windows \
     WHERE shop_id = $1 AND stream = $2 ORDER BY begin_ms";

type StoredWindow = (i64, i64, Option<String>, i64);

fn window_rows(rows: Vec<StoredWindow>) -> Vec<WindowRow> {
    rows.into_iter()
        .map(|(begin_ms, end_ms, cursor, done)| WindowRow {
            begin_ms,
            end_ms,
            cursor,
            done: done != 0,
        })
        .collect()
}

async fn rows_in(tx: &mut Tx, shop_id: &str, stream: Stream) -> Result<Vec<WindowRow>, StoreError> {
    let vals = [Val::from(shop_id), Val::from(stream.as_str())];
    let rows = tx
        .fetch_all("reading a stream's windows", SELECT_WINDOWS, &vals)
        .await?;
    Ok(window_rows(rows))
}

impl Store {
    /// The stream's windows being read, by start.
    pub async fn windows(
        &self,
        shop_id: &str,
        stream: Stream,
    ) -> Result<Vec<WindowRow>, StoreError> {
        let vals = [Val::from(shop_id), Val::from(stream.as_str())];
        let rows = self
            .pool
            .fetch_all("reading a stream's windows", SELECT_WINDOWS, &vals)
            .await?;
        Ok(window_rows(rows))
    }

    /// Records the windows a stream is about to read side by side (none may be stored yet).
    pub async fn plan_windows(
        &self,
        shop_id: &str,
        stream: Stream,
        windows: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        let op = "planning a stream's windows";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, stream).await?;
        plan_in(&mut tx, shop_id, stream, windows).await?;
        tx.commit(op).await
    }

    /// Moves the checkpoint over the finished windows from the first and drops them (what each
    /// window's last page does; also run after the windows of a batch have finished, since two
    /// last pages committed at the same moment on Postgres may each not see the other's).
    pub async fn advance_windows(
        &self,
        shop_id: &str,
        stream: Stream,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let op = "moving the checkpoint over finished windows";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, stream).await?;
        let moved = advance_in(&mut tx, shop_id, stream, now_ms).await?;
        tx.commit(op).await?;
        Ok(moved)
    }

    /// Shares out the unfinished window starting at `begin_ms` into `pieces` (see the
    /// planner's split), as [`Store::commit_window_pages`] does with its `splits`.
    pub async fn split_window(
        &self,
        shop_id: &str,
        stream: Stream,
        begin_ms: i64,
        pieces: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        let op = "sharing out a window";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, stream).await?;
        split_in(&mut tx, shop_id, stream, begin_ms, pieces).await?;
        tx.commit(op).await
    }

    /// Forgets the stream's windows (to plan them again from the checkpoint, which none of
    /// them is behind: what they committed stays, and is read again).
    pub async fn drop_windows(&self, shop_id: &str, stream: Stream) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM sync_windows WHERE shop_id = $1 AND stream = $2";
        let op = "dropping a stream's windows";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop_id, stream).await?;
        tx.execute(op, SQL, &[Val::from(shop_id), Val::from(stream.as_str())])
            .await?;
        tx.commit(op).await
    }

    /// Commits one page of a window: its records, its unreadable elements in quarantine and the
    /// window's cursor (or `done`), in one transaction (I3). The window's last page also moves
    /// the stream's checkpoint over every finished window from the first, in the same
    /// transaction, and returns the new checkpoint when it moved.
    pub async fn commit_window_page(
        &self,
        shop_id: &str,
        stream: Stream,
        page: WindowPage<'_>,
        now_ms: i64,
    ) -> Result<(PageOutcome, Option<i64>), StoreError> {
        self.commit_window_pages(shop_id, stream, &[], &[page], &[], now_ms)
            .await
    }

    /// Records the windows `planned` (as [`Store::plan_windows`]) and commits several pages of
    /// the stream's windows, in one transaction, as [`Store::commit_window_page`] commits one:
    /// every page's records, unreadable elements and its window's cursor. The pages of one
    /// window come in the order they were read (the last one's cursor is the one kept). Records
    /// of several pages are written in one statement per bind limit, newest version per key.
    ///
    /// Then, in the same transaction, each of `splits` — an unfinished window (by its start)
    /// and the pieces it is shared out into (see the planner's split) — takes effect: the
    /// first piece starts where the window starts and takes its place, read again from its
    /// start; the others are recorded after it. What the window committed stays (its pieces
    /// read it again). The pieces must cover the window from its start to its end, each
    /// starting no later than the one before it ends.
    pub async fn commit_window_pages(
        &self,
        shop_id: &str,
        stream: Stream,
        planned: &[(i64, i64)],
        pages: &[WindowPage<'_>],
        splits: &[(i64, Vec<(i64, i64)>)],
        now_ms: i64,
    ) -> Result<(PageOutcome, Option<i64>), StoreError> {
        let open = self.begin_window_pages(shop_id, stream).await?;
        let written = self
            .write_window_pages(open, shop_id, stream, planned, pages, now_ms)
            .await?;
        self.finish_window_pages(written, shop_id, stream, pages, splits, now_ms)
            .await
    }

    /// Opens the transaction of a batch of the stream's window pages (see
    /// [`Store::write_window_pages`]) and checks the stream's lease. A writer opens its
    /// batches' transactions one after the other, in order: a batch then never waits for a
    /// connection a later batch of the same writer holds.
    pub async fn begin_window_pages(
        &self,
        shop_id: &str,
        stream: Stream,
    ) -> Result<OpenPages, StoreError> {
        let mut tx = self.pool.write_tx(COMMITTING_PAGES).await?;
        self.check_fence(&mut tx, shop_id, stream).await?;
        Ok(OpenPages(tx))
    }

    /// The first half of [`Store::commit_window_pages`]: in the transaction `open` (from
    /// [`Store::begin_window_pages`]), left open, records the windows `planned` and writes the
    /// pages' records and unreadable elements. Nothing is committed until
    /// [`Store::finish_window_pages`] has moved the windows' cursors in the same transaction;
    /// dropped, it rolls back. A writer may write several batches' records side by side and
    /// finish each once the one before it has committed (the cursors of a window's later pages
    /// must never be committed before its earlier pages' rows). On Postgres the transactions
    /// then run side by side, and two that write the same row wait for each other: a writer
    /// keeps such batches apart. On SQLite each transaction waits for the one before to commit.
    pub async fn write_window_pages(
        &self,
        open: OpenPages,
        shop_id: &str,
        stream: Stream,
        planned: &[(i64, i64)],
        pages: &[WindowPage<'_>],
        now_ms: i64,
    ) -> Result<WrittenPages, StoreError> {
        let OpenPages(mut tx) = open;
        plan_in(&mut tx, shop_id, stream, planned).await?;
        let orders: Vec<&[Order]> = pages.iter().map(|p| p.orders).collect();
        let refunds: Vec<&[Refund]> = pages.iter().map(|p| p.refunds).collect();
        let mut outcome = write_orders_of(&mut tx, shop_id, &orders, Source::Poll, now_ms).await?;
        outcome += write_refunds_of(&mut tx, shop_id, &refunds, Source::Poll, now_ms).await?;
        for page in pages {
            quarantine_in(&mut tx, shop_id, stream, page.rejected, now_ms).await?;
        }
        match stream {
            Stream::Refunds => {
                let ids = pages.iter().flat_map(|p| p.refunds).map(|r| r.refund_id);
                release_in(&mut tx, shop_id, stream, ids).await?;
            }
            _ => {
                let ids = pages.iter().flat_map(|p| p.orders).map(|o| o.oid);
                release_in(&mut tx, shop_id, stream, ids).await?;
            }
        }
        Ok(WrittenPages { tx, outcome })
    }

    /// The second half of [`Store::commit_window_pages`]: moves each window's cursor to after
    /// its last page in `pages` (the same pages `written` wrote), the checkpoint over finished
    /// windows, applies the `splits`, and commits.
    pub async fn finish_window_pages(
        &self,
        written: WrittenPages,
        shop_id: &str,
        stream: Stream,
        pages: &[WindowPage<'_>],
        splits: &[(i64, Vec<(i64, i64)>)],
        now_ms: i64,
    ) -> Result<(PageOutcome, Option<i64>), StoreError> {
        const CURSOR: &str = "UPDATE sync_windows SET cursor = $4, done = $5 \
             WHERE shop_id = $1 AND stream = $2 AND begin_ms = $3";
        let op = COMMITTING_PAGES;
        let WrittenPages { mut tx, outcome } = written;
        // Each window's position after its last page here.
        let mut last_of_window: Vec<&WindowPage<'_>> = Vec::new();
        for page in pages {
            match last_of_window
                .iter_mut()
                .find(|p| p.begin_ms == page.begin_ms)
            {
                Some(kept) => *kept = page,
                None => last_of_window.push(page),
            }
        }
        for page in &last_of_window {
            let vals = [
                Val::from(shop_id),
                Val::from(stream.as_str()),
                Val::from(page.begin_ms),
                Val::from(page.next_cursor),
                Val::from(i64::from(page.next_cursor.is_none())),
            ];
            let updated = tx.execute(op, CURSOR, &vals).await?;
            if updated != 1 {
                return Err(StoreError::Invalid(format!(
                    "{shop_id} {}: no window starting at {} is being read",
                    stream.as_str(),
                    page.begin_ms
                )));
            }
        }
        let moved = if last_of_window.iter().any(|p| p.next_cursor.is_none()) {
            advance_in(&mut tx, shop_id, stream, now_ms).await?
        } else {
            None
        };
        for (begin_ms, pieces) in splits {
            split_in(&mut tx, shop_id, stream, *begin_ms, pieces).await?;
        }
        tx.commit(op).await?;
        Ok((outcome, moved))
    }
}

const COMMITTING_PAGES: &str = "committing windows' pages";

/// The open transaction of a batch of window pages ([`Store::begin_window_pages`]).
pub struct OpenPages(Tx);

/// Pages whose records [`Store::write_window_pages`] wrote in a transaction still open, waiting
/// for [`Store::finish_window_pages`].
pub struct WrittenPages {
    tx: Tx,
    outcome: PageOutcome,
}

/// Inside `tx`: shares out the unfinished window starting at `begin_ms` into `pieces` (see
/// [`Store::commit_window_pages`]).
async fn split_in(
    tx: &mut Tx,
    shop_id: &str,
    stream: Stream,
    begin_ms: i64,
    pieces: &[(i64, i64)],
) -> Result<(), StoreError> {
    const SQL: &str = "UPDATE sync_windows SET end_ms = $4, cursor = NULL, done = 0 \
         WHERE shop_id = $1 AND stream = $2 AND begin_ms = $3 AND done = 0 AND end_ms = $5";
    let op = "sharing out a window";
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return Err(StoreError::Invalid(format!("{op}: no pieces")));
    };
    let covered = first.0 == begin_ms
        && pieces.iter().all(|(b, e)| b < e)
        && pieces
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[1].0 <= w[0].1);
    if !covered {
        return Err(StoreError::Invalid(format!(
            "{op}: the pieces {pieces:?} do not cover the window starting at {begin_ms}"
        )));
    }
    let vals = [
        Val::from(shop_id),
        Val::from(stream.as_str()),
        Val::from(begin_ms),
        Val::from(first.1),
        Val::from(last.1),
    ];
    if tx.execute(op, SQL, &vals).await? != 1 {
        return Err(StoreError::Invalid(format!(
            "{shop_id} {}: no unfinished window from {begin_ms} to {} is being read",
            stream.as_str(),
            last.1
        )));
    }
    plan_in(tx, shop_id, stream, &pieces[1..]).await
}

/// Inside `tx`: records windows about to be read.
async fn plan_in(
    tx: &mut Tx,
    shop_id: &str,
    stream: Stream,
    windows: &[(i64, i64)],
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO sync_windows (shop_id, stream, begin_ms, end_ms, cursor, \
         done) VALUES ($1, $2, $3, $4, NULL, 0)";
    for (begin, end) in windows {
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(*begin),
            Val::from(*end),
        ];
        tx.execute("planning a stream's windows", SQL, &vals)
            .await?;
    }
    Ok(())
}

/// Inside `tx`: moves the checkpoint to the end of the longest run of finished windows from the
/// first (never back), drops those windows, and returns the new checkpoint when it moved.
async fn advance_in(
    tx: &mut Tx,
    shop_id: &str,
    stream: Stream,
    now_ms: i64,
) -> Result<Option<i64>, StoreError> {
    const DROP: &str = "DELETE FROM sync_windows WHERE shop_id = $1 AND stream = $2 \
         AND begin_ms <= $3 AND done = 1";
    let rows = rows_in(tx, shop_id, stream).await?;
    let finished: Vec<&WindowRow> = rows.iter().take_while(|w| w.done).collect();
    let Some(last) = finished.last() else {
        return Ok(None);
    };
    let reached = last.end_ms;
    let last_begin = last.begin_ms;
    let mut state = load_state_in(tx, shop_id, stream)
        .await?
        .unwrap_or_else(|| StreamState::new(shop_id, stream));
    let checkpoint = state.checkpoint_ms.map_or(reached, |c| c.max(reached));
    state.checkpoint_ms = Some(checkpoint);
    write_state(tx, &state, now_ms).await?;
    let vals = [
        Val::from(shop_id),
        Val::from(stream.as_str()),
        Val::from(last_begin),
    ];
    tx.execute("dropping finished windows", DROP, &vals).await?;
    Ok(Some(checkpoint))
}
