//! Stream state (checkpoint, window, cursor, scan, errors, pauses) per (shop, stream), and the
//! run log in `sync_runs`.

use super::db::from_row;
use super::db::{Tx, Val};
use super::words::{RunEnd, RunKind};
use super::{Store, StoreError, Stream};

/// Where a stream of one shop stands. Saved with each page ([`Store::commit_order_page`] and
/// friends) or on its own ([`Store::save_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    pub shop_id: String,
    pub stream: Stream,
    /// Platform ms: everything updated before it is mirrored.
    pub checkpoint_ms: Option<i64>,
    /// The window in progress.
    pub window_begin_ms: Option<i64>,
    pub window_end_ms: Option<i64>,
    /// The next page's cursor inside the window (or the next page number of an item scan).
    pub cursor: Option<String>,
    /// The item scan in progress.
    pub scan_id: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<i64>,
    pub paused_until_ms: Option<i64>,
    /// A running row count the caller keeps (the sync engine adds each page's written rows);
    /// saved as given, and never negative (the schema refuses it).
    pub rows_total: i64,
    /// Runs in a row that ended with this same `last_error` (0 after a success).
    pub failures_in_row: i64,
    pub updated_at_ms: i64,
}

impl StreamState {
    /// The state of a stream that never ran.
    pub fn new(shop_id: &str, stream: Stream) -> Self {
        StreamState {
            shop_id: shop_id.to_string(),
            stream,
            checkpoint_ms: None,
            window_begin_ms: None,
            window_end_ms: None,
            cursor: None,
            scan_id: None,
            last_success_ms: None,
            last_error: None,
            last_error_at_ms: None,
            paused_until_ms: None,
            rows_total: 0,
            failures_in_row: 0,
            updated_at_ms: 0,
        }
    }
}

/// `SELECT <every column> FROM sync_state <tail>`.
macro_rules! select_state {
    ($tail:literal) => {
        concat!(
            "SELECT shop_id, stream, checkpoint_ms, window_begin_ms, window_end_ms, cursor, ",
            "scan_id, last_success_ms, last_error, last_error_at_ms, paused_until_ms, ",
            "rows_total, failures_in_row, updated_at_ms FROM sync_state ",
            $tail
        )
    };
}

struct StoredState {
    shop_id: String,
    stream: String,
    checkpoint_ms: Option<i64>,
    window_begin_ms: Option<i64>,
    window_end_ms: Option<i64>,
    cursor: Option<String>,
    scan_id: Option<i64>,
    last_success_ms: Option<i64>,
    last_error: Option<String>,
    last_error_at_ms: Option<i64>,
    paused_until_ms: Option<i64>,
    rows_total: i64,
    failures_in_row: i64,
    updated_at_ms: i64,
}

from_row!(StoredState {
    shop_id,
    stream,
    checkpoint_ms,
    window_begin_ms,
    window_end_ms,
    cursor,
    scan_id,
    last_success_ms,
    last_error,
    last_error_at_ms,
    paused_until_ms,
    rows_total,
    failures_in_row,
    updated_at_ms,
});

impl TryFrom<StoredState> for StreamState {
    type Error = StoreError;

    fn try_from(r: StoredState) -> Result<Self, StoreError> {
        Ok(StreamState {
            stream: r
                .stream
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("sync_state: {e}")))?,
            shop_id: r.shop_id,
            checkpoint_ms: r.checkpoint_ms,
            window_begin_ms: r.window_begin_ms,
            window_end_ms: r.window_end_ms,
            cursor: r.cursor,
            scan_id: r.scan_id,
            last_success_ms: r.last_success_ms,
            last_error: r.last_error,
            last_error_at_ms: r.last_error_at_ms,
            paused_until_ms: r.paused_until_ms,
            rows_total: r.rows_total,
            failures_in_row: r.failures_in_row,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

/// Upserts `state` inside `tx`, with `updated_at_ms` as given.
pub(crate) async fn write_state(
    tx: &mut Tx,
    state: &StreamState,
    updated_at_ms: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO sync_state (shop_id, stream, checkpoint_ms, window_begin_ms, \
         window_end_ms, cursor, scan_id, last_success_ms, last_error, last_error_at_ms, \
         paused_until_ms, rows_total, updated_at_ms, failures_in_row) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (shop_id, stream) DO UPDATE SET checkpoint_ms = excluded.checkpoint_ms, \
         window_begin_ms = excluded.window_begin_ms, window_end_ms = excluded.window_end_ms, \
         cursor = excluded.cursor, scan_id = excluded.scan_id, \
         last_success_ms = excluded.last_success_ms, last_error = excluded.last_error, \
         last_error_at_ms = excluded.last_error_at_ms, paused_until_ms = excluded.paused_until_ms, \
         rows_total = excluded.rows_total, updated_at_ms = excluded.updated_at_ms, \
         failures_in_row = excluded.failures_in_row";
    let vals = [
        Val::from(&state.shop_id),
        Val::from(state.stream.as_str()),
        Val::from(state.checkpoint_ms),
        Val::from(state.window_begin_ms),
        Val::from(state.window_end_ms),
        Val::from(&state.cursor),
        Val::from(state.scan_id),
        Val::from(state.last_success_ms),
        Val::from(&state.last_error),
        Val::from(state.last_error_at_ms),
        Val::from(state.paused_until_ms),
        Val::from(state.rows_total),
        Val::from(updated_at_ms),
        Val::from(state.failures_in_row),
    ];
    tx.execute("saving a stream state", SQL, &vals)
        .await
        .map(drop)
}

/// The stored state of one stream, read inside `tx`.
pub(crate) async fn load_state_in(
    tx: &mut Tx,
    shop_id: &str,
    stream: Stream,
) -> Result<Option<StreamState>, StoreError> {
    const SQL: &str = select_state!("WHERE shop_id = $1 AND stream = $2");
    let vals = [Val::from(shop_id), Val::from(stream.as_str())];
    let rows: Vec<StoredState> = tx.fetch_all("loading a stream state", SQL, &vals).await?;
    rows.into_iter()
        .next()
        .map(StreamState::try_from)
        .transpose()
}

/// Refuses a page commit whose state belongs to another shop or stream: the page would move
/// the wrong checkpoint.
pub(crate) fn check_state(
    state: &StreamState,
    shop_id: &str,
    stream: Stream,
) -> Result<(), StoreError> {
    if state.shop_id != shop_id || state.stream != stream {
        return Err(StoreError::Invalid(format!(
            "a {stream} page of shop {shop_id} came with the state of {} {}",
            state.shop_id, state.stream
        )));
    }
    Ok(())
}

/// How a run ended, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRun {
    pub finished_at_ms: i64,
    pub end: RunEnd,
    /// Pages committed.
    pub pages: i64,
    /// Rows written.
    pub rows: i64,
    /// Calls made to the platform's list API of the stream.
    pub calls: i64,
    pub error: Option<String>,
}

/// One row of the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub shop_id: String,
    pub stream: Stream,
    pub kind: RunKind,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// How it ended (`None` while it runs); the log's word, see [`RunEnd`].
    pub outcome: Option<String>,
    pub pages: i64,
    pub rows: i64,
    pub calls: i64,
    pub error: Option<String>,
}

from_row!(RunRow {
    id, shop_id, stream as String, kind as String, started_at_ms, finished_at_ms, outcome, pages, rows, calls, error,
});

impl Store {
    /// The stored state of one stream, if it ever ran.
    pub async fn load_state(
        &self,
        shop_id: &str,
        stream: Stream,
    ) -> Result<Option<StreamState>, StoreError> {
        const SQL: &str = select_state!("WHERE shop_id = $1 AND stream = $2");
        let rows: Vec<StoredState> = self
            .pool
            .fetch_all(
                "loading a stream state",
                SQL,
                &[Val::from(shop_id), Val::from(stream.as_str())],
            )
            .await?;
        rows.into_iter()
            .next()
            .map(StreamState::try_from)
            .transpose()
    }

    /// Saves the state on its own (errors, pauses), `updated_at_ms` included as given.
    pub async fn save_state(&self, state: &StreamState) -> Result<(), StoreError> {
        let op = "saving a stream state";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, &state.shop_id, state.stream)
            .await?;
        write_state(&mut tx, state, state.updated_at_ms).await?;
        tx.commit(op).await
    }

    /// Every stored state, by shop and stream.
    pub async fn all_states(&self) -> Result<Vec<StreamState>, StoreError> {
        const SQL: &str = select_state!("ORDER BY shop_id, stream");
        let rows: Vec<StoredState> = self
            .pool
            .fetch_all("listing stream states", SQL, &[])
            .await?;
        rows.into_iter().map(StreamState::try_from).collect()
    }

    /// Opens a run in the log; returns its id for [`Store::finish_run`].
    pub async fn start_run(
        &self,
        shop_id: &str,
        stream: Stream,
        kind: RunKind,
        started_at_ms: i64,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO sync_runs (shop_id, stream, kind, started_at_ms) \
             VALUES ($1, $2, $3, $4) RETURNING id";
        let op = "starting a run";
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(kind.as_str()),
            Val::from(started_at_ms),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        let ids: Vec<(i64,)> = tx.fetch_all(op, SQL, &vals).await?;
        tx.commit(op).await?;
        ids.first()
            .map(|r| r.0)
            .ok_or_else(|| StoreError::Corrupt("sync_runs returned no id".into()))
    }

    /// Closes a run with its outcome and counts.
    pub async fn finish_run(&self, run_id: i64, run: &FinishedRun) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sync_runs SET finished_at_ms = $2, outcome = $3, pages = $4, \
             rows = $5, calls = $6, error = $7 WHERE id = $1";
        let op = "finishing a run";
        let vals = [
            Val::from(run_id),
            Val::from(run.finished_at_ms),
            Val::from(run.end.as_str()),
            Val::from(run.pages),
            Val::from(run.rows),
            Val::from(run.calls),
            Val::from(run.error.as_deref()),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        if tx.execute(op, SQL, &vals).await? == 0 {
            return Err(StoreError::Invalid(format!("no run {run_id} to finish")));
        }
        tx.commit(op).await
    }

    /// The latest `limit` runs, newest first, of one shop or of all.
    pub async fn recent_runs(
        &self,
        shop_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, StoreError> {
        const SQL: &str = "SELECT id, shop_id, stream, kind, started_at_ms, finished_at_ms, \
             outcome, pages, rows, calls, error FROM sync_runs \
             WHERE ($1 IS NULL OR shop_id = $1) ORDER BY id DESC LIMIT $2";
        self.pool
            .fetch_all(
                "listing runs",
                SQL,
                &[Val::from(shop_id), Val::from(limit.max(0))],
            )
            .await
    }
}
