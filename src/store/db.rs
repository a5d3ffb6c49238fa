//! The one place that talks to either backend: bound values, statements, the pool and write
//! transactions. Everything above it writes SQL once, with numbered `$n` placeholders (which
//! SQLite reads too; built batch statements reach it with plain `?`), and a list of [`Val`]s.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use super::StoreError;
use super::sqlite::BUSY_TIMEOUT;

/// Reads a struct from a row of either backend, column by field name: `from_row!(Row { a, b as
/// String })` decodes `a` as its own type and `b` as a `String` turned into the field's type by
/// `TryFrom`. What `#[derive(sqlx::FromRow)]` does for these few structs, without the derive's
/// proc-macro, which builds both database drivers a second time. Every field must be listed:
/// the struct literal refuses a missing one.
macro_rules! from_row {
    ($ty:ident { $($field:ident $(as $via:ty)?),* $(,)? }) => {
        $crate::store::db::from_row!(@impl sqlx::sqlite::SqliteRow, $ty { $($field $(as $via)?),* });
        $crate::store::db::from_row!(@impl sqlx::postgres::PgRow, $ty { $($field $(as $via)?),* });
    };
    (@impl $row:ty, $ty:ident { $($field:ident $(as $via:ty)?),* }) => {
        impl<'r> sqlx::FromRow<'r, $row> for $ty {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self {
                    $($field: $crate::store::db::from_row!(@get row, $field $(, $via)?),)*
                })
            }
        }
    };
    (@get $row:ident, $field:ident) => {
        $row.try_get(stringify!($field))?
    };
    (@get $row:ident, $field:ident, $via:ty) => {{
        let raw: $via = $row.try_get(stringify!($field))?;
        raw.try_into()
            .map_err(|e| sqlx::Error::ColumnDecode {
                index: stringify!($field).to_string(),
                source: Box::new(e),
            })?
    }};
}
pub(crate) use from_row;

mod val;
pub(crate) use val::Val;

/// A statement's text. Fixed SQL (`&'static str`) stays prepared on the connection; SQL built
/// for one batch (`String`) is prepared once and dropped, so batches of every size do not
/// crowd the statement cache.
pub(crate) struct Stmt {
    sql: Cow<'static, str>,
    /// The same statement with `?` placeholders for SQLite, when it was built and kept.
    sqlite: Option<&'static str>,
    persistent: bool,
}

impl From<&'static str> for Stmt {
    fn from(sql: &'static str) -> Self {
        Stmt {
            sql: Cow::Borrowed(sql),
            sqlite: None,
            persistent: true,
        }
    }
}

impl From<String> for Stmt {
    fn from(sql: String) -> Self {
        Stmt {
            sql: Cow::Owned(sql),
            sqlite: None,
            persistent: false,
        }
    }
}

/// A built statement kept for the life of the process: its text for Postgres (`$n`) and for
/// SQLite (`?`), made once. Only for the few statements a process builds again and again (a
/// table's upsert in each of its row counts): they stay prepared on each connection, like fixed
/// SQL, instead of being written, parsed and planned for every batch.
#[derive(Clone, Copy)]
pub(crate) struct Kept {
    sql: &'static str,
    sqlite: &'static str,
}

impl Kept {
    pub(crate) fn new(sql: String) -> Kept {
        let sqlite = positional(&sql);
        Kept {
            sql: Box::leak(sql.into_boxed_str()),
            sqlite: Box::leak(sqlite.into_boxed_str()),
        }
    }
}

impl From<Kept> for Stmt {
    fn from(kept: Kept) -> Self {
        Stmt {
            sql: Cow::Borrowed(kept.sql),
            sqlite: Some(kept.sqlite),
            persistent: true,
        }
    }
}

impl Stmt {
    fn text(self) -> AssertSqlSafe<Cow<'static, str>> {
        // Safe: statement text is assembled only from this module's constant table and column
        // names and `$n` placeholders; every value is bound.
        AssertSqlSafe(self.sql)
    }

    /// The text for SQLite. A built statement's `$n` become plain `?`: SQLite keeps named
    /// parameters in a list it scans for each one, which makes a 30 000-value batch quadratic
    /// (seconds per statement), while `?` is numbered as it is read. Built statements therefore
    /// use each `$n` once, in increasing order.
    fn sqlite_text(self) -> AssertSqlSafe<Cow<'static, str>> {
        match (self.sqlite, self.persistent) {
            (Some(sqlite), _) => AssertSqlSafe(Cow::Borrowed(sqlite)),
            (None, true) => self.text(),
            (None, false) => AssertSqlSafe(Cow::Owned(positional(&self.sql))),
        }
    }
}

/// `sql` with `$1, $2, …` (each once, in order) replaced by `?`.
fn positional(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut expected = 1;
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.next_if(char::is_ascii_digit) {
            digits.push(d);
        }
        debug_assert_eq!(
            digits,
            expected.to_string(),
            "placeholders out of order in {sql}"
        );
        expected += 1;
        out.push('?');
    }
    out
}

/// A query (`sqlx::query` or `query_as`) with `vals` bound in order.
macro_rules! bound {
    ($query:expr, $vals:expr) => {{
        let mut query = $query;
        for val in $vals {
            query = match val {
                Val::Int(v) => query.bind(*v),
                Val::Text(v) => query.bind(v.as_deref()),
            };
        }
        query
    }};
}

/// A row type both backends can decode.
pub(crate) trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The pool of one backend.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool, Writers),
    Postgres(PgPool),
}

/// This process's SQLite writers, served in arrival order. SQLite lets one writer in and has
/// the others poll with growing sleeps (1, 2, 5 … 100 ms), which no waiter ever wins against
/// a writer that commits back to back: the push worker's completions starved the receiver,
/// whose acknowledgement waits on its commit, for 100–250 ms. Queued here first, writers take
/// turns; another process (the CLI) still meets SQLite's busy timeout.
///
/// Every write transaction runs on one connection of its own (`pool`, when set): SQLite keeps a
/// page cache per connection and each connection works in its own thread, whose `malloc` arena
/// keeps what a batch's pages took. Writes spread over the pool's four connections grew four
/// arenas and read the same index pages into four caches: a 1,000,000-order backfill peaked at
/// 114 MiB, and at 81 MiB with glibc held to two arenas.
#[derive(Clone, Default)]
pub(crate) struct Writers {
    turn: Arc<tokio::sync::Mutex<()>>,
    pool: Option<SqlitePool>,
}

impl Writers {
    /// Writers whose transactions run on `pool` (a pool of one connection).
    pub(crate) fn on(pool: SqlitePool) -> Self {
        Writers {
            turn: Arc::default(),
            pool: Some(pool),
        }
    }

    /// The writers' own connection, to close with the store.
    pub(crate) fn pool(&self) -> Option<&SqlitePool> {
        self.pool.as_ref()
    }

    /// Waits for this writer's turn, as long as SQLite would wait for its lock.
    async fn turn(&self, op: &'static str) -> Result<WriterTurn, StoreError> {
        tokio::time::timeout(BUSY_TIMEOUT, self.turn.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Unavailable {
                op,
                source: sqlx::Error::PoolTimedOut,
            })
    }
}

/// Held by an open SQLite write transaction: the next writer's turn starts when it is dropped.
type WriterTurn = tokio::sync::OwnedMutexGuard<()>;

impl Pool {
    /// Reads every row of a query.
    pub(crate) async fn fetch_all<T: AnyRow>(
        &self,
        op: &'static str,
        stmt: impl Into<Stmt>,
        vals: &[Val<'_>],
    ) -> Result<Vec<T>, StoreError> {
        let stmt = stmt.into();
        let persistent = stmt.persistent;
        let rows = match self {
            Pool::Sqlite(pool, _) => {
                bound!(sqlx::query_as::<_, T>(stmt.sqlite_text()), vals)
                    .persistent(persistent)
                    .fetch_all(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                bound!(sqlx::query_as::<_, T>(stmt.text()), vals)
                    .persistent(persistent)
                    .fetch_all(pool)
                    .await
            }
        };
        rows.map_err(|e| StoreError::query(op, e))
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken
    /// up front (waiting up to the busy timeout), so a transaction that read first can never
    /// fail to upgrade to a writer half-way.
    pub(crate) async fn write_tx(&self, op: &'static str) -> Result<Tx, StoreError> {
        let tx = match self {
            Pool::Sqlite(pool, writers) => {
                let turn = writers.turn(op).await?;
                let pool = writers.pool.as_ref().unwrap_or(pool);
                let tx = pool.begin_with("BEGIN IMMEDIATE").await;
                tx.map(|tx| Tx::Sqlite(tx, turn))
            }
            Pool::Postgres(pool) => pool.begin().await.map(Tx::Postgres),
        };
        tx.map_err(|e| StoreError::query(op, e))
    }
}

/// An open write transaction; dropped without [`Tx::commit`], it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>, WriterTurn),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Which backend the transaction runs on.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// Runs one statement; returns the rows it changed.
    pub(crate) async fn execute(
        &mut self,
        op: &'static str,
        stmt: impl Into<Stmt>,
        vals: &[Val<'_>],
    ) -> Result<u64, StoreError> {
        let stmt = stmt.into();
        let persistent = stmt.persistent;
        let done = match self {
            Tx::Sqlite(tx, _) => bound!(sqlx::query(stmt.sqlite_text()), vals)
                .persistent(persistent)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
            Tx::Postgres(tx) => bound!(sqlx::query(stmt.text()), vals)
                .persistent(persistent)
                .execute(&mut **tx)
                .await
                .map(|r| r.rows_affected()),
        };
        done.map_err(|e| StoreError::query(op, e))
    }

    /// Reads every row of a query (or of a statement's `RETURNING`).
    pub(crate) async fn fetch_all<T: AnyRow>(
        &mut self,
        op: &'static str,
        stmt: impl Into<Stmt>,
        vals: &[Val<'_>],
    ) -> Result<Vec<T>, StoreError> {
        let stmt = stmt.into();
        let persistent = stmt.persistent;
        let rows = match self {
            Tx::Sqlite(tx, _) => {
                bound!(sqlx::query_as::<_, T>(stmt.sqlite_text()), vals)
                    .persistent(persistent)
                    .fetch_all(&mut **tx)
                    .await
            }
            Tx::Postgres(tx) => {
                bound!(sqlx::query_as::<_, T>(stmt.text()), vals)
                    .persistent(persistent)
                    .fetch_all(&mut **tx)
                    .await
            }
        };
        rows.map_err(|e| StoreError::query(op, e))
    }

    /// Reads every row of a Postgres statement whose parameters are whole columns (arrays), as
    /// `INSERT … SELECT * FROM UNNEST($1::int8[], …)`: one statement and 70 parameters for a
    /// batch of any size, where a `VALUES` list binds every value of every row on its own.
    pub(crate) async fn fetch_all_columns<T: AnyRow>(
        &mut self,
        op: &'static str,
        stmt: impl Into<Stmt>,
        columns: &[Column<'_>],
    ) -> Result<Vec<T>, StoreError> {
        let Tx::Postgres(tx) = self else {
            return Err(StoreError::query(
                op,
                sqlx::Error::Protocol("column arrays are bound on Postgres only".into()),
            ));
        };
        let mut query = sqlx::query_as::<_, T>(stmt.into().text());
        for column in columns {
            query = match column {
                Column::Int(v) => query.bind(v.as_slice()),
                Column::Text(v) => query.bind(v.iter().map(|t| t.as_deref()).collect::<Vec<_>>()),
            };
        }
        query
            .fetch_all(&mut **tx)
            .await
            .map_err(|e| StoreError::query(op, e))
    }

    /// Commits; on error nothing of the transaction is kept.
    pub(crate) async fn commit(self, op: &'static str) -> Result<(), StoreError> {
        let done = match self {
            // The turn passes on once the commit is done.
            Tx::Sqlite(tx, _turn) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        };
        done.map_err(|e| StoreError::query(op, e))
    }
}

/// One column of a batch, bound as one Postgres array (see [`Tx::fetch_all_columns`]).
pub(crate) enum Column<'a> {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<Cow<'a, str>>>),
}

impl<'a> Column<'a> {
    /// The batch's rows (each one value per column, all rows alike) as its columns; `None`
    /// when a row's value has another type than the first row's in the same column.
    pub(crate) fn of_rows(rows: Vec<Vec<Val<'a>>>) -> Option<Vec<Column<'a>>> {
        let mut columns: Vec<Column<'a>> = match rows.first() {
            None => return Some(Vec::new()),
            Some(first) => first
                .iter()
                .map(|v| match v {
                    Val::Int(_) => Column::Int(Vec::with_capacity(rows.len())),
                    Val::Text(_) => Column::Text(Vec::with_capacity(rows.len())),
                })
                .collect(),
        };
        for row in rows {
            for (column, val) in columns.iter_mut().zip(row) {
                match (column, val) {
                    (Column::Int(c), Val::Int(v)) => c.push(v),
                    (Column::Text(c), Val::Text(v)) => c.push(v),
                    _ => return None,
                }
            }
        }
        Some(columns)
    }

    /// The array type of the column, as a statement casts its parameter.
    pub(crate) fn sql_type(&self) -> &'static str {
        match self {
            Column::Int(_) => "int8[]",
            Column::Text(_) => "text[]",
        }
    }
}

/// Placeholders `$from, $from+1, …` for `n` values, comma-separated.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The most values one statement binds. SQLite allows 32 766, Postgres 65 535; staying under
/// both keeps one batch size for the two backends.
pub(crate) const MAX_BINDS: usize = 30_000;

#[cfg(test)]
mod tests;
