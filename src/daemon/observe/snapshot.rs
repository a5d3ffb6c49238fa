//! What one scrape (or one view of the status page) reads from the database: every read within
//! one deadline, each failure counted and the scrape carried on without it.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use tokio::time::Instant;
use tracing::warn;

use super::ObserveSources;
use crate::clock::beijing_day;
use crate::store::{QueueStats, ShopRow, StoreError, Stream, StreamState};

/// All database reads of one scrape finish within this, or are left out: Prometheus gives up
/// on a scrape after 10 s by default, and a partial answer beats none.
const READ_BUDGET: Duration = Duration::from_secs(5);
/// Shops read at once: the SQLite pool has only a few connections, and the daemon needs them.
const SHOPS_AT_ONCE: usize = 2;
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
    let shops = reads.read("shops", store.shops()).await;
    let states = reads.read("stream states", store.all_states()).await;
    let shops_and_states_read = shops.is_some() && states.is_some();
    let (shops, states) = (shops.unwrap_or_default(), states.unwrap_or_default());
    let queue = reads.read("queue", store.queue_stats()).await;
    let quarantine = reads.read("quarantine", store.quarantine_counts()).await;
    let ids = shop_ids(&shops, &states);
    let figures = stream::iter(ids)
        .map(|shop_id| read_shop(reads, sources, shop_id, beijing_day(now_ms)))
        .buffered(SHOPS_AT_ONCE)
        .collect()
        .await;
    let failed_reads = reads.failed();
    Snapshot {
        now_ms,
        shops,
        states,
        shops_and_states_read,
        figures,
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

async fn read_shop(
    reads: &Reads,
    sources: &ObserveSources,
    shop_id: String,
    day: i64,
) -> ShopFigures {
    let store = &sources.store;
    let mut rows = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        if let Some(n) = reads
            .read("row count", store.count_rows(table, &shop_id))
            .await
        {
            rows.push((table, n));
        }
    }
    let calls_today = reads.read("calls", store.calls_on(&shop_id, day)).await;
    let token_expiry = reads
        .read("token expiry", store.load_tokens(&shop_id))
        .await
        .flatten()
        .map(|t| (t.access_expires_at, t.refresh_expires_at));
    ShopFigures {
        shop_id,
        rows,
        calls_today,
        token_expiry,
    }
}
