//! The store: the schema (embedded migrations in `migrations/sqlite` and `migrations/postgres`)
//! and one API over both backends, chosen by the URL's scheme.
//!
//! What it guarantees: records are written by version-guarded batch upserts, so no path
//! replaces a row with an older `update_time` (I4) and each (shop, id) has one row (I2); a page's
//! rows and its stream state commit in one transaction (I3); the daily call counter is checked
//! and counted atomically (I7); no error shows a password (I8).
//!
//! Files: `url` names the database, `db` runs statements on either backend, `sqlite`/`postgres`
//! open them, `records`, `items` and `batch` write the mirror, `rows` reads it back, `windows`
//! and `state` hold checkpoints, window pages and the run log, `resync` the resync requests,
//! `events` the push queue, `quarantine` the records set aside, `leases` the instances and their
//! leases, `usage` the daily call counter, `api_calls` the hourly answers per method and
//! outcome, `reports` the reporting views, `words` the enums stored as words, `shops` and
//! `tokens` the rest.

mod api_calls;
mod batch;
mod db;
mod error;
mod events;
mod items;
mod leases;
mod postgres;
mod quarantine;
mod records;
mod reports;
mod resync;
mod rows;
mod shops;
mod sqlite;
mod state;
mod tokens;
mod url;
mod usage;
mod windows;
pub(crate) mod words;

use std::fmt;
use std::str::FromStr;

pub use api_calls::ApiCallRow;
pub use error::{StoreError, redact_url};
pub use events::{
    ClaimedEvent, EventKind, EventOutcome, EventRow, EventStatus, NewEvent, QueueStats,
    UnknownEventKind, UnknownEventStatus,
};
pub use leases::{InstanceRow, LeaseFence, LeaseRow};
pub use quarantine::QuarantineRow;
pub use reports::{DailySales, ItemSales, RefundSummary, ReportFilter, ShopTotals};
pub use resync::ResyncRequest;
pub use rows::{ItemRow, OrderRow, RefundRow, SkuRow};
pub use shops::{ShopRow, ShopStatus};
pub(crate) use sqlite::make_private;
pub use state::{FinishedRun, RunRow, StreamState};
pub use url::DatabaseUrl;
pub use windows::{OpenPages, WindowPage, WindowRow, WrittenPages};
pub use words::{ResyncKind, ResyncStatus, RunEnd, RunKind, UnknownWord};

use db::{Pool, Val, Writers};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A synchronised stream of one shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Orders,
    Refunds,
    Items,
}

impl Stream {
    /// Every stream, in a stable order.
    pub const ALL: [Stream; 3] = [Stream::Orders, Stream::Refunds, Stream::Items];

    /// The name stored in the database and used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Orders => "orders",
            Stream::Refunds => "refunds",
            Stream::Items => "items",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Stream {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A name that is not a [`Stream`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stream {0:?} (expected orders, refunds or items)")]
pub struct UnknownStream(pub String);

impl FromStr for Stream {
    type Err = UnknownStream;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stream::ALL
            .into_iter()
            .find(|stream| stream.as_str() == s)
            .ok_or_else(|| UnknownStream(s.to_string()))
    }
}

/// Which path wrote a row (its `source` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The pollers' list pages.
    Poll,
    /// A push message's payload.
    Push,
    /// A detail API fetched after a push.
    Detail,
    /// A resync's re-read.
    Resync,
}

impl Source {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Poll => "poll",
            Source::Push => "push",
            Source::Detail => "detail",
            Source::Resync => "resync",
        }
    }
}

/// A stored `source` that is none of [`Source`]'s names.
#[derive(Debug, thiserror::Error)]
#[error("unknown source {0:?}")]
pub struct UnknownSource(String);

impl TryFrom<String> for Source {
    type Error = UnknownSource;

    fn try_from(s: String) -> Result<Self, UnknownSource> {
        [Source::Poll, Source::Push, Source::Detail, Source::Resync]
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or(UnknownSource(s))
    }
}

impl TryFrom<String> for Stream {
    type Error = UnknownStream;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What a page commit or upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// Records handed in, gift orders and SKUs included.
    pub received: usize,
    /// Rows inserted, or replaced by a version at least as new (gift and SKU rows included).
    pub written: u64,
}

impl std::ops::AddAssign for PageOutcome {
    fn add_assign(&mut self, other: Self) {
        self.received += other.received;
        self.written += other.written;
    }
}

/// The mirror database. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// The (shop, stream) lease this store's stream writes are fenced by ([`Store::fenced`]).
    fence: Option<std::sync::Arc<leases::LeaseFence>>,
}

// Hand-written: the pools' own Debug prints their connect options, password included (I8).
impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// The migrations of each backend, embedded by `build.rs` from `migrations/<backend>/`.
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// A migrator over embedded migrations, as sqlx's `migrate!` builds it: the same versions,
/// descriptions and checksums (SHA-384 of each file), so databases migrated by either agree.
fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr as _;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        list.iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    std::borrow::Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

static SQLITE_MIGRATIONS: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| migrator(embedded::SQLITE));
static POSTGRES_MIGRATIONS: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(|| migrator(embedded::POSTGRES));

/// A pool of `connections` on the same SQLite file with `pool`'s options, opened as needed.
fn sqlite_pool_beside(pool: &sqlx::SqlitePool, connections: u32) -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(pool.options().get_acquire_timeout())
        .connect_lazy_with((*pool.connect_options()).clone())
}

impl Store {
    /// Opens the database named by `url` ([`DatabaseUrl::parse`]). Does not migrate.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::open(&DatabaseUrl::parse(url)?).await
    }

    /// Opens the database: a SQLite file (created, mode 0600, if missing) or a Postgres
    /// server. Does not migrate.
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let pool = match url {
            DatabaseUrl::Sqlite(path) => {
                let pool = sqlite::connect(path).await?;
                let writer = sqlite_pool_beside(&pool, 1);
                Pool::Sqlite(pool, Writers::on(writer))
            }
            DatabaseUrl::Postgres(url) => Pool::Postgres(postgres::connect(url).await?),
        };
        Ok(Store { pool, fence: None })
    }

    /// A store of its own on the same database, for reads that must not queue behind the
    /// sync's writes (the status page, `/metrics`): a pool of two connections with this one's
    /// options, opened as they are needed. Under WAL (SQLite) and MVCC (Postgres) its reads do
    /// not wait for writers; it never writes.
    pub fn for_reading(&self) -> Store {
        const READERS: u32 = 2;
        let pool = match &self.pool {
            Pool::Sqlite(pool, _) => {
                Pool::Sqlite(sqlite_pool_beside(pool, READERS), Writers::default())
            }
            Pool::Postgres(pool) => Pool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(READERS)
                    .acquire_timeout(pool.options().get_acquire_timeout())
                    .connect_lazy_with((*pool.connect_options()).clone()),
            ),
        };
        Store { pool, fence: None }
    }

    /// Applies the backend's embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let done = match &self.pool {
            Pool::Sqlite(pool, _) => SQLITE_MIGRATIONS.run(pool).await,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        };
        done.map_err(StoreError::Migrate)
    }

    /// The backend behind this store.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(..) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool
            .fetch_all::<(i32,)>("checking the database", "SELECT 1", &[])
            .await
            .map(drop)
    }

    /// Closes the pool, waiting for connections in use to be returned. Later calls fail with
    /// [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool, writers) => {
                if let Some(writer) = writers.pool() {
                    writer.close().await;
                }
                pool.close().await;
            }
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// Rows per shop of each mirror table (`orders`, `refunds`, `items`, `skus`; soft-deleted
    /// items and SKUs included), one statement per table whatever the number of shops; a shop
    /// without rows in a table is not listed for it.
    pub async fn row_counts(&self) -> Result<Vec<(String, &'static str, i64)>, StoreError> {
        const TABLES: [(&str, &str); 4] = [
            (
                "orders",
                "SELECT shop_id, COUNT(*) FROM orders GROUP BY shop_id",
            ),
            (
                "refunds",
                "SELECT shop_id, COUNT(*) FROM refunds GROUP BY shop_id",
            ),
            (
                "items",
                "SELECT shop_id, COUNT(*) FROM items GROUP BY shop_id",
            ),
            (
                "skus",
                "SELECT shop_id, COUNT(*) FROM skus GROUP BY shop_id",
            ),
        ];
        let mut out = Vec::new();
        for (table, sql) in TABLES {
            let rows: Vec<(String, i64)> = self.pool.fetch_all("counting rows", sql, &[]).await?;
            out.extend(rows.into_iter().map(|(shop, n)| (shop, table, n)));
        }
        Ok(out)
    }

    /// About how many bytes the mirror takes, read without scanning it: the whole file on
    /// SQLite, the four mirror tables with their indexes on Postgres. It tells a mirror whose
    /// rows can be counted at once from one where counting is a long scan.
    pub async fn mirror_bytes(&self) -> Result<i64, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            }
            Backend::Postgres => {
                "SELECT CAST(pg_total_relation_size('orders') + pg_total_relation_size('refunds') \
                 + pg_total_relation_size('items') + pg_total_relation_size('skus') AS BIGINT)"
            }
        };
        let rows: Vec<(i64,)> = self
            .pool
            .fetch_all("measuring the mirror", sql, &[])
            .await?;
        Ok(rows.first().map_or(0, |r| r.0))
    }

    /// Rows of `table` (`orders`, `refunds`, `items` or `skus`) for the shop, soft-deleted
    /// items and SKUs included.
    pub async fn count_rows(&self, table: &str, shop_id: &str) -> Result<i64, StoreError> {
        let sql = match table {
            "orders" => "SELECT COUNT(*) FROM orders WHERE shop_id = $1",
            "refunds" => "SELECT COUNT(*) FROM refunds WHERE shop_id = $1",
            "items" => "SELECT COUNT(*) FROM items WHERE shop_id = $1",
            "skus" => "SELECT COUNT(*) FROM skus WHERE shop_id = $1",
            other => {
                return Err(StoreError::Invalid(format!(
                    "count_rows: {other:?} is not orders, refunds, items or skus"
                )));
            }
        };
        let rows: Vec<(i64,)> = self
            .pool
            .fetch_all("counting rows", sql, &[Val::from(shop_id)])
            .await?;
        Ok(rows.first().map_or(0, |r| r.0))
    }
}

/// Compile-time checks: every store future can be spawned (the sync engine and the push worker
/// run them on tokio tasks).
#[cfg(test)]
mod spawnable {
    use super::*;
    use crate::api::records::{Item, Order, Refund};

    fn spawn<F: std::future::Future + Send + 'static>(_: F) {}

    #[allow(dead_code)]
    fn every_future_is_send(store: Store) {
        let s = store.clone();
        spawn(async move {
            let shop = String::from("s");
            let state = StreamState::new(&shop, Stream::Orders);
            let orders: Vec<Order> = Vec::new();
            let _ = s
                .commit_order_page(&shop, &orders, Source::Poll, &state, 0, &[])
                .await;
            let _ = s.upsert_orders(&shop, &orders, Source::Poll, 0).await;
        });
        let s = store.clone();
        spawn(async move {
            let shop = String::from("s");
            let state = StreamState::new(&shop, Stream::Refunds);
            let refunds: Vec<Refund> = Vec::new();
            let _ = s
                .commit_refund_page(&shop, &refunds, Source::Poll, &state, 0, &[])
                .await;
            let _ = s.upsert_refunds(&shop, &refunds, Source::Poll, 0).await;
        });
        let s = store.clone();
        spawn(async move {
            let shop = String::from("s");
            let state = StreamState::new(&shop, Stream::Items);
            let items: Vec<Item> = Vec::new();
            let _ = s.commit_item_page(&shop, &items, 1, &state, 0, &[]).await;
            let _ = s.upsert_items(&shop, &items, Source::Poll, 0).await;
            let _ = s.unseen_items(&shop, 1).await;
            let _ = s.finish_item_scan(&shop, 1, &state, 0).await;
            let _ = s.delete_item(&shop, 1, 0).await;
        });
        let s = store.clone();
        spawn(async move {
            let shop = String::from("s");
            let state = StreamState::new(&shop, Stream::Items);
            let _ = s.load_state(&shop, Stream::Items).await;
            let _ = s.save_state(&state).await;
            let _ = s.all_states().await;
            let _ = s.start_run(&shop, Stream::Items, RunKind::Poll, 0).await;
            let end = FinishedRun {
                finished_at_ms: 0,
                end: RunEnd::Failed,
                pages: 0,
                rows: 0,
                calls: 0,
                error: Some(shop.clone()),
            };
            let _ = s.finish_run(1, &end).await;
            let _ = s.recent_runs(Some(&shop), 1).await;
            let _ = s.ensure_shop(&ShopRow::new(&shop)).await;
            let _ = s.shops().await;
            let _ = s
                .set_shop_status(&shop, ShopStatus::Active, Some(&shop))
                .await;
        });
        let s = store.clone();
        spawn(async move {
            let shop = String::from("s");
            let _ = s.order_rows(&shop).await;
            let _ = s.refund_rows(&shop).await;
            let _ = s.item_rows(&shop).await;
            let _ = s.sku_rows(&shop).await;
            let _ = s.count_rows("orders", &shop).await;
            let _ = s
                .count_call(&shop, 1, crate::api::Method::ItemList, None)
                .await;
            let _ = s.load_tokens(&shop).await;
            let _ = s.add_api_calls(&[]).await;
            let _ = s.api_calls_since(Some(&shop), 0).await;
            let _ = s.prune_api_calls(0).await;
            let _ = s.ping().await;
            let _ = s.migrate().await;
        });
    }
}
