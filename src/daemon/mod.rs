//! The long-running service: the push receiver and the queue worker (and, with the scheduler,
//! the pollers), one shutdown tree, one HTTP server (push, `/healthz`, `/metrics` and the status
//! page at `/`), and the loop that writes the client's hourly call counts to the database.

pub mod call_counts;
pub mod http;
pub mod instance;
mod keeper;
mod lock;
mod loops;
pub mod observe;
pub mod runner;
mod schedule;
pub mod service;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::app::App;
use crate::push::MessageKey;
use crate::push::receiver::{Receiver, ReceiverSettings, ReceiverStats, ShopDirectory};
use crate::queue::WorkerStats;
use crate::queue::{Worker, WorkerSettings};
use observe::{Liveness, ObserveSources};

/// Errors of starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("push is enabled but platform.msg_secret is not set")]
    NoMessageSecret,
    #[error("platform.msg_secret: {0}")]
    BadMessageSecret(crate::push::CryptoError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// A running daemon.
#[derive(Debug)]
pub struct DaemonHandle {
    /// Where the HTTP server listens (the push path, health, metrics and the status page).
    pub http_addr: Option<SocketAddr>,
    pub receiver: Option<Arc<ReceiverStats>>,
    pub worker: Arc<WorkerStats>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// For the last flush of the call counts.
    app: App,
    /// What the status page, `/metrics` and `/healthz` count as stalled: a reload updates it.
    pub stalls: crate::sync::StallLimits,
}

impl DaemonHandle {
    /// Asks everything to stop and waits for it: no new pushes, requests in flight finish,
    /// the worker finishes the records it is fetching; then the call counts are written.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.app.finish_calls().await;
    }

    /// The token that stops the daemon.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

pub use lock::wake_daemon;

/// The shop directory for the receiver: what was learnt of each shop (its seller id and the
/// merchant's open id, `crate::identity`), its token's open id, and the config's values, which
/// override both.
pub async fn shop_directory(app: &App) -> Result<ShopDirectory, DaemonError> {
    let mut directory = ShopDirectory::default();
    for shop in app.store.shops().await? {
        directory.add(&shop.shop_id, shop.open_id.as_deref(), shop.seller_id);
        if let Some(tokens) = app.store.load_tokens(&shop.shop_id).await? {
            directory.add(&shop.shop_id, Some(&tokens.open_id), None);
        }
    }
    for shop in &app.config.shops {
        directory.add(&shop.id, shop.open_id.as_deref(), shop.seller_id);
    }
    Ok(directory)
}

/// Starts the HTTP server (the push receiver when push is enabled, /healthz, /metrics and the
/// status page at /) on `listener` if given, else on the configured address, the queue worker,
/// and the loop that writes the client's call counts every [`call_counts::FLUSH_EVERY`].
pub async fn start(
    app: App,
    listener: Option<TcpListener>,
    worker_settings: WorkerSettings,
) -> Result<DaemonHandle, DaemonError> {
    let liveness = Arc::new(Liveness::new());
    let directory = Arc::new(RwLock::new(shop_directory(&app).await?));
    let shutdown = CancellationToken::new();
    start_with(
        app,
        listener,
        worker_settings,
        liveness,
        directory,
        shutdown,
    )
    .await
}

/// [`start`] with the liveness registry and the shop directory the service shares, stopping
/// on `shutdown` (the service passes a child of its own token).
pub(crate) async fn start_with(
    app: App,
    listener: Option<TcpListener>,
    worker_settings: WorkerSettings,
    liveness: Arc<Liveness>,
    directory: Arc<RwLock<ShopDirectory>>,
    shutdown: CancellationToken,
) -> Result<DaemonHandle, DaemonError> {
    let wake = Arc::new(Notify::new());
    let receiver = push_receiver(&app, directory, wake.clone())?;
    let listener = match listener {
        Some(l) => l,
        None => TcpListener::bind(&app.config.http.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: app.config.http.listen.clone(),
                source,
            })?,
    };
    let worker = Worker::new(
        app.client.clone(),
        app.store.clone(),
        app.clock.clone(),
        worker_settings,
        wake,
    );
    let worker_stats = worker.stats();
    let receiver_stats = receiver.as_ref().map(Receiver::stats);
    let stalls = crate::sync::StallLimits::from_config(&app.config);
    let sources = ObserveSources {
        client: Some(app.client.clone()),
        worker: Some(worker_stats.clone()),
        receiver: receiver_stats.clone(),
        liveness,
        // Connections of its own: the page answers while the sync's runs hold the others.
        ..ObserveSources::database(
            app.store.for_reading(),
            app.clock.clone(),
            app.config.limits.daily_quota,
            stalls.clone(),
        )
    };
    let mut router = observe::routes(sources);
    if let Some(receiver) = receiver {
        router = router.merge(receiver.routes());
    }
    let http_addr = listener.local_addr().ok();
    announce_addresses(&app, http_addr);
    let tasks = vec![
        tokio::spawn(worker.run(shutdown.clone())),
        tokio::spawn(call_counts::flush_loop(
            app.clone(),
            call_counts::FLUSH_EVERY,
            shutdown.clone(),
        )),
        tokio::spawn(http::serve(
            listener,
            router,
            Duration::from_secs(5),
            shutdown.clone(),
        )),
    ];
    Ok(DaemonHandle {
        http_addr,
        receiver: receiver_stats,
        worker: worker_stats,
        shutdown,
        tasks,
        app,
        stalls,
    })
}

/// The push receiver, when push is enabled: it needs the app's message secret.
fn push_receiver(
    app: &App,
    directory: Arc<RwLock<ShopDirectory>>,
    wake: Arc<Notify>,
) -> Result<Option<Receiver>, DaemonError> {
    if !app.config.push.enabled {
        return Ok(None);
    }
    let secret = app
        .config
        .platform
        .msg_secret
        .as_ref()
        .ok_or(DaemonError::NoMessageSecret)?;
    let key = MessageKey::from_secret(secret.expose()).map_err(DaemonError::BadMessageSecret)?;
    let settings = ReceiverSettings {
        path: app.config.push.path.clone(),
        ..ReceiverSettings::default()
    };
    Ok(Some(Receiver::new(
        app.store.clone(),
        key,
        app.config.platform.app_key.clone(),
        directory,
        settings,
        app.clock.clone(),
        wake,
    )))
}

/// Says where the HTTP server listens: a log line, and lines on stdout for people and for tools
/// that started the daemon on port 0.
fn announce_addresses(app: &App, addr: Option<SocketAddr>) {
    let Some(addr) = addr else {
        return;
    };
    info!(%addr, push = app.config.push.enabled, "HTTP server listening");
    if app.config.push.enabled {
        announce(&format!(
            "push receiver listening on http://{addr}{}",
            app.config.push.path
        ));
    }
    announce(&format!(
        "status page on http://{addr}/ (health and metrics on /healthz and /metrics)"
    ));
}

/// Prints a line on stdout. A tool that read what it needed and closed the pipe must not stop
/// the daemon: `println!` panics on a closed stdout, this ignores the error.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
