//! Resync requests: re-reads of a time range asked for by an operator (`kwaishop-sync resync`)
//! or by the daily deep reconcile. Each keeps its own window and cursor, committed with each
//! page, so it resumes across restarts and never holds back the live checkpoint. A new request
//! for a (shop, stream) that already has one waiting is merged into it.

use super::db::Val;
use super::db::from_row;
use super::quarantine::{quarantine_in, release_in};
use super::records::{write_orders, write_refunds};
use super::words::{ResyncKind, ResyncStatus};
use super::{PageOutcome, Source, Store, StoreError, Stream};
use crate::api::records::{Order, Refund, Rejected};

/// One request and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncRequest {
    pub id: i64,
    pub shop_id: String,
    pub stream: Stream,
    pub kind: ResyncKind,
    /// The range to re-read, epoch ms.
    pub since_ms: i64,
    pub until_ms: i64,
    /// The window in progress and the next page's cursor in it.
    pub window_begin_ms: Option<i64>,
    pub window_end_ms: Option<i64>,
    pub cursor: Option<String>,
    pub status: ResyncStatus,
    pub requested_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Records re-read so far.
    pub rows: i64,
    pub error: Option<String>,
}

from_row!(ResyncRequest {
    id, shop_id, stream as String, kind as String, since_ms, until_ms, window_begin_ms, window_end_ms, cursor, status as String, requested_at_ms, started_at_ms, finished_at_ms, rows, error,
});

const SELECT: &str = "SELECT id, shop_id, stream, kind, since_ms, until_ms, window_begin_ms, \
     window_end_ms, cursor, status, requested_at_ms, started_at_ms, finished_at_ms, rows, error \
     FROM resync_requests";

const UPDATE: &str = "UPDATE resync_requests SET window_begin_ms = $2, window_end_ms = $3, \
     cursor = $4, status = $5, started_at_ms = $6, finished_at_ms = $7, rows = $8, error = $9 \
     WHERE id = $1";

fn update_vals(r: &ResyncRequest) -> [Val<'_>; 9] {
    [
        Val::from(r.id),
        Val::from(r.window_begin_ms),
        Val::from(r.window_end_ms),
        Val::from(&r.cursor),
        Val::from(r.status.as_str()),
        Val::from(r.started_at_ms),
        Val::from(r.finished_at_ms),
        Val::from(r.rows),
        Val::from(&r.error),
    ]
}

impl Store {
    /// Asks for `[since_ms, until_ms]` of a stream to be re-read. A request of the same shop and
    /// stream that has not started yet absorbs it (the ranges are joined; an operator's resync
    /// outranks a reconcile). Returns the request's id and whether it was merged.
    ///
    /// Two processes asking at once may both find none waiting; the unique index on waiting
    /// requests then refuses the second insert, and the second attempt merges.
    pub async fn request_resync(
        &self,
        shop_id: &str,
        stream: Stream,
        kind: ResyncKind,
        since_ms: i64,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<(i64, bool), StoreError> {
        let request = (shop_id, stream, kind, since_ms, until_ms, now_ms);
        match self.try_request_resync(request).await {
            Err(StoreError::Query { source, .. })
                if source
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation()) =>
            {
                self.try_request_resync(request).await
            }
            other => other,
        }
    }

    async fn try_request_resync(
        &self,
        (shop_id, stream, kind, since_ms, until_ms, now_ms): (
            &str,
            Stream,
            ResyncKind,
            i64,
            i64,
            i64,
        ),
    ) -> Result<(i64, bool), StoreError> {
        let op = "requesting a resync";
        let mut tx = self.pool.write_tx(op).await?;
        let waiting: Vec<(i64,)> = tx
            .fetch_all(
                op,
                "SELECT id FROM resync_requests WHERE shop_id = $1 AND stream = $2 \
                 AND status = 'pending' ORDER BY id LIMIT 1",
                &[Val::from(shop_id), Val::from(stream.as_str())],
            )
            .await?;
        if let Some((id,)) = waiting.first() {
            const MERGE: &str = "UPDATE resync_requests SET \
                 since_ms = CASE WHEN $2 < since_ms THEN $2 ELSE since_ms END, \
                 until_ms = CASE WHEN $3 > until_ms THEN $3 ELSE until_ms END, \
                 kind = CASE WHEN $4 = 'resync' THEN 'resync' ELSE kind END WHERE id = $1";
            let vals = [
                Val::from(*id),
                Val::from(since_ms),
                Val::from(until_ms),
                Val::from(kind.as_str()),
            ];
            tx.execute(op, MERGE, &vals).await?;
            tx.commit(op).await?;
            return Ok((*id, true));
        }
        const INSERT: &str = "INSERT INTO resync_requests (shop_id, stream, kind, since_ms, \
             until_ms, requested_at_ms) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(kind.as_str()),
            Val::from(since_ms),
            Val::from(until_ms),
            Val::from(now_ms),
        ];
        let ids: Vec<(i64,)> = tx.fetch_all(op, INSERT, &vals).await?;
        tx.commit(op).await?;
        let id = ids
            .first()
            .map(|r| r.0)
            .ok_or_else(|| StoreError::Corrupt("resync_requests returned no id".into()))?;
        Ok((id, false))
    }

    /// Requests not finished yet (pending or running), oldest first.
    pub async fn open_resyncs(&self) -> Result<Vec<ResyncRequest>, StoreError> {
        const SQL: &str = concat!(
            "SELECT id, shop_id, stream, kind, since_ms, until_ms, window_begin_ms, window_end_ms, ",
            "cursor, status, requested_at_ms, started_at_ms, finished_at_ms, rows, error ",
            "FROM resync_requests WHERE status IN ('pending', 'running') ORDER BY id"
        );
        self.pool.fetch_all("listing open resyncs", SQL, &[]).await
    }

    /// The latest `limit` requests of any status, newest first.
    pub async fn recent_resyncs(&self, limit: i64) -> Result<Vec<ResyncRequest>, StoreError> {
        let sql = format!("{SELECT} ORDER BY id DESC LIMIT $1");
        self.pool
            .fetch_all("listing resyncs", sql, &[Val::from(limit.max(0))])
            .await
    }

    /// Saves a request's progress and status on its own.
    pub async fn save_resync(&self, request: &ResyncRequest) -> Result<(), StoreError> {
        let op = "saving a resync";
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, &request.shop_id, request.stream)
            .await?;
        tx.execute(op, UPDATE, &update_vals(request)).await?;
        tx.commit(op).await
    }

    /// Upserts a re-read page (orders or refunds, as `source = resync`), quarantines its
    /// `rejected` elements and saves the request's progress, in one transaction (I3 for
    /// resyncs).
    pub async fn commit_resync_page(
        &self,
        orders: &[Order],
        refunds: &[Refund],
        request: &ResyncRequest,
        now_ms: i64,
        rejected: &[Rejected],
    ) -> Result<PageOutcome, StoreError> {
        let op = "committing a resync page";
        let shop = request.shop_id.as_str();
        let mut tx = self.pool.write_tx(op).await?;
        self.check_fence(&mut tx, shop, request.stream).await?;
        let mut outcome = write_orders(&mut tx, shop, orders, Source::Resync, now_ms).await?;
        outcome += write_refunds(&mut tx, shop, refunds, Source::Resync, now_ms).await?;
        quarantine_in(&mut tx, shop, request.stream, rejected, now_ms).await?;
        let ids = orders.iter().map(|o| o.oid);
        release_in(&mut tx, shop, Stream::Orders, ids).await?;
        let ids = refunds.iter().map(|r| r.refund_id);
        release_in(&mut tx, shop, Stream::Refunds, ids).await?;
        tx.execute(op, UPDATE, &update_vals(request)).await?;
        tx.commit(op).await?;
        Ok(outcome)
    }
}
