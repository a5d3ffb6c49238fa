//! One daemon per SQLite file (an exclusive lock file beside it), and the pid file that
//! `kwaishop-sync resync` reads to wake the running daemon.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::store::DatabaseUrl;

/// Errors of taking the lock or writing the pid file.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another kwaishop-sync is already running on {db} (its lock file {lock} is held{holder}); {hint}"
    )]
    Held {
        db: String,
        lock: String,
        holder: String,
        hint: String,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Who takes a SQLite file's lock, for the message that refuses a second one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// `kwaishop-sync run`.
    Daemon,
    /// A one-off command that calls the platform (`sync --once`, `quarantine retry`).
    OneOff(&'static str),
}

/// The exclusive lock on a SQLite file (its `.lock` file), released when dropped.
#[derive(Debug)]
pub struct FileLock(#[allow(dead_code)] Flock<File>);

/// Held for the daemon's lifetime; dropping it releases the lock and removes the pid file.
#[derive(Debug)]
pub struct InstanceLock {
    _lock: Option<FileLock>,
    pid_file: PathBuf,
    /// The instance id of a daemon of this state directory that died without cleaning up (its
    /// pid file stayed and names a process that no longer runs): the caller releases what it
    /// held at once, instead of waiting for its leases and heartbeat to lapse.
    pub dead_predecessor: Option<String>,
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The pid file's path in the state directory.
pub fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("kwaishop-sync.pid")
}

/// Takes the SQLite lock (when the database is a SQLite file) and writes the pid file.
pub fn acquire(
    database_url: &DatabaseUrl,
    state_dir: &Path,
    instance_id: &str,
) -> Result<InstanceLock, LockError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| LockError::Io { path, source }
    };
    let lock = lock_sqlite(database_url, Holder::Daemon)?;
    std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
    let pid_file = pid_file(state_dir);
    let dead_predecessor = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| dead_instance(&text));
    let text = format!("{}\n{instance_id}\n", std::process::id());
    std::fs::write(&pid_file, text).map_err(io(&pid_file))?;
    Ok(InstanceLock {
        _lock: lock,
        pid_file,
        dead_predecessor,
    })
}

/// Takes the exclusive lock of the SQLite file of `database_url` (none for Postgres), or says
/// who holds it.
pub fn lock_sqlite(database_url: &DatabaseUrl, who: Holder) -> Result<Option<FileLock>, LockError> {
    let Some(db) = database_url.sqlite_file() else {
        return Ok(None);
    };
    let lock_path = PathBuf::from(format!("{}.lock", db.display()));
    let io = |source| LockError::Io {
        path: lock_path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&lock_path).map_err(io)?;
    // Private whatever the umask, and whoever created it first.
    crate::store::make_private(&lock_path).map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            let _ = locked.set_len(0);
            let _ = writeln!(*locked, "{}", std::process::id());
            Ok(Some(FileLock(locked)))
        }
        Err(_) => {
            let holder = std::fs::read_to_string(&lock_path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|pid| format!(" by pid {pid}"))
                .unwrap_or_default();
            let hint = match who {
                Holder::Daemon => {
                    "one daemon per SQLite file — use Postgres to run several".to_string()
                }
                Holder::OneOff(command) => format!(
                    "a daemon keeps this file in sync by itself: use `kwaishop-sync resync` to \
                     have it re-read a range, or stop it before `{command}` (on Postgres the \
                     two run side by side)"
                ),
            };
            Err(LockError::Held {
                db: db.display().to_string(),
                lock: lock_path.display().to_string(),
                holder,
                hint,
            })
        }
    }
}

/// A one-off command's pid file in the state directory (`once-<pid>.pid`: the pid, then the
/// instance id), removed when dropped: the next one-off of this installation releases the
/// instance of one that was killed at once, instead of waiting for its heartbeat to lapse.
#[derive(Debug)]
pub struct OneOffFile(PathBuf);

impl Drop for OneOffFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes this one-off's pid file, and returns it with the instance ids of the one-offs of this
/// state directory that died without removing theirs (those files are removed). A state
/// directory that cannot be written is no error: dead one-offs then lapse by themselves.
pub fn one_off_file(state_dir: &Path, instance_id: &str) -> (Option<OneOffFile>, Vec<String>) {
    let mut dead = Vec::new();
    if let Ok(entries) = std::fs::read_dir(state_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with("once-") && name.ends_with(".pid")) {
                continue;
            }
            let path = entry.path();
            if let Some(id) = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| dead_instance(&text))
            {
                let _ = std::fs::remove_file(&path);
                dead.push(id);
            }
        }
    }
    let path = state_dir.join(format!("once-{}.pid", std::process::id()));
    let written = std::fs::create_dir_all(state_dir)
        .and_then(|()| std::fs::write(&path, format!("{}\n{instance_id}\n", std::process::id())));
    (written.ok().map(|()| OneOffFile(path)), dead)
}

/// The instance named by a left-over pid file (`pid`, then the instance id), if its process no
/// longer runs. A file without an instance id (an older version's) names none.
fn dead_instance(pid_file_text: &str) -> Option<String> {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let mut lines = pid_file_text.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    let instance = lines.next()?.trim().to_string();
    let gone =
        pid as u32 != std::process::id() && kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH);
    (gone && !instance.is_empty()).then_some(instance)
}

/// Wakes the daemon whose pid is in the state directory with SIGUSR1; returns its pid, or
/// `None` when no daemon runs there.
pub fn wake_daemon(state_dir: &Path) -> Option<i32> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let pid: i32 = std::fs::read_to_string(pid_file(state_dir))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()?;
    kill(Pid::from_raw(pid), Signal::SIGUSR1).ok().map(|()| pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    /// The database, its WAL and shared-memory files and the daemon's lock file are 0600 even
    /// under a umask of 000 (they hold tokens and the mirror).
    #[cfg(unix)]
    #[tokio::test]
    async fn every_file_beside_the_database_is_private_whatever_the_umask() {
        use nix::sys::stat::{Mode, umask};
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("m.db");
        let url = format!("sqlite://{}", db.display());
        let old = umask(Mode::empty());
        let store = match crate::store::Store::connect(&url).await {
            Ok(store) => store.migrate().await.map(|()| store),
            Err(e) => Err(e),
        };
        let lock = acquire(&url.parse().expect("url"), dir.path(), "me");
        umask(old);
        let store = store.expect("connect and migrate");
        let lock = lock.expect("lock");
        for name in ["m.db", "m.db-wal", "m.db-shm", "m.db.lock"] {
            let path = dir.path().join(name);
            assert!(path.exists(), "{name} exists");
            assert_eq!(mode(&path), 0o600, "{name}");
        }
        drop(lock);
        store.close().await;
    }

    #[test]
    fn a_second_instance_on_one_sqlite_file_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let url = DatabaseUrl::Sqlite(dir.path().join("m.db"));
        let first = acquire(&url, dir.path(), "me").expect("first");
        let second = acquire(&url, dir.path(), "me").expect_err("second");
        assert!(second.to_string().contains("already running"), "{second}");
        drop(first);
        assert!(
            !pid_file(dir.path()).exists(),
            "the pid file goes with the lock"
        );
        acquire(&url, dir.path(), "me").expect("free again");
        // Postgres needs no lock file.
        let postgres = DatabaseUrl::Postgres("postgres://x/y".into());
        acquire(&postgres, dir.path(), "me").expect("no lock for postgres");
    }

    #[test]
    fn a_pid_file_left_by_a_dead_daemon_names_it() {
        let dir = tempfile::tempdir().expect("dir");
        // A process that has exited: its pid is free (until reused, which a live check catches).
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        std::fs::write(pid_file(dir.path()), format!("{dead}\nhost-{dead}-ab12\n")).expect("write");
        let postgres = DatabaseUrl::Postgres("postgres://x/y".into());
        let lock = acquire(&postgres, dir.path(), "next").expect("lock");
        assert_eq!(
            lock.dead_predecessor.as_deref(),
            Some(&*format!("host-{dead}-ab12"))
        );
        drop(lock);
        // A live one (this process) and an old file without an instance id name none.
        let me = std::process::id();
        std::fs::write(pid_file(dir.path()), format!("{me}\nhost-{me}\n")).expect("write");
        assert_eq!(dead_instance(&format!("{me}\nhost-{me}\n")), None);
        assert_eq!(dead_instance(&format!("{dead}\n")), None);
    }
}
