//! `kwaishop-sync run`: the service. Migrate, take the instance lock, then run the HTTP server
//! (push receiver, health, metrics), the queue worker, the pollers on their cron schedules (a
//! (shop, stream) never overlaps itself; with several daemons on Postgres, leases share the
//! work), the resync loop, the token keeper and the daily deep reconcile, until a signal:
//! SIGTERM/SIGINT stop gracefully within the grace period (a second one exits at once), SIGHUP
//! reloads the config, SIGUSR1 wakes resync handling. systemd hears READY=1, STATUS= and, while
//! every loop makes progress, WATCHDOG=1.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::lock;
use super::observe::Liveness;
use super::runner::Runner;
use super::{DaemonError, DaemonHandle, keeper, shop_directory, start_with};
use crate::api::ApiClient;
use crate::app::{App, AppError};
use crate::config::Config;
use crate::push::receiver::ShopDirectory;
use crate::queue::WorkerSettings;
use crate::store::{ResyncKind, ShopStatus, Stream};
use crate::sync::{HORIZON_MS, NoProgress, RunOutcome, SyncProgress};

/// How the service is started.
#[derive(Debug, Default)]
pub struct ServiceOptions {
    pub config_path: PathBuf,
    /// Request a resync of every shop and stream at start (`run --resync`).
    pub resync_at_start: bool,
    /// Serve on this listener instead of the configured address (tests).
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
    #[error("the stop took longer than the grace period ({0:?})")]
    GraceExceeded(Duration),
}

/// The state the service's tasks share.
struct Service {
    config_path: PathBuf,
    /// The current application; a reload replaces it, runs in flight keep the one they took.
    app: RwLock<Arc<App>>,
    runner: Runner,
    resync_wake: Notify,
    liveness: Arc<Liveness>,
    directory: Arc<RwLock<ShopDirectory>>,
    instance_id: String,
    shutdown: CancellationToken,
    /// The daemon's stall limits, shared with its status page, `/metrics` and `/healthz`.
    stalls: crate::sync::StallLimits,
}

impl Service {
    /// Rebuilds the receiver's shop directory from the config and the database (after a reload,
    /// or once a shop's identity is learnt); on failure pushes keep the old one.
    async fn refresh_directory(&self, app: &App) {
        match shop_directory(app).await {
            Ok(dir) => {
                if let Ok(mut current) = self.directory.write() {
                    *current = dir;
                }
            }
            Err(e) => warn!(error = %e, "pushes keep the old shop list"),
        }
    }

    fn app(&self) -> Arc<App> {
        self.app
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// One scheduled (or initial) run of a (shop, stream), unless the shop needs to be
    /// authorized again, or the run is already going on here or at another daemon.
    async fn poll(self: &Arc<Self>, shop: String, stream: Stream) {
        let app = self.app();
        if !app
            .config
            .stream(stream.as_str())
            .is_some_and(|c| c.enabled)
            || app.config.shop(&shop).is_none()
        {
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
    async fn run_resyncs(self: &Arc<Self>) -> bool {
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

    /// SIGUSR1: pick up resync requests now; with none waiting, resync everything.
    async fn on_usr1(self: &Arc<Self>) {
        let app = self.app();
        match app.store.open_resyncs().await {
            Ok(open) if open.is_empty() => {
                info!("SIGUSR1: no resync waiting; requesting a resync of every shop and stream");
                if let Err(e) = request_resync_all(&app, None).await {
                    warn!(error = %e, "cannot request a resync");
                }
            }
            Ok(_) => info!("SIGUSR1: picking up the waiting resync requests"),
            Err(e) => warn!(error = %e, "cannot read resync requests"),
        }
        self.resync_wake.notify_one();
    }

    /// SIGHUP: read the config again; keep the old one when the new one is invalid.
    async fn reload(self: &Arc<Self>, scheduler: &mut JobScheduler) {
        let old = self.app();
        let config = match Config::load(&self.config_path) {
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
        let new = match reloaded_app(&old, config).await {
            Ok(app) => Arc::new(app),
            Err(e) => {
                error!("SIGHUP: cannot apply the new config, the old one keeps running: {e}");
                return;
            }
        };
        self.refresh_directory(&new).await;
        self.stalls.update(&new.config);
        if let Ok(mut app) = self.app.write() {
            *app = new.clone();
        }
        match build_scheduler(self, &new).await {
            Ok(next) => {
                let mut old_scheduler = std::mem::replace(scheduler, next);
                let _ = old_scheduler.shutdown().await;
                info!(
                    shops = new.config.shops.len(),
                    "SIGHUP: config reloaded (schedules, limits and shops applied)"
                );
            }
            Err(e) => error!("SIGHUP: cannot rebuild the schedules: {e}"),
        }
        // New shops catch up now rather than at their first tick.
        for shop in &new.config.shops {
            if old.config.shop(&shop.id).is_none() {
                self.spawn_catch_up(&new, &shop.id);
            }
        }
    }

    fn spawn_catch_up(self: &Arc<Self>, app: &App, shop: &str) {
        for stream in Stream::ALL {
            if app
                .config
                .stream(stream.as_str())
                .is_some_and(|c| c.enabled)
            {
                let (service, shop) = (self.clone(), shop.to_string());
                tokio::spawn(async move { service.poll(shop, stream).await });
            }
        }
    }
}

/// The application for a reloaded config: the same store, clock and client, the client
/// reconfigured in place — so the worker, the pollers and the keeper keep sharing one set of
/// rate limiters (at this instance's share), one refresh lock per shop and one count buffer.
async fn reloaded_app(old: &App, config: Config) -> Result<App, AppError> {
    let mut app = App::with_store(config, old.store.clone()).await?;
    app.clock = old.clock.clone();
    old.client.reconfigure(
        crate::app::app_credentials(&app.config),
        crate::app::client_options(&app.config),
    );
    app.client = old.client.clone();
    Ok(app)
}

/// The service's client for `app`'s config and clock. It names this instance in the
/// User-Agent, so the platform's logs (and the simulator's) tell the daemons apart.
pub(crate) fn instance_client(app: &App, instance_id: &str) -> Result<ApiClient, AppError> {
    let mut options = crate::app::client_options(&app.config);
    options.instance = Some(instance_id.to_string());
    let store = Arc::new(app.store.clone());
    Ok(ApiClient::new(
        crate::app::app_credentials(&app.config),
        options,
        app.clock.clone(),
        store.clone(),
        store,
    )?)
}

/// Requests a resync of `[since, now − settle]` for every shop and stream (or one shop).
pub async fn request_resync_all(
    app: &App,
    since_ms: Option<i64>,
) -> Result<usize, crate::store::StoreError> {
    let now = app.clock.now_ms();
    let since = since_ms.unwrap_or(now - HORIZON_MS).max(now - HORIZON_MS);
    let mut n = 0;
    for shop in &app.config.shops {
        for stream in Stream::ALL {
            let settle = app
                .config
                .stream(stream.as_str())
                .map(|c| c.settle.as_millis() as i64)
                .unwrap_or(60_000);
            app.store
                .request_resync(
                    &shop.id,
                    stream,
                    ResyncKind::Resync,
                    since,
                    now - settle,
                    now,
                )
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

/// The cron jobs: one per (shop, stream), the deep reconcile, and a heartbeat for the watchdog.
async fn build_scheduler(service: &Arc<Service>, app: &App) -> Result<JobScheduler, ServiceError> {
    let err = |e: tokio_cron_scheduler::JobSchedulerError| ServiceError::Scheduler(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(err)?;
    // One job per stream, whatever the number of shops: each tick starts a run per shop (with
    // a thousand shops, a job per shop and stream made the scheduler's every tick walk three
    // thousand jobs).
    for stream in Stream::ALL {
        let Some(cfg) = app.config.stream(stream.as_str()).filter(|c| c.enabled) else {
            continue;
        };
        let service = service.clone();
        let job = Job::new_async(cfg.schedule.as_str(), move |_, _| {
            let service = service.clone();
            Box::pin(async move {
                // A tick only starts the runs: a long backfill does not hold the scheduler.
                for shop in &service.app().config.shops {
                    let (service, shop) = (service.clone(), shop.id.clone());
                    tokio::spawn(async move { service.poll(shop, stream).await });
                }
            })
        })
        .map_err(err)?;
        scheduler.add(job).await.map_err(err)?;
    }
    let reconcile = {
        let service = service.clone();
        Job::new_async(app.config.sync.reconcile_schedule.as_str(), move |_, _| {
            let service = service.clone();
            Box::pin(async move {
                let app = service.app();
                let cx = app.sync_context();
                for shop in &app.config.shops {
                    if let Err(e) = cx
                        .request_reconcile(&shop.id, app.config.sync.reconcile_days)
                        .await
                    {
                        warn!(shop = shop.id, error = %e, "cannot request the deep reconcile");
                    }
                }
                info!(
                    days = app.config.sync.reconcile_days,
                    "deep reconcile requested"
                );
                service.resync_wake.notify_one();
            })
        })
        .map_err(err)?
    };
    scheduler.add(reconcile).await.map_err(err)?;
    let beat = {
        let liveness = service.liveness.clone();
        Job::new_async("*/5 * * * * *", move |_, _| {
            let liveness = liveness.clone();
            Box::pin(async move { liveness.beat("scheduler") })
        })
        .map_err(err)?
    };
    scheduler.add(beat).await.map_err(err)?;
    scheduler.start().await.map_err(err)?;
    Ok(scheduler)
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    // Not under systemd (no NOTIFY_SOCKET): nothing to tell.
    let _ = sd_notify::notify(states);
}

/// The worker settings a config describes.
pub fn worker_settings(config: &Config) -> WorkerSettings {
    WorkerSettings {
        max_attempts: config.queue.max_attempts,
        retention: config.queue.retention,
        concurrency: config.queue.concurrency,
        lease: config.queue.lease,
        retry_base: config.queue.retry_base,
        ..WorkerSettings::default()
    }
}

/// Runs the service until it is stopped by a signal.
pub async fn run(opts: ServiceOptions) -> Result<(), ServiceError> {
    let config = Config::load(&opts.config_path)?;
    let (host, instance_id) = super::instance::new_instance_id();
    let lock = lock::acquire(&config.database_url, &config.daemon.state_dir, &instance_id)?;
    let shared_database = lock::sqlite_path(&config.database_url).is_none();
    let mut app = App::open(config).await?;
    app.client = instance_client(&app, &instance_id)?;
    if shared_database {
        // No call until the other daemons have made room for this one (instance_loop).
        app.client.hold_calls();
    }
    if let Some(dead) = lock.dead_predecessor.as_deref().filter(|_| shared_database) {
        // This installation's last daemon was killed: free its leases and its share of the
        // budget now rather than after its lease and heartbeat lapse.
        match app.store.unregister_instance(dead).await {
            Ok(()) => info!(
                instance = dead,
                "the previous daemon here stopped without cleaning up; released its leases"
            ),
            Err(e) => {
                warn!(instance = dead, error = %e, "cannot release the previous daemon's leases")
            }
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
    let daemon = start_with(
        app.clone(),
        opts.listener,
        worker_settings(&app.config),
        liveness.clone(),
        directory.clone(),
    )
    .await?;
    let service = Arc::new(Service {
        config_path: opts.config_path.clone(),
        runner: Runner::new(
            shared_database.then(|| instance_id.clone()),
            app.config.daemon.lease,
            app.config.sync.runs_at_once as usize,
        ),
        app: RwLock::new(Arc::new(app.clone())),
        resync_wake: Notify::new(),
        liveness: liveness.clone(),
        directory,
        instance_id: instance_id.clone(),
        shutdown: CancellationToken::new(),
        stalls: daemon.stalls.clone(),
    });
    let mut scheduler = build_scheduler(&service, &app).await?;
    let mut tasks = JoinSet::new();
    tasks.spawn(resync_loop(service.clone()));
    tasks.spawn(keeper_loop(service.clone()));
    tasks.spawn(identity_loop(service.clone()));
    tasks.spawn(instance_loop(service.clone(), shared_database));
    tasks.spawn(watch_loop(service.clone(), daemon.worker.clone()));
    if opts.resync_at_start {
        let n = request_resync_all(&app, None)
            .await
            .map_err(AppError::from)?;
        info!(requests = n, "resync requested at start");
    }
    for shop in &app.config.shops {
        service.spawn_catch_up(&app, &shop.id);
    }
    service.resync_wake.notify_one();
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("running"),
    ]);
    info!(
        instance = instance_id,
        shops = app.config.shops.len(),
        "kwaishop-sync is running"
    );

    let grace = app.config.daemon.grace;
    wait_for_stop(&service, &mut scheduler).await;
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping"),
    ]);
    info!(grace = ?grace, "stopping: no new pushes or polls; finishing what is in flight");
    let stopped = stop(service.clone(), scheduler, daemon, tasks);
    let result = tokio::time::timeout(grace, stopped)
        .await
        .map_err(|_| ServiceError::GraceExceeded(grace));
    if let Err(e) = app.store.unregister_instance(&instance_id).await {
        warn!(error = %e, "cannot unregister this instance (it expires by itself)");
    }
    drop(lock);
    result
}

/// Waits for SIGTERM or SIGINT, handling SIGHUP and SIGUSR1 meanwhile.
async fn wait_for_stop(service: &Arc<Service>, scheduler: &mut JobScheduler) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
    ) else {
        error!("cannot install signal handlers; stopping");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                service.reload(scheduler).await;
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = usr1.recv() => service.on_usr1().await,
        }
    }
    // A second signal during the graceful stop exits at once.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!("second signal: exiting at once");
        std::process::exit(130);
    });
}

async fn stop(
    service: Arc<Service>,
    mut scheduler: JobScheduler,
    daemon: DaemonHandle,
    mut tasks: JoinSet<()>,
) {
    let _ = scheduler.shutdown().await;
    service.shutdown.cancel();
    daemon.stop().await;
    while tasks.join_next().await.is_some() {}
    // Runs started by the scheduler stop at their next page boundary: wait for them.
    while Stream::ALL.iter().any(|s| {
        service
            .app()
            .config
            .shops
            .iter()
            .any(|shop| service.runner.is_running(&shop.id, *s))
    }) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Those runs called the platform after the daemon's last flush.
    service.app().finish_calls().await;
}

/// Progress that feeds the watchdog: a resync can take hours, and its loop beats only between
/// resyncs, so each window and page beats too.
struct Beats {
    liveness: Arc<Liveness>,
    name: &'static str,
}

impl SyncProgress for Beats {
    fn window(&self, _shop: &str, _stream: Stream, _begin: i64, _end: i64, _from: i64, _to: i64) {
        self.liveness.beat(self.name);
    }

    fn page(&self, _shop: &str, _stream: Stream, _rows: usize, _page: i64, _of: Option<i64>) {
        self.liveness.beat(self.name);
    }
}

async fn resync_loop(service: Arc<Service>) {
    service
        .liveness
        .register("resync", Duration::from_secs(120));
    loop {
        service.liveness.beat("resync");
        // A request whose stream was being polled is tried again in a second, not at the next
        // round: a poll that always runs at that moment must not starve it.
        let pause = if service.run_resyncs().await {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(30)
        };
        tokio::select! {
            _ = service.shutdown.cancelled() => return,
            _ = service.resync_wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

async fn keeper_loop(service: Arc<Service>) {
    service
        .liveness
        .register("keeper", Duration::from_secs(600));
    let mut warned = std::collections::HashMap::new();
    loop {
        service.liveness.beat("keeper");
        keeper::check_tokens(&service.app(), &mut warned).await;
        tokio::select! {
            _ = service.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// Who the shops are (`crate::identity`): every 5 s, pushes waiting for their shop are handed to
/// the shops now known; every minute (and at start), shops still unknown are asked about. The
/// push routing is rebuilt after either.
async fn identity_loop(service: Arc<Service>) {
    let mut tick: u64 = 0;
    loop {
        let app = service.app();
        if crate::identity::pass(&app, tick % 12 == 0).await {
            service.refresh_directory(&app).await;
        }
        tick += 1;
        tokio::select! {
            _ = service.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Heartbeats this instance and takes its share of the app's QPS budget (I7); on a shared
/// database a joining instance keeps its calls held until every other live instance has put in
/// force a share that counts it ([`super::instance::Beat`]).
async fn instance_loop(service: Arc<Service>, shared: bool) {
    let mut beat = super::instance::Beat::new(shared);
    loop {
        let pause = beat.beat(&service.app(), &service.instance_id).await;
        tokio::select! {
            _ = service.shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// The worker's progress into liveness, STATUS= lines, and the watchdog.
async fn watch_loop(service: Arc<Service>, worker: Arc<crate::queue::WorkerStats>) {
    use std::sync::atomic::Ordering;
    service
        .liveness
        .register("scheduler", Duration::from_secs(60));
    service.liveness.register("worker", Duration::from_secs(60));
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog
        .map(|w| w / 3)
        .unwrap_or(Duration::from_secs(5))
        .min(Duration::from_secs(5));
    let mut rounds = 0;
    let mut last_status = std::time::Instant::now() - Duration::from_secs(60);
    loop {
        let now_rounds = worker.rounds.load(Ordering::Relaxed);
        if now_rounds != rounds {
            rounds = now_rounds;
            service.liveness.beat("worker");
        }
        let stalled = service.liveness.stalled();
        if watchdog.is_some() && stalled.is_empty() {
            notify(&[sd_notify::NotifyState::Watchdog]);
        } else if !stalled.is_empty() {
            warn!(loops = ?stalled, "loops stalled: the watchdog is not fed");
        }
        if last_status.elapsed() >= Duration::from_secs(30) {
            last_status = std::time::Instant::now();
            notify(&[sd_notify::NotifyState::Status(
                &status_line(&service.app()).await,
            )]);
        }
        tokio::select! {
            _ = service.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// A one-line summary for `systemctl status`.
async fn status_line(app: &App) -> String {
    let now = app.clock.now_ms();
    let states = app.store.all_states().await.unwrap_or_default();
    let worst = states
        .iter()
        .filter_map(|s| s.checkpoint_ms)
        .map(|c| now - c)
        .max();
    let queue = app.store.queue_stats().await.ok();
    format!(
        "{} shop(s); largest lag {}; queue {} pending, {} dead",
        app.config.shops.len(),
        worst
            .map(|l| format!("{}s", l / 1000))
            .unwrap_or_else(|| "-".into()),
        queue.as_ref().map_or(0, |q| q.pending),
        queue.as_ref().map_or(0, |q| q.dead),
    )
}
