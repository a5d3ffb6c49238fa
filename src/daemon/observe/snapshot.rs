//! What one scrape (or one view of the status page) reads from the database: every read within
//! one deadline, each failure counted and the scrape carried on without it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::ObserveSources;
use crate::clock::beijing_day;
use crate::store::{QueueStats, ShopRow, Store, StoreError, Stream, StreamState};

/// All database reads of one scrape finish within this, or are left out: Prometheus gives up
/// on a scrape after 10 s by default, and a partial answer beats none.
const READ_BUDGET: Duration = Duration::from_secs(5);
/// The mirror tables counted per shop.
const TABLES: [&str; 4] = ["orders", "refunds", "items", "skus"];

/// The database reads of one scrape, within one deadline, with their failures counted.
pub(super) struct Reads {
    deadline: Instant,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Reads {
    pub(super) fn new() -> Self {
        Self {
            deadline: Instant::now() + READ_BUDGET,
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    /// The read's value, or `None` (counted) when it failed or missed the deadline.
    pub(super) async fn read<T>(
        &self,
        what: &str,
        read: impl Future<Output = Result<T, StoreError>>,
    ) -> Option<T> {
        let error = match tokio::time::timeout_at(self.deadline, read).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => format!("{what}: {e}"),
            Err(_) => format!("{what}: no answer within {} s", READ_BUDGET.as_secs()),
        };
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(error);
        None
    }

    /// Reads that failed or missed the deadline so far.
    pub(super) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Logs one warning for the failed reads, if any, naming the first failure; `consumer`
    /// says who carried on without them (`metrics`, `status page`).
    pub(super) fn warn_failures(&self, consumer: &str) {
        let failed_reads = self.failed();
        if failed_reads > 0 {
            let first = self.first_error.lock().map(|e| e.clone()).ok().flatten();
            warn!(
                failed_reads,
                first = first.as_deref().unwrap_or(""),
                "{consumer}: database reads failed; their figures are left out"
            );
        }
    }
}

/// A mirror smaller than this (about 8,000 orders with their raw JSON) is counted at each
/// scrape: a few milliseconds.
const SMALL_MIRROR_BYTES: i64 = 32 << 20;
/// A larger mirror's count is redone in the background once it is this many times as old as it
/// took: a count taking 0.2 s is at most 4 s old, and costs the database 5 % of a connection.
const COUNT_AGE_PER_COST: u32 = 20;

/// Row counts per shop and table: one scan of every mirror table. A small mirror is counted at
/// each scrape. On a large one (200,000 orders took 0.2 s on Postgres, more than the rest of a
/// scrape together) a scrape serves the last count and says when it was made, and the next
/// count runs in the background once the last is `COUNT_AGE_PER_COST` times as old as it took;
/// until the first has ended, a scrape has no rows to show.
pub struct RowCounts {
    state: Mutex<CountState>,
    /// Mirrors below this many bytes are counted at each scrape.
    small: i64,
}

impl Default for RowCounts {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            small: SMALL_MIRROR_BYTES,
        }
    }
}

#[derive(Default)]
struct CountState {
    last: Option<Counted>,
    refreshing: bool,
}

/// Rows per (shop, table).
type Counts = Arc<Vec<(String, &'static str, i64)>>;

#[derive(Clone)]
struct Counted {
    rows: Counts,
    /// The app clock's time of the count.
    at_ms: i64,
    at: Instant,
    took: Duration,
}

impl RowCounts {
    /// The counts a scrape shows and when they were made (app clock): counted now on a small
    /// mirror, the last count on a large one.
    async fn read(
        self: &Arc<Self>,
        reads: &Reads,
        store: &Store,
        now_ms: i64,
    ) -> Option<(Counts, i64)> {
        let bytes = reads.read("mirror size", store.mirror_bytes()).await?;
        if bytes < self.small {
            let counted = reads.read("row counts", self.count(store, now_ms)).await?;
            let out = (counted.rows.clone(), counted.at_ms);
            self.lock().last = Some(counted);
            return Some(out);
        }
        let last = {
            let mut state = self.lock();
            let due = !state.refreshing
                && state
                    .last
                    .as_ref()
                    .is_none_or(|c| c.at.elapsed() >= c.took * COUNT_AGE_PER_COST);
            state.refreshing |= due;
            if due {
                let (counts, store) = (self.clone(), store.clone());
                tokio::spawn(async move {
                    let counted = counts.count(&store, now_ms).await;
                    let mut state = counts.lock();
                    state.refreshing = false;
                    match counted {
                        Ok(counted) => state.last = Some(counted),
                        Err(e) => warn!(error = %e, "cannot count the mirror's rows"),
                    }
                });
            }
            state.last.clone()
        };
        last.map(|c| (c.rows, c.at_ms))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CountState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn count(&self, store: &Store, now_ms: i64) -> Result<Counted, StoreError> {
        let at = Instant::now();
        let rows = store.row_counts().await?;
        Ok(Counted {
            rows: Arc::new(rows),
            at_ms: now_ms,
            at,
            took: at.elapsed(),
        })
    }
}

/// What the database says about one shop.
pub(super) struct ShopFigures {
    pub shop_id: String,
    pub rows: Vec<(&'static str, i64)>,
    pub calls_today: Option<u64>,
    /// (access, refresh) expiry, epoch ms; never the tokens themselves.
    pub token_expiry: Option<(i64, i64)>,
}

/// Everything read from the database for one scrape.
pub(super) struct Snapshot {
    /// The replaceable clock's now, which checkpoints and arrivals are measured against.
    pub now_ms: i64,
    pub shops: Vec<ShopRow>,
    pub states: Vec<StreamState>,
    /// Both lists were read: a stream missing from them really has no pause and no error.
    pub shops_and_states_read: bool,
    /// One per shop known to `shops` or `sync_state`, by shop id.
    pub figures: Vec<ShopFigures>,
    /// When the rows in `figures` were counted (app clock), if they were.
    pub rows_counted_at_ms: Option<i64>,
    pub queue: Option<QueueStats>,
    /// Quarantined records per (shop, stream); `None` when it could not be read.
    pub quarantine: Option<Vec<(String, Stream, i64)>>,
    /// Reads that failed or missed the deadline.
    pub failed_reads: u64,
}

impl Snapshot {
    /// How many records of (shop, stream) are quarantined (0 when none, or unread).
    pub fn quarantined(&self, shop: &str, stream: Stream) -> i64 {
        self.quarantine
            .iter()
            .flatten()
            .find(|(s, st, _)| s == shop && *st == stream)
            .map_or(0, |q| q.2)
    }
}

/// The snapshot of one scrape, its failed reads logged.
pub(super) async fn read_database(sources: &ObserveSources) -> Snapshot {
    let reads = Reads::new();
    let snapshot = read_with(&reads, sources).await;
    reads.warn_failures("metrics");
    snapshot
}

/// The snapshot, with `reads`' deadline and failure count (the caller may read more).
pub(super) async fn read_with(reads: &Reads, sources: &ObserveSources) -> Snapshot {
    let store = &sources.store;
    let now_ms = sources.clock.now_ms();
    let day = beijing_day(now_ms);
    // Side by side, over the observer's own connections.
    let (shops, states, queue, quarantine, counts, calls, expiries) = tokio::join!(
        reads.read("shops", store.shops()),
        reads.read("stream states", store.all_states()),
        reads.read("queue", store.queue_stats()),
        reads.read("quarantine", store.quarantine_counts()),
        sources.row_counts.read(reads, store, now_ms),
        reads.read("calls", store.calls_by_shop_on(day)),
        reads.read("token expiries", store.token_expiries()),
    );
    let shops_and_states_read = shops.is_some() && states.is_some();
    let (shops, states) = (shops.unwrap_or_default(), states.unwrap_or_default());
    let ids = shop_ids(&shops, &states);
    let rows_counted_at_ms = counts.as_ref().map(|c| c.1);
    let figures = shop_figures(
        ids,
        counts.as_ref().map(|c| c.0.as_slice()),
        calls.as_deref(),
        expiries.as_deref(),
    );
    let failed_reads = reads.failed();
    Snapshot {
        now_ms,
        shops,
        states,
        shops_and_states_read,
        figures,
        rows_counted_at_ms,
        queue,
        quarantine,
        failed_reads,
    }
}

/// Every shop the database knows, from its own table and from the stream states.
fn shop_ids(shops: &[ShopRow], states: &[StreamState]) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = shops.iter().map(|s| s.shop_id.clone()).collect();
    ids.extend(states.iter().map(|s| s.shop_id.clone()));
    ids
}

/// The per-shop figures of every shop in `ids`, from reads over all shops (a thousand shops
/// cost what one does, not a thousand round trips). A read that failed (`None`) leaves its
/// figure out for every shop.
fn shop_figures(
    ids: BTreeSet<String>,
    counts: Option<&[(String, &'static str, i64)]>,
    calls: Option<&[(String, u64)]>,
    expiries: Option<&[(String, i64, i64)]>,
) -> Vec<ShopFigures> {
    let mut rows: HashMap<&str, Vec<(&'static str, i64)>> = HashMap::new();
    for (shop, table, n) in counts.into_iter().flatten() {
        rows.entry(shop.as_str()).or_default().push((table, *n));
    }
    let calls: Option<HashMap<&str, u64>> =
        calls.map(|c| c.iter().map(|(shop, n)| (shop.as_str(), *n)).collect());
    let expiries: HashMap<&str, (i64, i64)> = expiries
        .into_iter()
        .flatten()
        .map(|(shop, access, refresh)| (shop.as_str(), (*access, *refresh)))
        .collect();
    ids.into_iter()
        .map(|shop_id| {
            // Counted tables without a row for the shop hold none of its rows.
            let rows = match counts {
                None => Vec::new(),
                Some(_) => TABLES
                    .iter()
                    .map(|table| {
                        let n = rows
                            .get(shop_id.as_str())
                            .and_then(|r| r.iter().find(|(t, _)| t == table).map(|(_, n)| *n));
                        (*table, n.unwrap_or(0))
                    })
                    .collect(),
            };
            ShopFigures {
                rows,
                calls_today: calls
                    .as_ref()
                    .map(|c| c.get(shop_id.as_str()).copied().unwrap_or(0)),
                token_expiry: expiries.get(shop_id.as_str()).copied(),
                shop_id,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::records::Refund;
    use crate::store::Source;

    async fn add_refund(store: &Store, id: i64) {
        let json = format!(r#"{{"refundId": {id}, "oid": 1, "updateTime": 5}}"#);
        let raw = serde_json::value::RawValue::from_string(json).expect("raw");
        let refund = Refund::from_raw(&raw).expect("refund");
        store
            .upsert_refunds("s", &[refund], Source::Poll, 0)
            .await
            .expect("upsert");
    }

    fn refunds_of(counted: &(Counts, i64)) -> i64 {
        counted
            .0
            .iter()
            .find(|(shop, table, _)| shop == "s" && *table == "refunds")
            .map_or(0, |c| c.2)
    }

    /// A small mirror is counted at every read; a large one is served its last count until
    /// that is `COUNT_AGE_PER_COST` times as old as it took, then counted in the background
    /// while the read that noticed still gets the old count, with its time.
    #[tokio::test]
    async fn a_large_mirror_is_served_its_last_count_until_it_ages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        store
            .ensure_shop(&crate::store::ShopRow::new("s"))
            .await
            .expect("shop");
        let counts = Arc::new(RowCounts::default());
        let reads = Reads::new();
        add_refund(&store, 1).await;
        let first = counts.read(&reads, &store, 100).await.expect("counted");
        assert_eq!((refunds_of(&first), first.1), (1, 100));
        add_refund(&store, 2).await;
        let small = counts.read(&reads, &store, 200).await.expect("counted");
        assert_eq!(
            (refunds_of(&small), small.1),
            (2, 200),
            "small: counted again"
        );

        // The same mirror taken as large, its last count as if it had taken 50 ms.
        let counts = Arc::new(RowCounts {
            small: 0,
            ..RowCounts::default()
        });
        assert!(
            counts.read(&reads, &store, 250).await.is_none(),
            "not counted yet"
        );
        let wait_for_count = |at_ms: i64| {
            let counts = counts.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                while counts.lock().last.as_ref().is_none_or(|c| c.at_ms != at_ms) {
                    assert!(
                        Instant::now() < deadline,
                        "the background count never ended"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        wait_for_count(250).await;
        let set_last = |took: Duration, age: Duration| {
            let mut state = counts.lock();
            let last = state.last.as_mut().expect("a count");
            last.took = took;
            last.at = Instant::now() - age;
        };
        set_last(Duration::from_millis(50), Duration::ZERO);
        add_refund(&store, 3).await;
        let served = counts.read(&reads, &store, 300).await.expect("served");
        assert_eq!((refunds_of(&served), served.1), (2, 250), "young: served");
        // Older than 20 × 50 ms: served once more, and counted in the background.
        set_last(Duration::from_millis(50), Duration::from_secs(1));
        let noticed = counts.read(&reads, &store, 400).await.expect("served");
        assert_eq!((refunds_of(&noticed), noticed.1), (2, 250), "the old count");
        wait_for_count(400).await;
        set_last(Duration::from_millis(50), Duration::ZERO);
        let fresh = counts.read(&reads, &store, 500).await.expect("served");
        assert_eq!(
            (refunds_of(&fresh), fresh.1),
            (3, 400),
            "the new count, with its time"
        );
        assert_eq!(reads.failed(), 0);
        store.close().await;
    }
}
