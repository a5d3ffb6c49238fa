//! This process as one of the instances of a database: the daemon (`run`) and a one-off
//! `sync --once` alike. On Postgres an instance registers, heartbeats, takes its share of the
//! app's QPS budget and makes no call until every other live instance has made room for it
//! (invariant I7); its runs hold (shop, stream) leases. On SQLite one process owns the file: an
//! instance takes the lock file beside it, or is refused while another holds it.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::lock;
use super::runner::Runner;
use crate::app::App;

/// A new instance id: host and pid for people, and a random part that keeps two containers with
/// the same hostname and pid apart. Returns (host, id).
pub fn new_instance_id() -> (String, String) {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into());
    let id = format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    (host, id)
}

/// The heartbeat of one instance on a shared database, kept between beats.
#[derive(Debug)]
pub struct Beat {
    share: i64,
    joined: bool,
    shared: bool,
}

impl Beat {
    /// A beat for an instance that has not joined yet. On a database one process owns
    /// (`shared` false) there is nothing to share: it counts as joined.
    pub fn new(shared: bool) -> Self {
        Self {
            share: 1,
            joined: !shared,
            shared,
        }
    }

    /// One heartbeat of instance `id`: records it, puts this instance's share of the app's QPS
    /// budget in force and publishes it, and opens the client's calls once every other live
    /// instance counts this one. Returns how long to wait before the next beat.
    pub async fn beat(&mut self, app: &App, id: &str) -> Duration {
        let ttl = app.config.daemon.lease.as_millis() as i64;
        let now = app.clock.now_ms();
        match app.store.heartbeat_instance(id, now, ttl).await {
            Ok(live) if self.shared => {
                if live != self.share {
                    self.share = live;
                    info!(
                        instances = live,
                        "sharing the app's QPS budget with the other instances"
                    );
                    app.client.set_share(live.max(1) as u32);
                }
                if let Err(e) = app.store.publish_share(id, live).await {
                    warn!(error = %e, "cannot publish this instance's share of the QPS budget");
                } else if !self.joined {
                    self.joined = join(app, id, live, now, ttl).await;
                }
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot heartbeat this instance"),
        }
        // While joining, look again soon: the others put their new share in force at their own
        // next beat.
        if self.joined {
            app.config.daemon.lease / 4
        } else {
            Duration::from_millis(250)
        }
    }
}

/// Opens this instance's calls once no other live instance divides the budget fewer ways than
/// `live`; returns whether it did.
async fn join(app: &App, id: &str, live: i64, now: i64, ttl: i64) -> bool {
    match app.store.instances_behind(id, live, now, ttl).await {
        Ok(0) => {
            app.client.open_calls();
            info!(
                instances = live,
                "joined: every instance has made room in the QPS budget"
            );
            true
        }
        Ok(behind) => {
            debug!(
                behind,
                "waiting for the other instances to make room in the QPS budget"
            );
            false
        }
        Err(e) => {
            warn!(error = %e, "cannot read the other instances' shares of the QPS budget");
            false
        }
    }
}

/// Why a one-off instance cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("{0}")]
    Lock(#[from] lock::LockError),
    #[error("registering this instance: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
}

/// A one-off command (`sync --once`) taking part as an instance until [`Presence::leave`]: on
/// SQLite it holds the lock file (so no daemon starts meanwhile); on Postgres it is registered
/// and heartbeating, and its runs take leases through [`Presence::runner`].
#[derive(Debug)]
pub struct Presence {
    id: String,
    store: crate::store::Store,
    runner: Arc<Runner>,
    heartbeat: Option<(CancellationToken, JoinHandle<()>)>,
    _lock: Option<lock::FileLock>,
    _pid_file: Option<lock::OneOffFile>,
}

impl Presence {
    /// Opens the application for `config` as an instance for `command` (named in a refusal).
    /// On SQLite, refused with a clear message while a daemon (or another one-off command)
    /// holds the file. On Postgres, the client names this instance, with its calls held until
    /// the instance has joined.
    pub async fn open(
        config: crate::config::Config,
        command: &'static str,
    ) -> Result<(App, Presence), PresenceError> {
        let (host, id) = new_instance_id();
        let shared = config.database_url.sqlite_file().is_none();
        if !shared {
            let file = lock::lock_sqlite(&config.database_url, lock::Holder::OneOff(command))?;
            let app = App::open(config).await?;
            let presence = Presence {
                runner: Arc::new(Runner::new(
                    None,
                    app.config.daemon.lease,
                    app.config.sync.runs_at_once as usize,
                )),
                store: app.store.clone(),
                id,
                heartbeat: None,
                _lock: file,
                _pid_file: None,
            };
            return Ok((app, presence));
        }
        let store = crate::store::Store::open(&config.database_url).await?;
        let app = App::with_store(config, store, Some(&id)).await?;
        app.client.hold_calls();
        // One-offs of this installation that were killed: their instances go now, or this one
        // would wait for their heartbeats to lapse before it may call.
        let (pid_file, dead) = lock::one_off_file(&app.config.daemon.state_dir, &id);
        for dead in dead {
            match app.store.unregister_instance(&dead).await {
                Ok(()) => info!(
                    instance = dead,
                    "released the instance of a one-off command that was killed"
                ),
                Err(e) => {
                    warn!(instance = dead, error = %e, "cannot release a killed one-off's instance")
                }
            }
        }
        let now = app.clock.now_ms();
        app.store
            .register_instance(&id, &host, i64::from(std::process::id()), now)
            .await?;
        let cancel = CancellationToken::new();
        let task = {
            let (app, id, cancel) = (Arc::new(app.clone()), id.clone(), cancel.clone());
            tokio::spawn(async move {
                let mut beat = Beat::new(true);
                loop {
                    let pause = beat.beat(&app, &id).await;
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            })
        };
        let presence = Presence {
            runner: Arc::new(Runner::new(
                Some(id.clone()),
                app.config.daemon.lease,
                app.config.sync.runs_at_once as usize,
            )),
            store: app.store.clone(),
            id,
            heartbeat: Some((cancel, task)),
            _lock: None,
            _pid_file: pid_file,
        };
        Ok((app, presence))
    }

    /// Runs (shop, stream) exclusively: under its lease on Postgres.
    pub fn runner(&self) -> Arc<Runner> {
        self.runner.clone()
    }

    /// Stops the heartbeat, unregisters (releasing every lease) and drops the lock.
    pub async fn leave(self) {
        if let Some((cancel, task)) = self.heartbeat {
            cancel.cancel();
            let _ = task.await;
            if let Err(e) = self.store.unregister_instance(&self.id).await {
                warn!(error = %e, "cannot unregister this instance (it expires by itself)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Two instances with the same host name and pid (two containers) still get different ids.
    #[test]
    fn ids_differ_for_the_same_host_and_pid() {
        let ids: std::collections::HashSet<String> =
            (0..50).map(|_| super::new_instance_id().1).collect();
        assert!(ids.len() >= 49, "{} distinct ids of 50", ids.len());
        let (host, id) = super::new_instance_id();
        assert!(id.starts_with(&format!("{host}-{}-", std::process::id())));
    }
}
