//! The platform's answers per (shop, hour, method, outcome) in `api_calls`: what each daemon's
//! client counted, added up across flushes, restarts and daemons; read back for the status page.

use super::db::from_row;
use std::collections::BTreeMap;

use super::db::{MAX_BINDS, Val, placeholders};
use super::{Store, StoreError};
use crate::api::HourlyCount;

/// Columns per row of the upsert.
const WIDTH: usize = 5;

/// Calls to one method in one hour with one outcome, summed over shops (or of one shop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCallRow {
    /// The dotted API name.
    pub method: String,
    /// The hour's first instant, epoch ms.
    pub hour_ms: i64,
    /// `ok` or the failure class.
    pub outcome: String,
    pub calls: i64,
}

from_row!(ApiCallRow {
    method,
    hour_ms,
    outcome,
    calls,
});

/// `INSERT … ON CONFLICT` adding `rows` rows of counts.
fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({})", placeholders(r * WIDTH + 1, WIDTH)))
        .collect();
    format!(
        "INSERT INTO api_calls (shop_id, hour_ms, method, outcome, calls) VALUES {} \
         ON CONFLICT (shop_id, hour_ms, method, outcome) \
         DO UPDATE SET calls = api_calls.calls + excluded.calls",
        values.join(", ")
    )
}

impl Store {
    /// Adds `counts` to the stored counts, all in one transaction: either every count is added
    /// or none is (the caller keeps them for the next attempt).
    pub async fn add_api_calls(&self, counts: &[HourlyCount]) -> Result<(), StoreError> {
        // One row per key: Postgres refuses a statement that updates a row twice.
        let mut merged: BTreeMap<(&str, i64, &str, &str), i64> = BTreeMap::new();
        for c in counts.iter().filter(|c| c.calls > 0) {
            let key = (c.shop_id.as_str(), c.hour_ms, c.method.name(), c.outcome);
            let n = merged.entry(key).or_insert(0);
            *n = n.saturating_add(i64::try_from(c.calls).unwrap_or(i64::MAX));
        }
        if merged.is_empty() {
            return Ok(());
        }
        let op = "adding API call counts";
        let rows: Vec<_> = merged.into_iter().collect();
        let mut tx = self.pool.write_tx(op).await?;
        for chunk in rows.chunks(MAX_BINDS / WIDTH) {
            let mut vals: Vec<Val<'_>> = Vec::with_capacity(chunk.len() * WIDTH);
            for ((shop, hour, method, outcome), calls) in chunk {
                vals.extend([
                    Val::from(*shop),
                    Val::from(*hour),
                    Val::from(*method),
                    Val::from(*outcome),
                    Val::from(*calls),
                ]);
            }
            tx.execute(op, upsert_sql(chunk.len()), &vals).await?;
        }
        tx.commit(op).await
    }

    /// The calls of hours from `since_ms` on, of one shop or summed over all, per method, hour
    /// and outcome, sorted that way.
    pub async fn api_calls_since(
        &self,
        shop_id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<ApiCallRow>, StoreError> {
        // Postgres sums BIGINT into NUMERIC; the cast keeps an integer on both backends.
        const SQL: &str = "SELECT method, hour_ms, outcome, CAST(SUM(calls) AS BIGINT) AS calls \
             FROM api_calls WHERE hour_ms >= $1 AND ($2 IS NULL OR shop_id = $2) \
             GROUP BY method, hour_ms, outcome ORDER BY method, hour_ms, outcome";
        self.pool
            .fetch_all(
                "reading API call counts",
                SQL,
                &[Val::from(since_ms), Val::from(shop_id)],
            )
            .await
    }

    /// Deletes the counts of hours before `before_ms`; returns how many rows went.
    pub async fn prune_api_calls(&self, before_ms: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM api_calls WHERE hour_ms < $1";
        let op = "pruning API call counts";
        let mut tx = self.pool.write_tx(op).await?;
        let n = tx.execute(op, SQL, &[Val::from(before_ms)]).await?;
        tx.commit(op).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_upsert_numbers_its_placeholders_in_order() {
        assert_eq!(
            super::upsert_sql(2),
            "INSERT INTO api_calls (shop_id, hour_ms, method, outcome, calls) \
             VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10) \
             ON CONFLICT (shop_id, hour_ms, method, outcome) \
             DO UPDATE SET calls = api_calls.calls + excluded.calls"
        );
    }
}
