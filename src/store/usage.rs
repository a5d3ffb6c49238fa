//! The persisted daily call counter (`api_usage`) and quota pauses (`shops.quota_paused_until`
//! for the whole shop, `api_pauses` for one API of a shop): the client's [`UsageStore`] (I7).

use super::db::{Tx, Val};
use super::shops::ensure_shop_row;
use super::{Store, StoreError};
use crate::api::Method;
use crate::api::limits::{UsageError, UsageStore};
use crate::clock::wall_ms;

/// The shop's calls on `day`, summed over methods. Postgres sums BIGINT into NUMERIC; the cast
/// keeps the result an integer on both backends.
const DAY_TOTAL: &str = "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM api_usage \
     WHERE shop_id = $1 AND day = $2";

/// [`DAY_TOTAL`] inside `tx`.
async fn day_total(tx: &mut Tx, shop_id: &str, day: i64) -> Result<i64, StoreError> {
    let rows: Vec<(i64,)> = tx
        .fetch_all(
            "reading the call count",
            DAY_TOTAL,
            &[shop_id.into(), day.into()],
        )
        .await?;
    Ok(rows.first().map_or(0, |r| r.0))
}

impl Store {
    /// Counts one call unless the shop already made `limit` calls on `day` (all methods
    /// together); returns the new total, or `None` when the limit is reached. Check and count
    /// are one transaction that holds the shop's lock: the write lock on SQLite
    /// (`BEGIN IMMEDIATE`), the shop's row lock on Postgres, so concurrent callers queue.
    pub async fn count_call(
        &self,
        shop_id: &str,
        day: i64,
        method: Method,
        limit: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        let (granted, total) = self.count_calls(shop_id, day, method, 1, limit).await?;
        Ok((granted == 1).then_some(total))
    }

    /// Counts up to `want` calls at once, fewer when `limit` leaves fewer; returns how many it
    /// counted and the shop's new total. Atomic as [`Store::count_call`].
    pub async fn count_calls(
        &self,
        shop_id: &str,
        day: i64,
        method: Method,
        want: u64,
        limit: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        // Counters of one shop take turns on its row. Not `FOR UPDATE`: that waits for every
        // open transaction that writes a row referring to the shop (a backfill's batch of
        // pages holds the row's key-share lock until it commits), and each block of calls
        // counted held every window's calls for that long.
        const LOCK: &str = "SELECT 1 FROM shops WHERE shop_id = $1 FOR NO KEY UPDATE";
        const COUNT: &str = "INSERT INTO api_usage (shop_id, day, method, calls) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (shop_id, day, method) \
             DO UPDATE SET calls = api_usage.calls + excluded.calls";
        let op = "counting calls";
        let mut tx = self.pool.write_tx(op).await?;
        ensure_shop_row(&mut tx, shop_id).await?;
        if tx.is_postgres() {
            tx.fetch_all::<(i32,)>(op, LOCK, &[shop_id.into()]).await?;
        }
        let total = u64::try_from(day_total(&mut tx, shop_id, day).await?).unwrap_or(0);
        let granted = limit.map_or(want, |limit| want.min(limit.saturating_sub(total)));
        if granted == 0 {
            return Ok((0, total)); // dropping the transaction rolls it back
        }
        let n = i64::try_from(granted).unwrap_or(i64::MAX);
        let vals = [
            Val::from(shop_id),
            day.into(),
            method.name().into(),
            n.into(),
        ];
        tx.execute(op, COUNT, &vals).await?;
        tx.commit(op).await?;
        Ok((granted, total + granted))
    }

    /// Uncounts `n` calls counted ahead and never made.
    pub async fn uncount_calls(
        &self,
        shop_id: &str,
        day: i64,
        method: Method,
        n: u64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE api_usage SET calls = CASE WHEN calls > $4 THEN calls - $4 \
             ELSE 0 END WHERE shop_id = $1 AND day = $2 AND method = $3";
        let op = "giving back calls counted ahead";
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let mut tx = self.pool.write_tx(op).await?;
        let vals = [
            Val::from(shop_id),
            day.into(),
            method.name().into(),
            n.into(),
        ];
        tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await
    }

    /// The shop's calls on `day`, all methods together.
    pub async fn calls_on(&self, shop_id: &str, day: i64) -> Result<u64, StoreError> {
        let rows: Vec<(i64,)> = self
            .pool
            .fetch_all(
                "reading the call count",
                DAY_TOTAL,
                &[shop_id.into(), day.into()],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| u64::try_from(r.0).unwrap_or(0)))
    }

    /// Every shop's calls on `day`, all methods together (shops without calls are not listed).
    pub async fn calls_by_shop_on(&self, day: i64) -> Result<Vec<(String, u64)>, StoreError> {
        const SQL: &str = "SELECT shop_id, CAST(COALESCE(SUM(calls), 0) AS BIGINT) \
             FROM api_usage WHERE day = $1 GROUP BY shop_id";
        let rows: Vec<(String, i64)> = self
            .pool
            .fetch_all("reading the call counts", SQL, &[day.into()])
            .await?;
        Ok(rows
            .into_iter()
            .map(|(shop, n)| (shop, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Records that the shop may not call again before `until_ms`.
    pub async fn set_quota_pause(&self, shop_id: &str, until_ms: i64) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE shops SET quota_paused_until = $2, updated_at = $3 WHERE shop_id = $1";
        let op = "pausing a shop's calls";
        let mut tx = self.pool.write_tx(op).await?;
        ensure_shop_row(&mut tx, shop_id).await?;
        let vals = [Val::from(shop_id), until_ms.into(), wall_ms().into()];
        tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await
    }

    /// Records that the shop may not call `method` before `until_ms`.
    pub async fn set_api_pause(
        &self,
        shop_id: &str,
        method: Method,
        until_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO api_pauses (shop_id, method, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (shop_id, method) DO UPDATE SET until_ms = excluded.until_ms";
        let op = "pausing one API of a shop";
        let mut tx = self.pool.write_tx(op).await?;
        ensure_shop_row(&mut tx, shop_id).await?;
        let vals = [Val::from(shop_id), method.name().into(), until_ms.into()];
        tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await
    }

    /// When the shop's pause of `method` ends, if one was recorded.
    pub async fn api_pause(
        &self,
        shop_id: &str,
        method: Method,
    ) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT until_ms FROM api_pauses WHERE shop_id = $1 AND method = $2";
        let rows: Vec<(i64,)> = self
            .pool
            .fetch_all(
                "reading an API's pause",
                SQL,
                &[shop_id.into(), method.name().into()],
            )
            .await?;
        Ok(rows.first().map(|r| r.0))
    }

    /// When the shop's quota pause ends, if one was recorded.
    pub async fn quota_pause(&self, shop_id: &str) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT quota_paused_until FROM shops WHERE shop_id = $1";
        let rows: Vec<(Option<i64>,)> = self
            .pool
            .fetch_all("reading a shop's pause", SQL, &[shop_id.into()])
            .await?;
        Ok(rows.first().and_then(|r| r.0))
    }
}

fn usage_error(e: StoreError) -> UsageError {
    UsageError(e.to_string())
}

#[async_trait::async_trait]
impl UsageStore for Store {
    async fn try_add_call(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        limit: Option<u64>,
    ) -> Result<Option<u64>, UsageError> {
        self.count_call(shop, day, method, limit)
            .await
            .map_err(usage_error)
    }

    async fn try_add_calls(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        want: u64,
        limit: Option<u64>,
    ) -> Result<u64, UsageError> {
        self.count_calls(shop, day, method, want, limit)
            .await
            .map(|(granted, _)| granted)
            .map_err(usage_error)
    }

    async fn give_back(
        &self,
        shop: &str,
        day: i64,
        method: Method,
        n: u64,
    ) -> Result<(), UsageError> {
        self.uncount_calls(shop, day, method, n)
            .await
            .map_err(usage_error)
    }

    async fn calls(&self, shop: &str, day: i64) -> Result<u64, UsageError> {
        self.calls_on(shop, day).await.map_err(usage_error)
    }

    async fn pause_until(&self, shop: &str, until_ms: i64) -> Result<(), UsageError> {
        self.set_quota_pause(shop, until_ms)
            .await
            .map_err(usage_error)
    }

    async fn paused_until(&self, shop: &str) -> Result<Option<i64>, UsageError> {
        self.quota_pause(shop).await.map_err(usage_error)
    }

    async fn pause_api_until(
        &self,
        shop: &str,
        method: Method,
        until_ms: i64,
    ) -> Result<(), UsageError> {
        self.set_api_pause(shop, method, until_ms)
            .await
            .map_err(usage_error)
    }

    async fn api_paused_until(
        &self,
        shop: &str,
        method: Method,
    ) -> Result<Option<i64>, UsageError> {
        self.api_pause(shop, method).await.map_err(usage_error)
    }
}
