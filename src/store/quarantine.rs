//! The quarantine: records a poller could not read or store. Each fails alone — its page and
//! the checkpoint move on — and waits here with its JSON and the error until a later page or a
//! retry stores it.

use super::db::{MAX_BINDS, Tx, Val, from_row, placeholders};
use super::{Store, StoreError, Stream};
use crate::api::records::Rejected;

/// One quarantined record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRow {
    pub shop_id: String,
    pub stream: Stream,
    /// The record's id, or `raw:<digest>` when its id could not be read.
    pub record_key: String,
    /// Whether `record_key` is the record's id.
    pub has_id: bool,
    /// The record's JSON as the platform sent it.
    pub raw: String,
    pub error: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// How many times a page brought it (or a retry failed on it).
    pub times_seen: i64,
}

struct StoredRow {
    shop_id: String,
    stream: String,
    record_key: String,
    has_id: i64,
    raw: String,
    error: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    times_seen: i64,
}

from_row!(StoredRow {
    shop_id,
    stream,
    record_key,
    has_id,
    raw,
    error,
    first_seen_ms,
    last_seen_ms,
    times_seen,
});

/// A stored stream name, or the error naming it.
fn stream_of(name: &str) -> Result<Stream, StoreError> {
    name.parse()
        .map_err(|e: super::UnknownStream| StoreError::Corrupt(e.to_string()))
}

impl TryFrom<StoredRow> for QuarantineRow {
    type Error = StoreError;

    fn try_from(r: StoredRow) -> Result<Self, StoreError> {
        Ok(QuarantineRow {
            stream: stream_of(&r.stream)?,
            shop_id: r.shop_id,
            record_key: r.record_key,
            has_id: r.has_id != 0,
            raw: r.raw,
            error: r.error,
            first_seen_ms: r.first_seen_ms,
            last_seen_ms: r.last_seen_ms,
            times_seen: r.times_seen,
        })
    }
}

/// Inside `tx`: puts the rejected records of a (shop, stream) page in quarantine, or, for those
/// already there, records that they were seen again with this error.
pub(crate) async fn quarantine_in(
    tx: &mut Tx,
    shop_id: &str,
    stream: Stream,
    rejected: &[Rejected],
    now_ms: i64,
) -> Result<(), StoreError> {
    const SQL: &str = "INSERT INTO quarantine (shop_id, stream, record_key, has_id, raw, error, \
         first_seen_ms, last_seen_ms, times_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 1) \
         ON CONFLICT (shop_id, stream, record_key) DO UPDATE SET raw = excluded.raw, \
         error = excluded.error, last_seen_ms = excluded.last_seen_ms, \
         times_seen = quarantine.times_seen + 1";
    for r in rejected {
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(r.key.as_str()),
            Val::from(i64::from(r.has_id)),
            Val::from(r.raw.as_str()),
            Val::from(r.error.as_str()),
            Val::from(now_ms),
        ];
        tx.execute("quarantining a record", SQL, &vals).await?;
    }
    Ok(())
}

/// Inside `tx`: the records with these ids were stored, so they leave the quarantine. The
/// stream's quarantine is nearly always empty, and a statement naming every id of a batch is
/// built, parsed and bound for each batch (42 ms per 1,000 ids on Postgres, a quarter of a
/// backfill's batch): it is asked first whether there is anything to release.
pub(crate) async fn release_in(
    tx: &mut Tx,
    shop_id: &str,
    stream: Stream,
    ids: impl Iterator<Item = i64>,
) -> Result<(), StoreError> {
    const ANY: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM quarantine \
         WHERE shop_id = $1 AND stream = $2 LIMIT 1) AS q";
    let vals = [Val::from(shop_id), Val::from(stream.as_str())];
    let held: Vec<(i64,)> = tx
        .fetch_all("looking for quarantined records", ANY, &vals)
        .await?;
    if held.first().is_none_or(|(n,)| *n == 0) {
        return Ok(());
    }
    let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    for chunk in ids.chunks(MAX_BINDS - 2) {
        if chunk.is_empty() {
            continue;
        }
        let sql = format!(
            "DELETE FROM quarantine WHERE shop_id = $1 AND stream = $2 AND record_key IN ({})",
            placeholders(3, chunk.len())
        );
        let mut vals = vec![Val::from(shop_id), Val::from(stream.as_str())];
        vals.extend(chunk.iter().map(|k| Val::from(k.as_str())));
        tx.execute("releasing stored records from quarantine", sql, &vals)
            .await?;
    }
    Ok(())
}

impl Store {
    /// The quarantined records, of one shop or all, by shop, stream and key.
    pub async fn quarantined(
        &self,
        shop_id: Option<&str>,
    ) -> Result<Vec<QuarantineRow>, StoreError> {
        const SQL: &str = "SELECT shop_id, stream, record_key, has_id, raw, error, \
             first_seen_ms, last_seen_ms, times_seen FROM quarantine \
             WHERE ($1 IS NULL OR shop_id = $1) ORDER BY shop_id, stream, record_key";
        let rows: Vec<StoredRow> = self
            .pool
            .fetch_all("listing the quarantine", SQL, &[Val::from(shop_id)])
            .await?;
        rows.into_iter().map(QuarantineRow::try_from).collect()
    }

    /// How many records are quarantined per (shop, stream), for status and metrics.
    pub async fn quarantine_counts(&self) -> Result<Vec<(String, Stream, i64)>, StoreError> {
        const SQL: &str = "SELECT shop_id, stream, COUNT(*) FROM quarantine \
             GROUP BY shop_id, stream ORDER BY shop_id, stream";
        let rows: Vec<(String, String, i64)> = self
            .pool
            .fetch_all("counting the quarantine", SQL, &[])
            .await?;
        rows.into_iter()
            .map(|(shop, stream, n)| Ok((shop, stream_of(&stream)?, n)))
            .collect()
    }

    /// Puts rejected records of a (shop, stream) in quarantine on their own (a retry that
    /// failed again, a record the store refused).
    pub async fn quarantine(
        &self,
        shop_id: &str,
        stream: Stream,
        rejected: &[Rejected],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let op = "quarantining records";
        let mut tx = self.pool.write_tx(op).await?;
        quarantine_in(&mut tx, shop_id, stream, rejected, now_ms).await?;
        tx.commit(op).await
    }

    /// Takes one record out of quarantine (after a retry stored it, or when it is gone for
    /// good); returns whether it was there.
    pub async fn release_quarantined(
        &self,
        shop_id: &str,
        stream: Stream,
        record_key: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str =
            "DELETE FROM quarantine WHERE shop_id = $1 AND stream = $2 AND record_key = $3";
        let op = "releasing a record from quarantine";
        let vals = [
            Val::from(shop_id),
            Val::from(stream.as_str()),
            Val::from(record_key),
        ];
        let mut tx = self.pool.write_tx(op).await?;
        let n = tx.execute(op, SQL, &vals).await?;
        tx.commit(op).await?;
        Ok(n > 0)
    }
}
