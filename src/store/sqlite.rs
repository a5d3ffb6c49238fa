//! Opening the SQLite backend: the file (created owner-only, since it holds the shop's tokens),
//! WAL with full sync, a busy timeout and foreign keys, on a small pool.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;

/// How long a writer waits for another to finish before the statement fails as busy.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Readers run in parallel under WAL; writers take turns (`BEGIN IMMEDIATE`).
const MAX_CONNECTIONS: u32 = 4;

/// Opens (creating if missing) the database file at `path` and returns its pool.
pub(crate) async fn connect(path: &Path) -> Result<SqlitePool, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        path: path.display().to_string(),
        reason,
    };
    create_private(path).map_err(|e| open_error(e.to_string()))?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed page survives a power cut, not only a crash (I3 across reboots).
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        // What a backfill writes (BENCHMARKS.md, measured with strace per file). An order row
        // with its raw JSON is 3–4 KB: two fit a page of 8 KiB, not one of 4 KiB (a new file
        // only; an existing one keeps its page size).
        .page_size(8192)
        // A batch of pages dirties more pages than the default cache holds; spilling them to
        // the WAL mid-transaction wrote each row's page twice.
        .pragma("cache_spill", "OFF")
        // Multi-row upserts keep a statement journal; on disk it was as many bytes again as the
        // database (in temporary files), in memory it is a few pages per statement.
        .pragma("temp_store", "MEMORY")
        // The index pages a batch touches are copied into the database at each checkpoint:
        // checkpoints every 32 MiB of WAL rather than every 8 MiB copy them a quarter as often.
        // The WAL file is cut back to 64 MiB after a checkpoint.
        .pragma("wal_autocheckpoint", "4096")
        .pragma("journal_size_limit", "67108864");
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(BUSY_TIMEOUT * 6)
        .connect_with(options)
        .await
        .map_err(|e| open_error(e.to_string()))?;
    // SQLite gives the WAL and shared-memory files the database file's mode, less the umask;
    // made private here whatever the umask, or whoever created them first.
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            make_private(&side).map_err(|e| open_error(format!("{}: {e}", side.display())))?;
        }
    }
    Ok(pool)
}

/// Sets the file's mode to 0600 (owner read and write only).
pub(crate) fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates the file with mode 0600 (whatever the umask) if it does not exist; an existing
/// file keeps the mode its owner gave it.
fn create_private(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)?;
    make_private(path)
}
