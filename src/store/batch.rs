//! The version-guarded batch upsert every record table uses (I2, I4): one multi-row
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE excluded.<version> >= <table>.<version>` per chunk,
//! never one statement per row.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use super::StoreError;
use super::db::{Column, Kept, MAX_BINDS, Tx, Val, placeholders};

/// Declares a record type's columns: `$names`, the column names (the record's field names, in
/// this order), and `$vals`, which pushes a record's values in the same order. One list for
/// both, so a column can never receive its neighbour's value.
macro_rules! record_fields {
    ($names:ident, $vals:ident, $record:ty { $($field:ident),* $(,)? }) => {
        const $names: &[&str] = &[$(stringify!($field)),*];

        fn $vals<'a>(record: &'a $record, out: &mut Vec<Val<'a>>) {
            $(out.push(Val::from(&record.$field));)*
        }
    };
}
pub(crate) use record_fields;

/// How a record table is written. Its columns are `shop_id`, the record's `fields` (the id
/// first), `source`, `synced_at`, then the table's `extra` columns; every row's values come in
/// that order.
pub(crate) struct Table {
    pub name: &'static str,
    /// The record's fields, starting with its id (the second key column).
    pub fields: &'static [&'static str],
    /// Columns after `synced_at` that are not record fields.
    pub extra: &'static [&'static str],
    /// The version column of the guard.
    pub version: &'static str,
    /// Columns that keep their stored value when the new row has NULL there.
    pub keep_when_null: &'static [&'static str],
}

impl Table {
    /// The record's id column.
    pub(crate) fn id(&self) -> &'static str {
        self.fields.first().copied().unwrap_or("id")
    }

    /// Every column, in value order.
    pub(crate) fn columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once("shop_id")
            .chain(self.fields.iter().copied())
            .chain(["source", "synced_at"])
            .chain(self.extra.iter().copied())
    }

    fn width(&self) -> usize {
        self.fields.len() + self.extra.len() + 3
    }

    /// The statement for `rows` rows, returning the id of each row it inserted or replaced
    /// (a row whose stored version is newer is left alone and not returned).
    fn upsert_sql(&self, rows: usize) -> String {
        let width = self.width();
        let values: Vec<String> = (0..rows)
            .map(|r| format!("({})", placeholders(r * width + 1, width)))
            .collect();
        self.upsert_from(&format!("VALUES {}", values.join(", ")))
    }

    /// The same statement for Postgres, whose rows come as one array per column, `types`
    /// their array types in column order: `SELECT * FROM UNNEST($1::text[], $2::int8[], …)`.
    fn upsert_columns_sql(&self, types: &[&str]) -> String {
        let arrays: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("${}::{t}", i + 1))
            .collect();
        self.upsert_from(&format!("SELECT * FROM UNNEST({})", arrays.join(", ")))
    }

    /// `INSERT … <rows> ON CONFLICT … DO UPDATE … WHERE <version guard> RETURNING <id>`.
    fn upsert_from(&self, rows: &str) -> String {
        let id = self.id();
        let sets: Vec<String> = self
            .columns()
            .filter(|c| *c != "shop_id" && *c != id)
            .map(|c| match self.keep_when_null.contains(&c) {
                true => format!("{c} = COALESCE(excluded.{c}, {}.{c})", self.name),
                false => format!("{c} = excluded.{c}"),
            })
            .collect();
        format!(
            "INSERT INTO {table} ({columns}) {rows} \
             ON CONFLICT (shop_id, {id}) DO UPDATE SET {sets} \
             WHERE excluded.{v} >= {table}.{v} RETURNING {id}",
            table = self.name,
            columns = self.columns().collect::<Vec<_>>().join(", "),
            sets = sets.join(", "),
            v = self.version,
        )
    }

    /// The upsert for `rows` rows, built once per process (a table has a handful of row counts,
    /// see [`chunk_size`]).
    fn upsert_kept(&self, rows: usize) -> Kept {
        static KEPT: LazyLock<Mutex<HashMap<(&'static str, usize), Kept>>> =
            LazyLock::new(Mutex::default);
        let mut kept = KEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *kept
            .entry((self.name, rows))
            .or_insert_with(|| Kept::new(self.upsert_sql(rows)))
    }

    /// `SELECT <every column> FROM <table> WHERE shop_id = $1 ORDER BY <id>`.
    pub(crate) fn select_sql(&self) -> String {
        format!(
            "SELECT {} FROM {} WHERE shop_id = $1 ORDER BY {}",
            self.columns().collect::<Vec<_>>().join(", "),
            self.name,
            self.id()
        )
    }

    /// Upserts `rows` (each one value per column, keys distinct) in as few statements as the
    /// bind limit allows; returns the ids written, in no particular order.
    pub(crate) async fn upsert(
        &self,
        tx: &mut Tx,
        op: &'static str,
        rows: Vec<Vec<Val<'_>>>,
    ) -> Result<Vec<i64>, StoreError> {
        if tx.is_postgres() {
            return self.upsert_columns(tx, op, rows).await;
        }
        let per_statement = (MAX_BINDS / self.width()).clamp(1, MAX_ROWS_PER_STATEMENT);
        let mut written = Vec::with_capacity(rows.len());
        let mut left = rows.len();
        let mut rows = rows.into_iter();
        while left > 0 {
            let size = chunk_size(left, per_statement);
            left -= size;
            let chunk: Vec<Vec<Val<'_>>> = rows.by_ref().take(size).collect();
            debug_assert!(chunk.iter().all(|r| r.len() == self.width()));
            let sql = self.upsert_kept(chunk.len());
            let vals: Vec<Val<'_>> = chunk.into_iter().flatten().collect();
            let ids: Vec<(i64,)> = tx.fetch_all(op, sql, &vals).await?;
            written.extend(ids.into_iter().map(|r| r.0));
        }
        Ok(written)
    }

    /// [`Table::upsert`] on Postgres: every row in one statement, one array per column. A
    /// `VALUES` list of 256 rows binds 17,920 values, which the server takes one by one: the
    /// 200,000-order backfill spent 34 ms per 256 orders in that statement.
    async fn upsert_columns(
        &self,
        tx: &mut Tx,
        op: &'static str,
        rows: Vec<Vec<Val<'_>>>,
    ) -> Result<Vec<i64>, StoreError> {
        debug_assert!(rows.iter().all(|r| r.len() == self.width()));
        let columns = Column::of_rows(rows).ok_or_else(|| {
            StoreError::query(
                op,
                sqlx::Error::Protocol(format!(
                    "a row of {} has a value of another type",
                    self.name
                )),
            )
        })?;
        if columns.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<&str> = columns.iter().map(Column::sql_type).collect();
        let sql = self.upsert_columns_kept(&types);
        let ids: Vec<(i64,)> = tx.fetch_all_columns(op, sql, &columns).await?;
        Ok(ids.into_iter().map(|r| r.0).collect())
    }

    /// The Postgres upsert of [`Table::upsert_columns`], built once per process.
    fn upsert_columns_kept(&self, types: &[&str]) -> Kept {
        static KEPT: LazyLock<Mutex<HashMap<&'static str, Kept>>> = LazyLock::new(Mutex::default);
        let mut kept = KEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *kept
            .entry(self.name)
            .or_insert_with(|| Kept::new(self.upsert_columns_sql(types)))
    }
}

/// The most rows one upsert statement carries. Every statement stays prepared on each
/// connection that ran it (see `upsert_kept`), and its program grows with its rows: at 256 rows
/// of seventy columns a backfill's peak memory was a quarter higher, for no CPU saved once the
/// statements are no longer parsed again for every batch.
const MAX_ROWS_PER_STATEMENT: usize = 64;

/// The rows of the next statement when `left` rows are to be written and one statement holds
/// at most `most`: a few fixed sizes only, so the connection's cache of prepared statements
/// keeps the handful of statements a table needs instead of one per row count.
fn chunk_size(left: usize, most: usize) -> usize {
    if left >= most {
        return most;
    }
    [256, 64, 16, 4, 1]
        .into_iter()
        .find(|size| *size <= left && *size <= most)
        .unwrap_or(1)
}

/// One record per key, the one with the highest version (the later one on a tie), in key
/// order. Postgres refuses to touch a row twice in one statement, and a fixed order keeps two
/// writers from deadlocking on each other's rows.
pub(crate) fn newest<T>(
    records: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> i64,
    version: impl Fn(&T) -> i64,
) -> Vec<T> {
    let mut by_key: BTreeMap<i64, T> = BTreeMap::new();
    for record in records {
        let keep = by_key
            .get(&key(&record))
            .is_some_and(|kept| version(kept) > version(&record));
        if !keep {
            by_key.insert(key(&record), record);
        }
    }
    by_key.into_values().collect()
}

/// `ids` in chunks that fit one statement's bind limit beside `reserved` other values.
pub(crate) fn id_chunks(ids: &[i64], reserved: usize) -> impl Iterator<Item = &[i64]> {
    ids.chunks((MAX_BINDS - reserved).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_keeps_the_highest_version_in_key_order() {
        let records = [
            (2, 5, "a"),
            (1, 1, "b"),
            (2, 7, "c"),
            (2, 7, "d"),
            (2, 6, "e"),
        ];
        let kept: Vec<&str> = newest(&records, |r| r.0, |r| r.1)
            .into_iter()
            .map(|r| r.2)
            .collect();
        assert_eq!(kept, ["b", "d"]);
    }

    #[test]
    fn statements_come_in_a_few_sizes() {
        let sizes = |mut left: usize, most: usize| {
            let mut out = vec![];
            while left > 0 {
                let size = chunk_size(left, most);
                out.push(size);
                left -= size;
            }
            out
        };
        assert_eq!(sizes(1_000, 447), [447, 447, 64, 16, 16, 4, 4, 1, 1]);
        assert_eq!(sizes(50, 447), [16, 16, 16, 1, 1]);
        assert_eq!(sizes(3, 2), [2, 1]);
        assert_eq!(sizes(0, 10), Vec::<usize>::new());
    }

    #[test]
    fn upsert_sql_guards_on_the_version() {
        let table = Table {
            name: "t",
            fields: &["id", "v"],
            extra: &["x"],
            version: "v",
            keep_when_null: &["x"],
        };
        assert_eq!(
            table.upsert_sql(2),
            "INSERT INTO t (shop_id, id, v, source, synced_at, x) \
             VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12) \
             ON CONFLICT (shop_id, id) DO UPDATE SET v = excluded.v, source = excluded.source, \
             synced_at = excluded.synced_at, x = COALESCE(excluded.x, t.x) \
             WHERE excluded.v >= t.v RETURNING id"
        );
        assert_eq!(
            table.upsert_columns_sql(&["text[]", "int8[]", "int8[]", "text[]", "int8[]", "text[]"]),
            "INSERT INTO t (shop_id, id, v, source, synced_at, x) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::text[], $5::int8[], \
             $6::text[]) \
             ON CONFLICT (shop_id, id) DO UPDATE SET v = excluded.v, source = excluded.source, \
             synced_at = excluded.synced_at, x = COALESCE(excluded.x, t.x) \
             WHERE excluded.v >= t.v RETURNING id"
        );
        assert_eq!(
            table.select_sql(),
            "SELECT shop_id, id, v, source, synced_at, x FROM t WHERE shop_id = $1 ORDER BY id"
        );
    }
}
