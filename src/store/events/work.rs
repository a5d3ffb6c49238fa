//! The worker's side of the queue: claiming ready events under a lease with a fencing token, and
//! ending an attempt — its effect and the done mark in one transaction (I5), or a failure that
//! schedules the next attempt.

use super::{ClaimedEvent, EventKind, EventStatus};
use crate::api::records::{Item, Order, Refund};
use crate::store::db::{Tx, Val};
use crate::store::items::{Seen, delete_item_in, write_items};
use crate::store::records::{write_orders, write_refunds};
use crate::store::{Backend, PageOutcome, Source, Store, StoreError};

/// What the worker fetched for a group of events about one record.
#[derive(Debug, Clone, Copy)]
pub enum EventOutcome<'a> {
    Orders(&'a [Order]),
    Refunds(&'a [Refund]),
    /// A refund and the order it belongs to (a refund changes its order's refund list too).
    RefundWithOrder(&'a [Refund], &'a [Order]),
    Items(&'a [Item]),
    /// The item no longer exists upstream: it (and its SKUs) are soft-deleted.
    ItemGone(i64),
    /// Nothing to write (e.g. an event of kind other): the events are only marked done.
    Nothing,
}

/// The columns a claim returns, as [`ClaimedEvent`] reads them.
macro_rules! claim_returning {
    () => {
        " RETURNING id, fence, event_id, shop_id, kind, biz_id, event, attempts, info"
    };
}

/// Claims the `$3` ready events due first ($1: now, $2: the new lease's end): pending ones due
/// by now, and running ones whose lease has ended. Each branch walks its index in due order
/// and stops at the limit, so a claim costs the same with a backlog of a million. Pending
/// events of a shop that needs re-authorization are parked: not claimed (no call could succeed)
/// until the shop is authorized again. `$lock` is
/// Postgres' `FOR UPDATE SKIP LOCKED`; on SQLite the claim runs in a `BEGIN IMMEDIATE`
/// transaction, which no other writer interleaves with.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE events SET status = 'running', lease_until_ms = $2, fence = fence + 1, ",
            "attempts = attempts + 1 WHERE id IN (SELECT id FROM (",
            "SELECT id, due FROM (SELECT id, next_attempt_at_ms AS due FROM events ",
            "WHERE status = 'pending' AND next_attempt_at_ms <= $1 ",
            "AND NOT EXISTS (SELECT 1 FROM shops WHERE shops.shop_id = events.shop_id ",
            "AND shops.status = 'needs_reauth') ",
            "ORDER BY next_attempt_at_ms, id LIMIT $3",
            $lock,
            ") AS due_pending UNION ALL ",
            "SELECT id, due FROM (SELECT id, lease_until_ms AS due FROM events ",
            "WHERE status = 'running' AND lease_until_ms <= $1 ",
            "ORDER BY lease_until_ms, id LIMIT $3",
            $lock,
            ") AS lease_expired) AS ready ORDER BY due, id LIMIT $3)",
            claim_returning!()
        )
    };
}

/// Claims up to `$5` pending events about one record ($2: shop, $3: kind, $4: biz_id), due or
/// not ($1: the new lease's end).
macro_rules! claim_related_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE events SET status = 'running', lease_until_ms = $1, fence = fence + 1, ",
            "attempts = attempts + 1 WHERE id IN (SELECT id FROM events WHERE shop_id = $2 ",
            "AND kind = $3 AND biz_id = $4 AND status = 'pending' ORDER BY id LIMIT $5",
            $lock,
            ")",
            claim_returning!()
        )
    };
}

/// Events one done-mark statement names: its `OR` chain is parsed as a tree as deep as it is
/// long, and SQLite refuses trees deeper than 1,000.
const DONE_CHUNK: usize = 300;

/// The statement that marks `n` claimed events done ($1: now), each only if it is still
/// running under the fence given with it; returns those it marked, with their shop.
fn done_sql(n: usize) -> String {
    let pairs: Vec<String> = (0..n)
        .map(|i| format!("(id = ${} AND fence = ${})", 2 * i + 2, 2 * i + 3))
        .collect();
    format!(
        "UPDATE events SET status = 'done', done_at_ms = $1, lease_until_ms = NULL \
         WHERE status = 'running' AND ({}) RETURNING id, shop_id",
        pairs.join(" OR ")
    )
}

fn done_vals(now_ms: i64, claimed: &[(i64, i64)]) -> Vec<Val<'static>> {
    std::iter::once(Val::from(now_ms))
        .chain(
            claimed
                .iter()
                .flat_map(|&(id, fence)| [id.into(), fence.into()]),
        )
        .collect()
}

/// Marks the claimed events done inside `tx`. Fails with [`StoreError::LeaseLost`] if any of
/// them is no longer running under its fence, and with `Invalid` if one belongs to another
/// shop; the caller's transaction is then dropped, which rolls everything back.
async fn mark_done(
    tx: &mut Tx,
    shop_id: &str,
    claimed: &[(i64, i64)],
    now_ms: i64,
) -> Result<(), StoreError> {
    let op = "marking events done";
    for chunk in claimed.chunks(DONE_CHUNK) {
        let vals = done_vals(now_ms, chunk);
        let marked: Vec<(i64, Option<String>)> =
            tx.fetch_all(op, done_sql(chunk.len()), &vals).await?;
        if marked.len() != chunk.len() {
            return Err(StoreError::LeaseLost);
        }
        if let Some((id, other)) = marked.iter().find(|m| m.1.as_deref() != Some(shop_id)) {
            return Err(StoreError::Invalid(format!(
                "complete_events: event {id} belongs to shop {other:?}, not {shop_id:?}"
            )));
        }
    }
    Ok(())
}

/// Writes what the worker fetched inside `tx`, under the version guard (I4).
async fn write_outcome(
    tx: &mut Tx,
    shop_id: &str,
    outcome: EventOutcome<'_>,
    now_ms: i64,
) -> Result<PageOutcome, StoreError> {
    let source = Source::Push;
    match outcome {
        EventOutcome::Orders(orders) => write_orders(tx, shop_id, orders, source, now_ms).await,
        EventOutcome::Refunds(refunds) => write_refunds(tx, shop_id, refunds, source, now_ms).await,
        EventOutcome::RefundWithOrder(refunds, orders) => {
            let mut outcome = write_refunds(tx, shop_id, refunds, source, now_ms).await?;
            outcome += write_orders(tx, shop_id, orders, source, now_ms).await?;
            Ok(outcome)
        }
        EventOutcome::Items(items) => {
            write_items(tx, shop_id, items, source, Seen::CurrentScan, now_ms).await
        }
        EventOutcome::ItemGone(kwai_item_id) => {
            let deleted = delete_item_in(tx, shop_id, kwai_item_id, now_ms).await?;
            Ok(PageOutcome {
                received: 1,
                written: u64::from(deleted),
            })
        }
        EventOutcome::Nothing => Ok(PageOutcome::default()),
    }
}

/// The claim of [`Store::claim_events`] inside `tx`, sorted by id.
async fn claim_in(
    tx: &mut Tx,
    backend: Backend,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<ClaimedEvent>, StoreError> {
    const SQLITE: &str = claim_sql!("");
    const POSTGRES: &str = claim_sql!(" FOR UPDATE SKIP LOCKED");
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let sql = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    let vals = [
        Val::from(now_ms),
        Val::from(now_ms.saturating_add(lease_ms)),
        Val::from(limit),
    ];
    let mut claimed: Vec<ClaimedEvent> = tx.fetch_all("claiming events", sql, &vals).await?;
    claimed.sort_by_key(|e| e.id);
    Ok(claimed)
}

impl Store {
    /// Claims up to `limit` ready events — pending with `next_attempt_at_ms <= now_ms`, or
    /// running whose lease has ended — the longest due first: each becomes `running` until
    /// `now_ms + lease_ms`, with `fence + 1` and `attempts + 1`. Returned by id. Two claimers
    /// never get the same event; `unknown_shop` events are never claimed.
    pub async fn claim_events(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let op = "claiming events";
        let mut tx = self.pool.write_tx(op).await?;
        let claimed = claim_in(&mut tx, self.backend(), now_ms, lease_ms, limit).await?;
        tx.commit(op).await?;
        Ok(claimed)
    }

    /// Claims up to `limit` pending events about the same record as a claimed one, due or not,
    /// so that one fetch settles them all: call it after [`Store::claim_events`] and before
    /// fetching, then complete them together. Leases and fences as in `claim_events`.
    pub async fn claim_related_events(
        &self,
        shop_id: &str,
        kind: EventKind,
        biz_id: i64,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        const SQLITE: &str = claim_related_sql!("");
        const POSTGRES: &str = claim_related_sql!(" FOR UPDATE SKIP LOCKED");
        if limit <= 0 {
            return Ok(Vec::new());
        }
        let sql = match self.backend() {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        };
        let vals = [
            Val::from(now_ms.saturating_add(lease_ms)),
            Val::from(shop_id),
            Val::from(kind.as_str()),
            Val::from(biz_id),
            Val::from(limit),
        ];
        self.claim("claiming related events", sql, &vals).await
    }

    async fn claim(
        &self,
        op: &'static str,
        sql: &'static str,
        vals: &[Val<'_>],
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let mut tx = self.pool.write_tx(op).await?;
        let mut claimed: Vec<ClaimedEvent> = tx.fetch_all(op, sql, vals).await?;
        tx.commit(op).await?;
        claimed.sort_by_key(|e| e.id);
        Ok(claimed)
    }

    /// In ONE transaction (I5): marks every claimed `(id, fence)` done (`done_at_ms = now_ms`,
    /// lease cleared) and writes the outcome (records upserted as `source = push` under the
    /// version guard, or the item soft-deleted). If any event is no longer running under its
    /// fence — its lease ended and another worker claimed it — nothing is written and the
    /// error is [`StoreError::LeaseLost`].
    pub async fn complete_events(
        &self,
        shop_id: &str,
        claimed: &[(i64, i64)],
        outcome: EventOutcome<'_>,
        now_ms: i64,
    ) -> Result<PageOutcome, StoreError> {
        let mut claimed = claimed.to_vec();
        claimed.sort_unstable();
        claimed.dedup();
        if claimed.is_empty() {
            return Err(StoreError::Invalid("complete_events: no events".into()));
        }
        let op = "completing events";
        let mut tx = self.pool.write_tx(op).await?;
        // The done mark first: a lost lease then fails before any record is written.
        mark_done(&mut tx, shop_id, &claimed, now_ms).await?;
        let written = write_outcome(&mut tx, shop_id, outcome, now_ms).await?;
        tx.commit(op).await?;
        Ok(written)
    }

    /// [`Store::claim_events`], first marking dead, in the same transaction, the running events
    /// whose lease ended on their last allowed attempt (`attempts >= max_attempts`): the worker
    /// that claimed them stopped, crashed or hung while processing them, `max_attempts` times.
    /// Without this they would be claimed again forever. Returns how many it buried, and the
    /// claimed events.
    pub async fn bury_and_claim_events(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        max_attempts: i64,
    ) -> Result<(u64, Vec<ClaimedEvent>), StoreError> {
        const BURY: &str = "UPDATE events SET status = 'dead', lease_until_ms = NULL, \
             last_error = 'abandoned: the lease of its last attempt ended before the attempt \
             finished (the worker stopped, crashed or hung while processing it)' \
             WHERE status = 'running' AND lease_until_ms <= $1 AND attempts >= $2";
        let op = "claiming events";
        let mut tx = self.pool.write_tx(op).await?;
        let buried = tx
            .execute(op, BURY, &[Val::from(now_ms), Val::from(max_attempts)])
            .await?;
        let claimed = claim_in(&mut tx, self.backend(), now_ms, lease_ms, limit).await?;
        tx.commit(op).await?;
        Ok((buried, claimed))
    }

    /// Ends a failed attempt of a running event, if `fence` is still its fence (else returns
    /// false and changes nothing): back to `pending`, due at `retry_at_ms`, or `dead` when
    /// `retry_at_ms` is `None`; `last_error` keeps `error`. `count_attempt: false` gives the
    /// attempt back, for pauses that are not the event's fault (the daily quota).
    pub async fn fail_event(
        &self,
        id: i64,
        fence: i64,
        error: &str,
        retry_at_ms: Option<i64>,
        count_attempt: bool,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE events SET status = $3, \
             next_attempt_at_ms = COALESCE($4, next_attempt_at_ms), last_error = $5, \
             lease_until_ms = NULL, \
             attempts = CASE WHEN attempts > $6 THEN attempts - $6 ELSE 0 END \
             WHERE id = $1 AND fence = $2 AND status = 'running'";
        let status = match retry_at_ms {
            Some(_) => EventStatus::Pending,
            None => EventStatus::Dead,
        };
        let give_back: i64 = if count_attempt { 0 } else { 1 };
        let vals = [
            Val::from(id),
            Val::from(fence),
            Val::from(status.as_str()),
            Val::from(retry_at_ms),
            Val::from(error),
            Val::from(give_back),
        ];
        let op = "failing an event";
        let mut tx = self.pool.write_tx(op).await?;
        let changed = tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::NewEvent;

    #[test]
    fn the_done_mark_binds_each_placeholder_once_in_order() {
        assert_eq!(
            done_sql(2),
            "UPDATE events SET status = 'done', done_at_ms = $1, lease_until_ms = NULL \
             WHERE status = 'running' AND ((id = $2 AND fence = $3) OR (id = $4 AND fence = $5)) \
             RETURNING id, shop_id"
        );
        assert_eq!(done_vals(9, &[(1, 2), (3, 4)]).len(), 5);
    }

    fn spawn<F: std::future::Future + Send + 'static>(_: F) {}

    /// Compile-time check: the receiver and the worker run these futures on tokio tasks.
    #[allow(dead_code)]
    fn every_future_is_send(store: Store) {
        spawn(async move {
            let events: Vec<NewEvent> = Vec::new();
            let orders: Vec<Order> = Vec::new();
            let _ = store.enqueue_events(&events).await;
            let _ = store.claim_events(0, 1, 1).await;
            let _ = store
                .claim_related_events("s", EventKind::Order, 1, 0, 1, 1)
                .await;
            let shop = String::from("s");
            let _ = store
                .complete_events(&shop, &[(1, 1)], EventOutcome::Orders(&orders), 0)
                .await;
            let _ = store.fail_event(1, 1, "e", None, true).await;
            let _ = store.list_events(None, 1).await;
            let _ = store.event(1).await;
            let _ = store.retry_event(1, Some(&shop), 0).await;
            let _ = store.purge_done_events(0).await;
            let _ = store.queue_stats().await;
        });
    }
}
