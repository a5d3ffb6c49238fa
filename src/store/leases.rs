//! Several daemons on one database: the instance registry and the (shop, stream) leases.
//!
//! An instance registers a row and refreshes it with a heartbeat; the number of live instances
//! is how many ways the app's QPS budget is split. A daemon polls a (shop, stream) only while it
//! holds that stream's lease; a dead daemon's leases expire and are taken over. Each lease row
//! carries a fence that grows every time the lease is taken, so a holder that was paused past
//! its expiry can tell (its renew fails) and its fence names no newer holding. Lease rows are
//! never deleted, which keeps the fence growing across releases.
//!
//! Times are the callers' clocks: instances must agree on the time to well within a lease's ttl.

use super::db::from_row;
use super::db::{Tx, Val};
use super::{Store, StoreError, Stream};

/// A (shop, stream) lease: who holds it, under which fence, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub shop_id: String,
    pub stream: Stream,
    /// The instance that holds (or last held) it.
    pub holder: String,
    /// Grows by one every time the lease is taken, by another holder or again by the same one.
    pub fence: i64,
    /// Epoch ms; the lease is free from this time on. A released lease has [`Self::RELEASED`].
    pub expires_at_ms: i64,
}

from_row!(LeaseRow {
    shop_id, stream as String, holder, fence, expires_at_ms,
});

/// A registered daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub instance_id: String,
    /// Empty (and `pid` 0) when its row was re-created by a heartbeat; see
    /// [`Store::heartbeat_instance`].
    pub host: String,
    pub pid: i64,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
}

from_row!(InstanceRow {
    instance_id,
    host,
    pid,
    started_at_ms,
    heartbeat_at_ms,
});

/// A holding of a (shop, stream) lease, as [`Store::acquire_lease`] granted it. A store
/// [`fenced`](Store::fenced) by it checks, inside the transaction of every write of that stream's
/// progress (a page and its checkpoint, a state, a resync's progress), that the lease row still
/// names this holder and fence, and rolls the write back with [`StoreError::Fenced`] if another
/// holder took the lease over meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFence {
    pub shop_id: String,
    pub stream: Stream,
    pub holder: String,
    pub fence: i64,
}

impl LeaseRow {
    /// The `expires_at_ms` of a released lease: the epoch, expired for every caller's clock (a
    /// release has no clock of its own).
    pub const RELEASED: i64 = 0;
}

/// How many heartbeat ttls an instance may stay silent before its row is removed.
const PURGE_AFTER_TTLS: i64 = 10;

/// A ttl that would make a lease or heartbeat expire at once is a caller's bug.
fn check_ttl(what: &str, ttl_ms: i64) -> Result<(), StoreError> {
    if ttl_ms > 0 {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "{what}: ttl_ms must be positive, got {ttl_ms}"
    )))
}

impl Store {
    /// This store, with every write of `fence`'s (shop, stream) progress checked against the
    /// lease in the same transaction. Writes of other streams, of pushes and of the queue are
    /// not fenced.
    pub fn fenced(&self, fence: LeaseFence) -> Store {
        Store {
            pool: self.pool.clone(),
            fence: Some(std::sync::Arc::new(fence)),
        }
    }

    /// The fence this store's writes of (shop, stream) are checked against, if any.
    pub fn fence(&self) -> Option<&LeaseFence> {
        self.fence.as_deref()
    }

    /// Inside `tx`: fails with [`StoreError::Fenced`] when this store is fenced for
    /// (shop, stream) and the lease row no longer carries its holder and fence. On Postgres the
    /// row is read `FOR SHARE`, so a taker's upsert waits until this transaction ends and cannot
    /// slip in between the check and the commit; SQLite writes are serialized anyway.
    pub(crate) async fn check_fence(
        &self,
        tx: &mut Tx,
        shop_id: &str,
        stream: Stream,
    ) -> Result<(), StoreError> {
        let Some(fence) = self
            .fence
            .as_deref()
            .filter(|f| f.shop_id == shop_id && f.stream == stream)
        else {
            return Ok(());
        };
        const SQL: &str = "SELECT holder, fence FROM stream_leases \
             WHERE shop_id = $1 AND stream = $2";
        const SQL_PG: &str = "SELECT holder, fence FROM stream_leases \
             WHERE shop_id = $1 AND stream = $2 FOR SHARE";
        let sql = if tx.is_postgres() { SQL_PG } else { SQL };
        let vals = [Val::from(shop_id), Val::from(stream.as_str())];
        let rows: Vec<(String, i64)> = tx
            .fetch_all("checking the stream's lease", sql, &vals)
            .await?;
        match rows.first() {
            Some((holder, current)) if *holder == fence.holder && *current == fence.fence => Ok(()),
            _ => Err(StoreError::Fenced {
                shop_id: shop_id.to_string(),
                stream: stream.as_str(),
                fence: fence.fence,
            }),
        }
    }

    /// Registers (or re-registers) an instance.
    pub async fn register_instance(
        &self,
        instance_id: &str,
        host: &str,
        pid: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO instances \
             (instance_id, host, pid, started_at_ms, heartbeat_at_ms) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (instance_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
             started_at_ms = excluded.started_at_ms, heartbeat_at_ms = excluded.heartbeat_at_ms";
        let op = "registering an instance";
        let vals = [
            Val::from(instance_id),
            Val::from(host),
            Val::from(pid),
            Val::from(now_ms),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await
    }

    /// Refreshes this instance's heartbeat, removes instances silent for more than 10 × ttl, and
    /// returns how many instances are live (heartbeat within ttl), this one included (always ≥ 1).
    ///
    /// An instance whose row is gone (it was silent long enough to be removed, e.g. suspended)
    /// gets it back here, with an empty host and pid 0 until it registers again: a live
    /// instance the others do not count would make their shares too large.
    pub async fn heartbeat_instance(
        &self,
        instance_id: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<i64, StoreError> {
        const BEAT: &str = "INSERT INTO instances \
             (instance_id, host, pid, started_at_ms, heartbeat_at_ms) VALUES ($1, '', 0, $2, $2) \
             ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at_ms = excluded.heartbeat_at_ms";
        const PURGE: &str = "DELETE FROM instances WHERE heartbeat_at_ms < $1";
        const LIVE: &str = "SELECT COUNT(*) FROM instances WHERE heartbeat_at_ms >= $1";
        let op = "recording a heartbeat";
        check_ttl(op, ttl_ms)?;
        let purge_before = now_ms.saturating_sub(ttl_ms.saturating_mul(PURGE_AFTER_TTLS));
        let live_since = now_ms.saturating_sub(ttl_ms);
        let mut tx = self.pool.write_tx(op).await?;
        tx.execute(op, BEAT, &[Val::from(instance_id), Val::from(now_ms)])
            .await?;
        tx.execute(op, PURGE, &[Val::from(purge_before)]).await?;
        let live: Vec<(i64,)> = tx.fetch_all(op, LIVE, &[Val::from(live_since)]).await?;
        tx.commit(op).await?;
        Ok(live.first().map_or(1, |row| row.0.max(1)))
    }

    /// Records that this instance's rate limiters now divide the app's budget by `share`.
    pub async fn publish_share(&self, instance_id: &str, share: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE instances SET share_in_force = $2 WHERE instance_id = $1";
        let op = "publishing an instance's share";
        let mut tx = self.pool.write_tx(op).await?;
        tx.execute(op, SQL, &[Val::from(instance_id), Val::from(share)])
            .await?;
        tx.commit(op).await
    }

    /// How many other live instances (heartbeat within `ttl_ms`) still divide the budget by
    /// fewer than `share` ways: until none does, an instance that counts `share` live ones must
    /// not call, or the shares in force would add up to more than the limit.
    pub async fn instances_behind(
        &self,
        instance_id: &str,
        share: i64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM instances WHERE instance_id <> $1 \
             AND heartbeat_at_ms >= $2 AND share_in_force < $3";
        let op = "checking the other instances' shares";
        check_ttl(op, ttl_ms)?;
        let vals = [
            Val::from(instance_id),
            Val::from(now_ms.saturating_sub(ttl_ms)),
            Val::from(share),
        ];
        let rows: Vec<(i64,)> = self.pool.fetch_all(op, SQL, &vals).await?;
        Ok(rows.first().map_or(0, |r| r.0))
    }

    /// Removes the instance and releases every lease it holds (a clean stop).
    pub async fn unregister_instance(&self, instance_id: &str) -> Result<(), StoreError> {
        const REMOVE: &str = "DELETE FROM instances WHERE instance_id = $1";
        const RELEASE: &str = "UPDATE stream_leases SET expires_at_ms = $2 \
             WHERE holder = $1 AND expires_at_ms > $2";
        let op = "unregistering an instance";
        let mut tx = self.pool.write_tx(op).await?;
        tx.execute(op, REMOVE, &[Val::from(instance_id)]).await?;
        let vals = [Val::from(instance_id), Val::from(LeaseRow::RELEASED)];
        tx.execute(op, RELEASE, &vals).await?;
        tx.commit(op).await
    }

    /// Every registered instance, by id.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        const SQL: &str = "SELECT instance_id, host, pid, started_at_ms, heartbeat_at_ms \
             FROM instances ORDER BY instance_id";
        self.pool.fetch_all("listing instances", SQL, &[]).await
    }

    /// Takes the (shop, stream) lease for `holder` until `now_ms + ttl_ms` when it is free,
    /// expired, or already held by `holder`; returns the new fence, or None when another
    /// holder's lease is still valid. Atomic: of many concurrent callers exactly one wins (one
    /// upsert: Postgres re-checks the condition on the row it locks, SQLite runs it under
    /// `BEGIN IMMEDIATE`).
    pub async fn acquire_lease(
        &self,
        shop_id: &str,
        stream: Stream,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "INSERT INTO stream_leases \
             (shop_id, stream, holder, fence, expires_at_ms) VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (shop_id, stream) DO UPDATE SET holder = excluded.holder, \
             fence = stream_leases.fence + 1, expires_at_ms = excluded.expires_at_ms \
             WHERE stream_leases.expires_at_ms <= $5 OR stream_leases.holder = excluded.holder \
             RETURNING fence";
        let op = "acquiring a lease";
        check_ttl(op, ttl_ms)?;
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(holder),
            Val::from(now_ms.saturating_add(ttl_ms)),
            Val::from(now_ms),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        let fence: Vec<(i64,)> = tx.fetch_all(op, SQL, &vals).await?;
        tx.commit(op).await?;
        Ok(fence.first().map(|row| row.0))
    }

    /// Extends the lease to `now_ms + ttl_ms` if `holder` still holds it with this fence and it
    /// has not expired; false otherwise (it was released, or expired and perhaps taken). A lapsed
    /// lease is regained only through [`Store::acquire_lease`], so one fence never spans a gap
    /// in which another holder could have polled.
    pub async fn renew_lease(
        &self,
        shop_id: &str,
        stream: Stream,
        holder: &str,
        fence: i64,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE stream_leases SET expires_at_ms = $5 \
             WHERE shop_id = $1 AND stream = $2 AND holder = $3 AND fence = $4 \
             AND expires_at_ms > $6";
        let op = "renewing a lease";
        check_ttl(op, ttl_ms)?;
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(holder),
            Val::from(fence),
            Val::from(now_ms.saturating_add(ttl_ms)),
            Val::from(now_ms),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        let renewed = tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await?;
        Ok(renewed == 1)
    }

    /// Gives the lease up (expires it: [`LeaseRow::RELEASED`]) if still held with this fence;
    /// otherwise does nothing.
    pub async fn release_lease(
        &self,
        shop_id: &str,
        stream: Stream,
        holder: &str,
        fence: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE stream_leases SET expires_at_ms = $5 \
             WHERE shop_id = $1 AND stream = $2 AND holder = $3 AND fence = $4";
        let op = "releasing a lease";
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(holder),
            Val::from(fence),
            Val::from(LeaseRow::RELEASED),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await
    }

    /// Every lease row, held, expired or released, by shop and stream.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        const SQL: &str = "SELECT shop_id, stream, holder, fence, expires_at_ms \
             FROM stream_leases ORDER BY shop_id, stream";
        self.pool.fetch_all("listing leases", SQL, &[]).await
    }
}

/// Compile-time check: the daemons run these futures on tokio tasks.
#[cfg(test)]
mod spawnable {
    use super::*;

    fn spawn<F: std::future::Future + Send + 'static>(_: F) {}

    #[allow(dead_code)]
    fn every_future_is_send(store: Store) {
        spawn(async move {
            let _ = store.register_instance("i", "h", 1, 0).await;
            let _ = store.heartbeat_instance("i", 0, 1).await;
            let _ = store.unregister_instance("i").await;
            let _ = store.instances().await;
            let _ = store.acquire_lease("s", Stream::Orders, "i", 0, 1).await;
            let _ = store.renew_lease("s", Stream::Orders, "i", 1, 0, 1).await;
            let _ = store.release_lease("s", Stream::Orders, "i", 1).await;
            let _ = store.leases().await;
        });
    }
}
