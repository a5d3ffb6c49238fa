//! The service's loops, each until the service's token is cancelled: resync requests, the
//! token keeper, shop identities, this instance's heartbeat and share, and the watchdog.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::keeper;
use super::observe::Liveness;
use super::service::{Shared, notify};
use crate::app::App;
use crate::store::Stream;
use crate::sync::SyncProgress;

/// Progress that feeds the watchdog: a resync can take hours, and its loop beats only between
/// resyncs, so each window and page beats too.
pub(super) struct Beats {
    pub(super) liveness: Arc<Liveness>,
    pub(super) name: &'static str,
}

impl SyncProgress for Beats {
    fn window(&self, _shop: &str, _stream: Stream, _begin: i64, _end: i64, _from: i64, _to: i64) {
        self.liveness.beat(self.name);
    }

    fn page(&self, _shop: &str, _stream: Stream, _rows: usize, _page: i64, _of: Option<i64>) {
        self.liveness.beat(self.name);
    }
}

pub(super) async fn resync_loop(service: Arc<Shared>) {
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

pub(super) async fn keeper_loop(service: Arc<Shared>) {
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
pub(super) async fn identity_loop(service: Arc<Shared>) {
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
pub(super) async fn instance_loop(service: Arc<Shared>, shared: bool) {
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
pub(super) async fn watch_loop(service: Arc<Shared>, worker: Arc<crate::queue::WorkerStats>) {
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
