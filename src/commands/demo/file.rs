//! The demo's database file: whether an earlier demo's file can be reused (same seed and size,
//! finished), and the notes kept beside it (`<db>.demo.json`) to rebuild the same world.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DemoOptions, FileUse, MAX_AGE_MS};
use crate::clock::wall_ms;

/// Kept beside the database (`<db>.demo.json`): enough to rebuild the same world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) seed: u64,
    pub(super) days: u32,
    pub(super) orders: usize,
    /// The instant the world was generated at.
    pub(super) origin_ms: i64,
    /// The simulated instant the last demo stopped the world at.
    pub(super) resume_ms: i64,
    /// False while a demo runs: a file left by one that did not finish is not reused.
    pub(super) complete: bool,
}

pub(super) fn meta_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}.demo.json", db.display()))
}

pub(super) fn read_meta(db: &Path) -> Option<Meta> {
    let text = std::fs::read_to_string(meta_path(db)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The simulated instant the last demo into `db` stopped its world at: the demo's "now" for
/// reading that database later (`status`).
pub fn world_stopped_at(db: &Path) -> Option<i64> {
    read_meta(db).map(|m| m.resume_ms)
}

pub(super) fn write_meta(db: &Path, meta: &Meta) -> anyhow::Result<()> {
    let path = meta_path(db);
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(meta)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// Decides between creating, reusing and recreating the file; removes it when recreating.
pub(super) fn prepare_file(opts: &DemoOptions) -> anyhow::Result<(FileUse, Meta)> {
    let now = wall_ms();
    let new_meta = Meta {
        seed: opts.seed,
        days: opts.days,
        orders: opts.orders,
        origin_ms: now,
        resume_ms: now,
        complete: false,
    };
    if !opts.db.exists() {
        let _ = std::fs::remove_file(meta_path(&opts.db));
        return Ok((FileUse::Created, new_meta));
    }
    let Some(old) = read_meta(&opts.db) else {
        anyhow::bail!(
            "{} exists but was not made by `kwaishop-sync demo` (there is no {} beside it); \
             it is left alone: pass --db to use another file, or remove it yourself",
            opts.db.display(),
            meta_path(&opts.db).display()
        );
    };
    let why = if opts.fresh {
        Some("--fresh".to_string())
    } else if (old.seed, old.days, old.orders) != (opts.seed, opts.days, opts.orders) {
        Some(format!(
            "it held another world (seed {}, {} days, {} orders)",
            old.seed, old.days, old.orders
        ))
    } else if !old.complete {
        Some("the demo that made it did not finish".to_string())
    } else if old.resume_ms - old.origin_ms > MAX_AGE_MS {
        Some("its world is older than 60 simulated days".to_string())
    } else {
        None
    };
    match why {
        None => Ok((FileUse::Reused, old)),
        Some(why) => {
            remove_db(&opts.db)?;
            let _ = std::fs::remove_file(meta_path(&opts.db));
            Ok((FileUse::Recreated(why), new_meta))
        }
    }
}

pub(super) fn remove_db(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}
