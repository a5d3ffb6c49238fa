//! The durable queue of push events. The receiver stores every decrypted message here, one
//! transaction per batch and deduplicated on the platform's `eventId`, before it acknowledges
//! (I6). The worker claims ready events with a lease and a fencing token, fetches the record
//! without holding a transaction, then writes the record and marks its events done in one
//! transaction that fails as a whole when another worker has taken the events over (I5).

mod work;

use super::db::from_row;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use super::db::{MAX_BINDS, Val, placeholders};
use super::{Store, StoreError};

pub use work::EventOutcome;

/// What a push event is about, from its event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Order,
    Refund,
    Item,
    /// Anything the worker has no record to fetch for.
    Other,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 4] = [
        EventKind::Order,
        EventKind::Refund,
        EventKind::Item,
        EventKind::Other,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Order => "order",
            EventKind::Refund => "refund",
            EventKind::Item => "item",
            EventKind::Other => "other",
        }
    }
}

/// A name that is not an [`EventKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?} (expected order, refund, item or other)")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_string()))
    }
}

impl TryFrom<String> for EventKind {
    type Error = UnknownEventKind;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Claimed by a worker until its lease ends.
    Running,
    /// Its effect is committed.
    Done,
    /// Out of attempts; an operator may retry it.
    Dead,
    /// Its shop could not be resolved; kept until an operator names the shop.
    UnknownShop,
}

impl EventStatus {
    /// Every status, in a stable order.
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Pending,
        EventStatus::Running,
        EventStatus::Done,
        EventStatus::Dead,
        EventStatus::UnknownShop,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Running => "running",
            EventStatus::Done => "done",
            EventStatus::Dead => "dead",
            EventStatus::UnknownShop => "unknown_shop",
        }
    }
}

/// A name that is not an [`EventStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event status {0:?} (expected pending, running, done, dead or unknown_shop)")]
pub struct UnknownEventStatus(pub String);

impl FromStr for EventStatus {
    type Err = UnknownEventStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownEventStatus(s.to_string()))
    }
}

impl TryFrom<String> for EventStatus {
    type Error = UnknownEventStatus;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decrypted push message, as the receiver enqueues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The platform's `eventId`: the dedupe key.
    pub event_id: String,
    pub msg_id: Option<String>,
    pub app_key: String,
    /// `None`: no known shop has the message's `openId`/`userId`.
    pub shop_id: Option<String>,
    pub open_id: Option<String>,
    pub user_id: Option<i64>,
    /// The platform's event name, e.g. `kwaishop_order_paySuccess`.
    pub event: String,
    pub kind: EventKind,
    /// The record to fetch (oid, refund id, item id).
    pub biz_id: Option<i64>,
    /// The envelope's `info`, parsed out of its string form.
    pub info: String,
    /// The decrypted envelope, verbatim.
    pub raw: String,
    pub event_update_time: Option<i64>,
    pub received_at_ms: i64,
}

/// One row of `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub id: i64,
    pub event_id: String,
    pub msg_id: Option<String>,
    pub app_key: String,
    pub shop_id: Option<String>,
    pub open_id: Option<String>,
    pub user_id: Option<i64>,
    pub event: String,
    pub kind: EventKind,
    pub biz_id: Option<i64>,
    pub info: String,
    pub raw: String,
    pub event_update_time: Option<i64>,
    pub received_at_ms: i64,
    pub status: EventStatus,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub lease_until_ms: Option<i64>,
    pub fence: i64,
    pub last_error: Option<String>,
    pub done_at_ms: Option<i64>,
}

from_row!(EventRow {
    id, event_id, msg_id, app_key, shop_id, open_id, user_id, event, kind as String, biz_id, info, raw, event_update_time, received_at_ms, status as String, attempts, next_attempt_at_ms, lease_until_ms, fence, last_error, done_at_ms,
});

/// An event a worker holds: hand back `(id, fence)` to complete or fail it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    pub id: i64,
    /// The fencing token of this claim; a later claim of the event has a higher one.
    pub fence: i64,
    pub event_id: String,
    pub shop_id: String,
    pub kind: EventKind,
    pub biz_id: Option<i64>,
    pub event: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub info: String,
}

from_row!(ClaimedEvent {
    id, fence, event_id, shop_id, kind as String, biz_id, event, attempts, info,
});

/// How many events are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub pending: i64,
    pub running: i64,
    pub done: i64,
    pub dead: i64,
    pub unknown_shop: i64,
    /// When the oldest pending event was received: how far behind the worker is.
    pub oldest_pending_received_at_ms: Option<i64>,
}

/// `SELECT <every column> FROM events` followed by `$rest`.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT id, event_id, msg_id, app_key, shop_id, open_id, user_id, event, kind, ",
            "biz_id, info, raw, event_update_time, received_at_ms, status, attempts, ",
            "next_attempt_at_ms, lease_until_ms, fence, last_error, done_at_ms FROM events",
            $rest
        )
    };
}

/// The columns an enqueue writes; the rest take their defaults.
const INSERT_COLUMNS: &str = "event_id, msg_id, app_key, shop_id, open_id, user_id, event, \
     kind, biz_id, info, raw, event_update_time, received_at_ms, status, next_attempt_at_ms";
const INSERT_WIDTH: usize = 15;

/// The insert of `rows` events; a stored `event_id` is skipped, and the stored ones returned.
fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", placeholders(r * INSERT_WIDTH + 1, INSERT_WIDTH)))
        .collect();
    format!(
        "INSERT INTO events ({INSERT_COLUMNS}) VALUES {} \
         ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        values.join(", ")
    )
}

/// The values of `events` (by index), in [`INSERT_COLUMNS`] order. An event without a shop
/// waits as `unknown_shop`; the others are due at once.
fn insert_vals<'a>(events: &'a [NewEvent], indexes: &[usize]) -> Vec<Val<'a>> {
    let mut vals = Vec::with_capacity(indexes.len() * INSERT_WIDTH);
    for e in indexes.iter().map(|&i| &events[i]) {
        let status = match e.shop_id {
            Some(_) => EventStatus::Pending,
            None => EventStatus::UnknownShop,
        };
        vals.extend([
            Val::from(&e.event_id),
            Val::from(&e.msg_id),
            Val::from(&e.app_key),
            Val::from(&e.shop_id),
            Val::from(&e.open_id),
            Val::from(e.user_id),
            Val::from(&e.event),
            Val::from(e.kind.as_str()),
            Val::from(e.biz_id),
            Val::from(&e.info),
            Val::from(&e.raw),
            Val::from(e.event_update_time),
            Val::from(e.received_at_ms),
            Val::from(status.as_str()),
            Val::from(e.received_at_ms),
        ]);
    }
    vals
}

/// The index of each `event_id`'s first occurrence, ordered by `event_id`: concurrent batches
/// then take the unique index's row locks in one order, so Postgres never deadlocks them.
fn first_occurrences(events: &[NewEvent]) -> Vec<usize> {
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        first.entry(e.event_id.as_str()).or_insert(i);
    }
    let mut indexes: Vec<usize> = first.into_values().collect();
    indexes.sort_by(|&a, &b| events[a].event_id.cmp(&events[b].event_id));
    indexes
}

/// Whether each event was newly stored: it is the first of its `event_id` in the batch, and
/// the insert stored it.
fn newly_stored(events: &[NewEvent], firsts: &[usize], stored: &HashSet<String>) -> Vec<bool> {
    let mut flags = vec![false; events.len()];
    for &i in firsts {
        flags[i] = stored.contains(&events[i].event_id);
    }
    flags
}

/// How many done events one purge transaction deletes: short transactions keep the receiver's
/// commits waiting no longer than a few milliseconds on SQLite.
const PURGE_CHUNK: i64 = 5_000;

impl Store {
    /// Inserts the events in ONE transaction (the receiver batches concurrent requests into one
    /// commit, I6), one multi-row statement per 2,000 events. A duplicate `event_id` (already
    /// stored, or twice in the batch) is ignored, never an error. An event with a shop is
    /// `pending`, due at `received_at_ms`; one without is `unknown_shop`. Returns, per input
    /// event, whether it was newly stored. On error nothing of the batch is stored.
    pub async fn enqueue_events(&self, events: &[NewEvent]) -> Result<Vec<bool>, StoreError> {
        let firsts = first_occurrences(events);
        if firsts.is_empty() {
            return Ok(Vec::new());
        }
        let op = "enqueuing events";
        let mut tx = self.pool.write_tx(op).await?;
        let mut stored = HashSet::with_capacity(firsts.len());
        for chunk in firsts.chunks(MAX_BINDS / INSERT_WIDTH) {
            let vals = insert_vals(events, chunk);
            let rows: Vec<(String,)> = tx.fetch_all(op, insert_sql(chunk.len()), &vals).await?;
            stored.extend(rows.into_iter().map(|r| r.0));
        }
        tx.commit(op).await?;
        Ok(newly_stored(events, &firsts, &stored))
    }

    /// Up to `limit` events of one status (any status when `None`), newest first.
    pub async fn list_events(
        &self,
        status: Option<EventStatus>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let op = "listing events";
        let limit = Val::from(limit.max(0));
        match status {
            Some(status) => {
                const SQL: &str = select_events!(" WHERE status = $1 ORDER BY id DESC LIMIT $2");
                let vals = [Val::from(status.as_str()), limit];
                self.pool.fetch_all(op, SQL, &vals).await
            }
            None => {
                const SQL: &str = select_events!(" ORDER BY id DESC LIMIT $1");
                self.pool.fetch_all(op, SQL, &[limit]).await
            }
        }
    }

    /// The event with this `id` (the table's, not the platform's `event_id`).
    pub async fn event(&self, id: i64) -> Result<Option<EventRow>, StoreError> {
        const SQL: &str = select_events!(" WHERE id = $1");
        let rows = self
            .pool
            .fetch_all("reading an event", SQL, &[Val::from(id)])
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Puts a `dead` event back to `pending` — or an `unknown_shop` one, once its shop is known
    /// and passed as `shop_id` (which only fills in a missing shop; a dead event keeps its own).
    /// Its attempts start again from 0, due at `now_ms`; `last_error` is kept. Returns false if
    /// there is no such event in those statuses.
    pub async fn retry_event(
        &self,
        id: i64,
        shop_id: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        const DEAD: &str = "UPDATE events SET status = 'pending', attempts = 0, \
             next_attempt_at_ms = $2, lease_until_ms = NULL WHERE id = $1 AND status = 'dead'";
        const DEAD_OR_UNKNOWN: &str = "UPDATE events SET status = 'pending', attempts = 0, \
             next_attempt_at_ms = $2, lease_until_ms = NULL, shop_id = COALESCE(shop_id, $3) \
             WHERE id = $1 AND status IN ('dead', 'unknown_shop')";
        let op = "retrying an event";
        let mut tx = self.pool.write_tx(op).await?;
        let changed = match shop_id {
            None => tx.execute(op, DEAD, &[id.into(), now_ms.into()]).await?,
            Some(shop) => {
                let vals = [id.into(), now_ms.into(), shop.into()];
                tx.execute(op, DEAD_OR_UNKNOWN, &vals).await?
            }
        };
        tx.commit(op).await?;
        Ok(changed > 0)
    }

    /// Deletes done events with `done_at_ms < before_ms`, a few thousand per transaction so
    /// the receiver never waits long behind a purge; returns how many.
    pub async fn purge_done_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM events WHERE id IN (SELECT id FROM events \
             WHERE status = 'done' AND done_at_ms < $1 LIMIT $2)";
        let op = "purging done events";
        let mut purged = 0;
        loop {
            let mut tx = self.pool.write_tx(op).await?;
            let deleted = tx
                .execute(op, SQL, &[before_ms.into(), PURGE_CHUNK.into()])
                .await?;
            tx.commit(op).await?;
            purged += deleted;
            if deleted < PURGE_CHUNK as u64 {
                return Ok(purged);
            }
        }
    }

    /// How many events are in each status, and the oldest pending one's arrival.
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        // One statement: the counts and the oldest arrival come from the same snapshot.
        const SQL: &str =
            "SELECT status, COUNT(*), MIN(received_at_ms) FROM events GROUP BY status";
        let rows: Vec<(String, i64, Option<i64>)> =
            self.pool.fetch_all("reading queue stats", SQL, &[]).await?;
        let mut stats = QueueStats::default();
        for (status, count, oldest) in rows {
            let status: EventStatus = status
                .parse()
                .map_err(|e: UnknownEventStatus| StoreError::Corrupt(e.to_string()))?;
            if status == EventStatus::Pending {
                stats.oldest_pending_received_at_ms = oldest;
            }
            let slot = match status {
                EventStatus::Pending => &mut stats.pending,
                EventStatus::Running => &mut stats.running,
                EventStatus::Done => &mut stats.done,
                EventStatus::Dead => &mut stats.dead,
                EventStatus::UnknownShop => &mut stats.unknown_shop,
            };
            *slot = count;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        for status in EventStatus::ALL {
            assert_eq!(EventStatus::try_from(status.to_string()), Ok(status));
        }
        assert!("orders".parse::<EventKind>().is_err());
        assert!("failed".parse::<EventStatus>().is_err());
    }

    #[test]
    fn an_insert_binds_each_placeholder_once_in_order() {
        let sql = insert_sql(2);
        assert!(sql.contains("($16, $17,"), "{sql}");
        assert!(sql.ends_with("$30) ON CONFLICT (event_id) DO NOTHING RETURNING event_id"));
    }
}
