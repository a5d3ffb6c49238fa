//! `kwaishop-sync run`: the service. [`Service::build`] puts it together once — config, the
//! instance lock, the application (store, one client, clock), the HTTP server (push receiver,
//! health, metrics, status page), the queue worker and the schedules — and
//! [`Service::run_until`] runs it: the pollers on their cron schedules (a (shop, stream) never
//! overlaps itself; with several daemons on Postgres, leases share the work), the resync loop,
//! the token keeper and the daily deep reconcile, until its `shutdown` token is cancelled. Every
//! task hangs off one cancellation token and is awaited at the stop, within the grace period.
//! `main` turns signals into calls: SIGTERM/SIGINT cancel `shutdown`, SIGHUP and SIGUSR1 arrive
//! as [`Control`]s. systemd hears READY=1, STATUS= and, while every loop makes progress,
//! WATCHDOG=1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_cron_scheduler::JobScheduler;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::loops::{self, Beats};
use super::observe::Liveness;
use super::runner::Runner;
use super::{DaemonError, DaemonHandle, lock, schedule, shop_directory, start_with};
use crate::app::{App, AppError};
use crate::config::Config;
use crate::push::receiver::ShopDirectory;
use crate::queue::WorkerSettings;
use crate::store::{ShopStatus, Store, Stream};
use crate::sync::{NoProgress, RunOutcome, StallLimits};

/// What a running service can be asked besides stopping (`main` sends these on SIGHUP and
/// SIGUSR1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Read the config file again; keep the old one when the new one is refused.
    Reload,
    /// Pick up the resync requests now; with none waiting, resync every shop and stream.
    Resync,
}

/// How the service is started.
#[derive(Debug, Default)]
pub struct ServiceOptions {
    pub config_path: PathBuf,
    /// Request a resync of every shop and stream at start (`run --resync`).
    pub resync_at_start: bool,
    /// Serve on this listener instead of the configured address (tests; port 0).
    pub listener: Option<TcpListener>,
}

/// Errors that stop the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("the scheduler: {0}")]
    Scheduler(String),
    #[error("requesting the resync at start: {0}")]
    Resync(#[from] crate::sync::SyncError),
    #[error("the stop took longer than the grace period ({0:?})")]
    GraceExceeded(Duration),
}

/// The state the service's tasks share.
pub(super) struct Shared {
    config_path: PathBuf,
    /// The current application; a reload replaces it, runs in flight keep the one they took.
    app: RwLock<Arc<App>>,
    runner: Runner,
    pub(super) resync_wake: Notify,
    pub(super) liveness: Arc<Liveness>,
    directory: Arc<RwLock<ShopDirectory>>,
    pub(super) instance_id: String,
    /// The root of the service's cancellation tree: the loops, the runs and (through a child
    /// token) the HTTP server and the worker stop on it.
    pub(super) shutdown: CancellationToken,
    /// Every run the schedules and the catch-ups started, so the stop waits for each.
    runs: TaskTracker,
    /// The daemon's stall limits, shared with its status page, `/metrics` and `/healthz`.
    stalls: StallLimits,
}

impl Shared {
    /// Rebuilds the receiver's shop directory from the config and the database (after a reload,
    /// or once a shop's identity is learnt); on failure pushes keep the old one.
    pub(super) async fn refresh_directory(&self, app: &App) {
        match shop_directory(app).await {
            Ok(dir) => {
                if let Ok(mut current) = self.directory.write() {
                    *current = dir;
                }
            }
            Err(e) => warn!(error = %e, "pushes keep the old shop list"),
        }
    }

    pub(super) fn app(&self) -> Arc<App> {
        self.app
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Starts a run of a (shop, stream) beside the others; the stop waits for it.
    pub(super) fn start_poll(self: &Arc<Self>, shop: &str, stream: Stream) {
        let (shared, shop) = (self.clone(), shop.to_string());
        self.runs
            .spawn(async move { shared.poll(shop, stream).await });
    }

    /// Starts a run of each enabled stream of `shop`: a shop catches up at start (or when a
    /// reload adds it) rather than at its first tick.
    fn start_catch_up(self: &Arc<Self>, app: &App, shop: &str) {
        for stream in Stream::ALL {
            if app.config.stream(stream).enabled {
                self.start_poll(shop, stream);
            }
        }
    }

    /// One scheduled (or initial) run of a (shop, stream), unless the shop needs to be
    /// authorized again, or the run is already going on here or at another daemon.
    async fn poll(self: &Arc<Self>, shop: String, stream: Stream) {
        let app = self.app();
        if !app.config.stream(stream).enabled || app.config.shop(&shop).is_none() {
            return;
        }
        if let Ok(Some(ShopStatus::NeedsReauth)) = app.store.shop_status(&shop).await {
            return;
        }
        let mut cx = app.sync_context();
        let job_shop = shop.clone();
        let outcome = self
            .runner
            .exclusive_poll(
                &app.store,
                &app.clock,
                &shop,
                stream,
                &self.shutdown,
                |cancel, store| async move {
                    cx.store = store;
                    cx.sync_stream(&job_shop, stream, &NoProgress, &cancel)
                        .await
                },
            )
            .await;
        if let Some(summary) = outcome
            && let RunOutcome::Failed { message, .. } = &summary.outcome
        {
            warn!(
                shop = summary.shop_id,
                stream = stream.as_str(),
                error = message,
                "the run failed; the next tick tries again"
            );
        }
    }

    /// Runs the open resync requests whose (shop, stream) is free; returns whether one was left
    /// waiting because its stream was being read (here or by another daemon).
    pub(super) async fn run_resyncs(self: &Arc<Self>) -> bool {
        let app = self.app();
        let Ok(open) = app.store.open_resyncs().await else {
            return false;
        };
        let mut waiting = false;
        for request in open {
            if self.shutdown.is_cancelled() {
                return waiting;
            }
            if app.config.shop(&request.shop_id).is_none() {
                continue;
            }
            let mut cx = app.sync_context();
            let progress = Beats {
                liveness: self.liveness.clone(),
                name: "resync",
            };
            let (shop, stream) = (request.shop_id.clone(), request.stream);
            let ran = self
                .runner
                .exclusive(
                    &app.store,
                    &app.clock,
                    &shop,
                    stream,
                    &self.shutdown,
                    |cancel, store| async move {
                        cx.store = store;
                        cx.run_resync(request, &progress, &cancel).await
                    },
                )
                .await;
            waiting |= ran.is_none();
        }
        waiting
    }

    /// [`Control::Resync`]: pick up resync requests now; with none waiting, resync everything.
    async fn resync_now(&self) {
        let app = self.app();
        match app.store.open_resyncs().await {
            Ok(open) if open.is_empty() => {
                info!("SIGUSR1: no resync waiting; requesting a resync of every shop and stream");
                if let Err(e) = app.sync_context().request_resync_all(None).await {
                    warn!(error = %e, "cannot request a resync");
                }
            }
            Ok(_) => info!("SIGUSR1: picking up the waiting resync requests"),
            Err(e) => warn!(error = %e, "cannot read resync requests"),
        }
        self.resync_wake.notify_one();
    }
}

/// The service, put together and not yet running.
pub struct Service {
    shared: Arc<Shared>,
    scheduler: JobScheduler,
    daemon: DaemonHandle,
    lock: lock::InstanceLock,
    shared_database: bool,
    resync_at_start: bool,
}

impl Service {
    /// Puts the service together: takes the instance lock (the SQLite file's, or a registered
    /// instance on Postgres), opens the application with one client that names this instance,
    /// starts the HTTP server and the worker, and builds the schedules. Nothing is polled yet.
    pub async fn build(opts: ServiceOptions) -> Result<Service, ServiceError> {
        let config = Config::load(&opts.config_path)?;
        let (host, instance_id) = super::instance::new_instance_id();
        let lock = lock::acquire(&config.database_url, &config.daemon.state_dir, &instance_id)?;
        let shared_database = config.database_url.sqlite_file().is_none();
        let store = Store::open(&config.database_url)
            .await
            .map_err(AppError::from)?;
        let app = App::with_store(config, store, Some(&instance_id)).await?;
        if shared_database {
            // No call until the other daemons have made room for this one (instance_loop).
            app.client.hold_calls();
            if let Some(dead) = lock.dead_predecessor.as_deref() {
                release_predecessor(&app, dead).await;
            }
        }
        app.store
            .register_instance(
                &instance_id,
                &host,
                i64::from(std::process::id()),
                app.clock.now_ms(),
            )
            .await
            .map_err(AppError::from)?;
        let liveness = Arc::new(Liveness::new());
        let directory = Arc::new(RwLock::new(shop_directory(&app).await?));
        let root = CancellationToken::new();
        let daemon = start_with(
            app.clone(),
            opts.listener,
            WorkerSettings::from(&app.config.queue),
            liveness.clone(),
            directory.clone(),
            root.child_token(),
        )
        .await?;
        let shared = Arc::new(Shared {
            config_path: opts.config_path,
            runner: Runner::new(
                shared_database.then(|| instance_id.clone()),
                app.config.daemon.lease,
                app.config.sync.runs_at_once as usize,
            ),
            app: RwLock::new(Arc::new(app.clone())),
            resync_wake: Notify::new(),
            liveness,
            directory,
            instance_id,
            shutdown: root,
            runs: TaskTracker::new(),
            stalls: daemon.stalls.clone(),
        });
        let scheduler = schedule::build(&shared, &app).await?;
        Ok(Service {
            shared,
            scheduler,
            daemon,
            lock,
            shared_database,
            resync_at_start: opts.resync_at_start,
        })
    }

    /// Where the HTTP server listens.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.daemon.http_addr
    }

    /// Runs the service until `shutdown` is cancelled, answering `controls` meanwhile; then
    /// stops it: no new pushes or polls, what is in flight finishes within the grace period.
    pub async fn run_until(
        mut self,
        shutdown: CancellationToken,
        mut controls: mpsc::UnboundedReceiver<Control>,
    ) -> Result<(), ServiceError> {
        let shared = self.shared.clone();
        let app = shared.app();
        let mut tasks = JoinSet::new();
        tasks.spawn(loops::resync_loop(shared.clone()));
        tasks.spawn(loops::keeper_loop(shared.clone()));
        tasks.spawn(loops::identity_loop(shared.clone()));
        tasks.spawn(loops::instance_loop(shared.clone(), self.shared_database));
        tasks.spawn(loops::watch_loop(
            shared.clone(),
            self.daemon.worker.clone(),
        ));
        if self.resync_at_start {
            let n = app.sync_context().request_resync_all(None).await?;
            info!(requests = n, "resync requested at start");
        }
        for shop in &app.config.shops {
            shared.start_catch_up(&app, &shop.id);
        }
        shared.resync_wake.notify_one();
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status("running"),
        ]);
        info!(
            instance = shared.instance_id,
            shops = app.config.shops.len(),
            "kwaishop-sync is running"
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(control) = controls.recv() => match control {
                    Control::Reload => {
                        notify(&[sd_notify::NotifyState::Reloading]);
                        self.reload().await;
                        notify(&[sd_notify::NotifyState::Ready]);
                    }
                    Control::Resync => shared.resync_now().await,
                },
            }
        }
        self.stop(tasks).await
    }

    /// [`Control::Reload`]: reads the config again; keeps the old one when the new one is
    /// invalid or changes the database.
    async fn reload(&mut self) {
        let shared = &self.shared;
        let old = shared.app();
        let config = match Config::load(&shared.config_path) {
            Ok(c) => c,
            Err(e) => {
                error!("SIGHUP: the new config is refused, the old one keeps running: {e}");
                return;
            }
        };
        if config.database_url != old.config.database_url {
            error!(
                "SIGHUP: database.url cannot change on reload (restart the service); keeping the old config"
            );
            return;
        }
        let new = match old.reconfigured(config).await {
            Ok(app) => Arc::new(app),
            Err(e) => {
                error!("SIGHUP: cannot apply the new config, the old one keeps running: {e}");
                return;
            }
        };
        shared.refresh_directory(&new).await;
        shared.stalls.update(&new.config);
        if let Ok(mut app) = shared.app.write() {
            *app = new.clone();
        }
        match schedule::build(shared, &new).await {
            Ok(next) => {
                let mut old_scheduler = std::mem::replace(&mut self.scheduler, next);
                let _ = old_scheduler.shutdown().await;
                info!(
                    shops = new.config.shops.len(),
                    "SIGHUP: config reloaded (schedules, limits and shops applied)"
                );
            }
            Err(e) => error!("SIGHUP: cannot rebuild the schedules: {e}"),
        }
        for shop in &new.config.shops {
            if old.config.shop(&shop.id).is_none() {
                shared.start_catch_up(&new, &shop.id);
            }
        }
    }

    /// Stops everything under the service's token and waits for it, within the grace period;
    /// then leaves the database's instances and lets go of the lock.
    async fn stop(self, mut tasks: JoinSet<()>) -> Result<(), ServiceError> {
        let Service {
            shared,
            mut scheduler,
            daemon,
            lock,
            ..
        } = self;
        let app = shared.app();
        let grace = app.config.daemon.grace;
        notify(&[
            sd_notify::NotifyState::Stopping,
            sd_notify::NotifyState::Status("stopping"),
        ]);
        info!(grace = ?grace, "stopping: no new pushes or polls; finishing what is in flight");
        let stopped = async {
            let _ = scheduler.shutdown().await;
            shared.shutdown.cancel();
            daemon.stop().await;
            while tasks.join_next().await.is_some() {}
            // Runs stop at their next page boundary.
            shared.runs.close();
            shared.runs.wait().await;
            // Those runs called the platform after the daemon's last flush.
            shared.app().finish_calls().await;
        };
        let result = tokio::time::timeout(grace, stopped)
            .await
            .map_err(|_| ServiceError::GraceExceeded(grace));
        if let Err(e) = app.store.unregister_instance(&shared.instance_id).await {
            warn!(error = %e, "cannot unregister this instance (it expires by itself)");
        }
        drop(lock);
        result
    }
}

/// This installation's last daemon was killed: frees its leases and its share of the budget now
/// rather than after its lease and heartbeat lapse.
async fn release_predecessor(app: &App, dead: &str) {
    match app.store.unregister_instance(dead).await {
        Ok(()) => info!(
            instance = dead,
            "the previous daemon here stopped without cleaning up; released its leases"
        ),
        Err(e) => warn!(instance = dead, error = %e, "cannot release the previous daemon's leases"),
    }
}

pub(super) fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Not under systemd (no NOTIFY_SOCKET): nothing to tell.
    let _ = sd_notify::notify(states);
}
