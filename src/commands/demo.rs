//! `kwaishop-sync demo`: the simulator in this process with a seeded shop, the daemon's receiver
//! and queue worker against it, a backfill into a local SQLite file with progress bars, a few
//! seconds of pushes, and a short report whose totals are checked against the simulator's truth
//! — what a newcomer runs first.
//!
//! Re-running is safe: the world is rebuilt from its seed and origin (kept beside the database in
//! `<db>.demo.json`) with the simulator's clock resumed where the last demo stopped, so the file
//! is reused and only what changed is synced; a different seed or size, `--fresh`, or a demo
//! that did not finish recreates it. A file the demo did not make is never touched.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::api::oauth::TokenSet;
use crate::app::App;
use crate::clock::wall_ms;
use crate::config::Config;
use crate::secret::Secret;
use crate::store::{DailySales, ItemSales, ReportFilter, ResyncKind, ShopTotals, Store, Stream};
use crate::sync::{NoProgress, RunOutcome, SyncProgress};
use kwaishop_sim::ScaledClock;
use kwaishop_sim::push::PushConfig;
use kwaishop_sim::{self as sim, SimConfig, SimHandle};

mod file;
mod render;

pub use file::world_stopped_at;
use file::{prepare_file, write_meta};
pub use render::{render, totals_lines};

/// How many times faster than real time the demo's world runs: a few seconds of pushes are an
/// hour of a busy shop.
pub const SPEED: f64 = 600.0;
/// The demo's one shop.
pub const SHOP: &str = "shop-0";
/// The receiver's path.
const PUSH_PATH: &str = "/kwaishop/push";
/// A world older than this (simulated) is rebuilt: the platform serves 90 days of orders.
const MAX_AGE_MS: i64 = 60 * crate::clock::DAY_MS;

/// What the demo is asked to do.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoOptions {
    /// The SQLite file to mirror into (reused when an earlier demo made it with the same seed
    /// and size; a file the demo did not make is left alone).
    #[arg(long, default_value = DEFAULT_DB)]
    pub db: PathBuf,
    /// Seed of the simulated shop.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of order history.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Orders in the history.
    #[arg(long, default_value_t = 20_000)]
    pub orders: usize,
    /// Seconds of pushes after the backfill.
    #[arg(long, default_value_t = 5)]
    pub push_secs: u64,
    /// Recreate the database even when it could be reused.
    #[arg(long)]
    pub fresh: bool,
}

/// What became of the database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileUse {
    Created,
    Reused,
    /// Recreated, and why.
    Recreated(String),
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub db: PathBuf,
    pub file: FileUse,
    /// Totals over the mirror (the reporting views and the item tables).
    pub mirror: ShopTotals,
    /// The same totals computed from the simulator's own data.
    pub truth: ShopTotals,
    pub pushes_received: u64,
    pub events_applied: u64,
    pub daily: Vec<DailySales>,
    pub top_items: Vec<ItemSales>,
    pub seconds: f64,
    pub failures: Vec<String>,
}

/// The database the demo mirrors into when none is named.
pub const DEFAULT_DB: &str = "kwaishop-demo.db";

/// The config of a kwaishop-sync that syncs the given simulator into `db`, following its clock
/// and receiving its pushes.
pub fn config_for_sim(sim: &SimHandle, db: &Path) -> Result<Config, crate::config::ConfigErrors> {
    let creds = sim.credentials();
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let (wall_origin, origin) = sim.state.clock.origin();
    // A stopped clock (a test's) has no speed a separate process could follow; the in-process
    // users of this config share the simulator's clock itself.
    let speed = Some(sim.state.clock.speed())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0);
    let mut text = format!(
        "[platform]\nbase_url = {}\napp_key = {}\napp_secret = {}\nsign_secret = {}\nmsg_secret = {}\n\n\
         [database]\nurl = {}\n\n[push]\nenabled = true\npath = {}\n\n\
         [clock]\nspeed = {:?}\nwall_origin_ms = {wall_origin}\norigin_ms = {origin}\n\n\
         [queue]\nlease_secs = {}\n",
        q(&sim.base_url()),
        q(&creds.app_key),
        q(&creds.app_secret),
        q(&creds.sign_secret),
        q(&creds.msg_secret),
        q(&format!("sqlite://{}", db.display())),
        q(PUSH_PATH),
        speed,
        super::sim::queue_lease_secs(speed),
    );
    for (i, shop) in creds.shops.iter().enumerate() {
        text.push_str(&format!(
            "\n[[shops]]\nid = \"shop-{i}\"\nopen_id = {}\nseller_id = {}\n",
            q(&shop.open_id),
            shop.seller_id
        ));
    }
    text.parse()
}

/// Stores the simulator's tokens for its shops (replacing any from an earlier demo).
pub async fn import_sim_tokens(
    store: &Store,
    sim: &SimHandle,
) -> Result<(), crate::store::StoreError> {
    for (i, shop) in sim.credentials().shops.iter().enumerate() {
        let tokens = TokenSet {
            access_token: Secret::new(shop.access_token.clone()),
            access_expires_at: shop.access_expires_at,
            refresh_token: Secret::new(shop.refresh_token.clone()),
            refresh_expires_at: shop.refresh_expires_at,
            open_id: shop.open_id.clone(),
            scopes: vec![],
        };
        store.save_tokens(&format!("shop-{i}"), &tokens).await?;
    }
    Ok(())
}

/// The totals of the simulator's shop `index`, computed from the platform's own documents —
/// independently of the mirror, its SQL and the client's record parsers.
pub fn truth_totals(sim: &SimHandle, index: usize) -> anyhow::Result<ShopTotals> {
    let shops = sim
        .state
        .shops
        .read()
        .map_err(|_| anyhow::anyhow!("the simulator's data is poisoned"))?;
    let shop = shops
        .get(index)
        .ok_or_else(|| anyhow::anyhow!("the simulator has no shop {index}"))?;
    // Plain JSON paths of the simulator's own documents, not the client's parsers: a parsing
    // mistake in the client then shows as a difference instead of agreeing with itself.
    let int = |v: &serde_json::Value, path: &[&str]| {
        path.iter().fold(v, |v, k| &v[k]).as_i64().unwrap_or(0)
    };
    let mut t = ShopTotals::default();
    for doc in shop.orders.iter() {
        let order = doc.value();
        t.orders += 1;
        if int(&order, &["orderBaseInfo", "payTime"]) != 0 {
            t.paid_orders += 1;
            t.gmv_fen += int(&order, &["orderBaseInfo", "totalFee"]);
        }
    }
    for doc in shop.refunds.iter() {
        t.refunds += 1;
        t.refund_fen += int(&doc.value(), &["refundFee"]);
    }
    for doc in shop.items.values() {
        t.items += 1;
        t.skus += doc.value()["skuList"].as_array().map_or(0, Vec::len) as i64;
    }
    Ok(t)
}

/// A line that changes in place on a terminal (or is printed once at the end elsewhere).
fn push_phase_bar(secs: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(secs.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("pushes");
    bar
}

/// Waits until the simulator has no delivery outstanding and the queue is empty.
async fn wait_for_quiet(sim: &SimHandle, store: &Store, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let sent = sim
            .state
            .pusher
            .as_ref()
            .is_none_or(|p| p.outstanding() == 0);
        let queue = store.queue_stats().await.ok();
        if sent && queue.is_some_and(|q| q.pending == 0 && q.running == 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `kwaishop-sync demo`: runs the demo, prints its report, and fails when the mirror is not
/// the simulator's truth.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    println!(
        "Starting a simulated shop ({} orders over {} days) and syncing it into {} ...",
        opts.orders,
        opts.days,
        opts.db.display()
    );
    let report = mirror_a_shop(&opts, super::progress::progress_for_terminal()).await?;
    print!("{}", render(&report));
    anyhow::ensure!(report.failures.is_empty(), "the demo sync did not complete");
    anyhow::ensure!(
        report.mirror == report.truth,
        "the mirror's totals differ from the simulator's"
    );
    Ok(())
}

/// The demo: simulator, daemon, backfill, pushes, report.
pub async fn mirror_a_shop(
    opts: &DemoOptions,
    progress: Arc<dyn SyncProgress>,
) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let (file, mut meta) = prepare_file(opts)?;
    write_meta(&opts.db, &meta)?;

    // The daemon's listener first: the simulator needs the push URL.
    let daemon_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let push_url = format!("http://{}{PUSH_PATH}", daemon_listener.local_addr()?);
    let clock = Arc::new(ScaledClock::new(wall_ms(), meta.resume_ms, SPEED));
    let sim_config = SimConfig {
        seed: opts.seed,
        days: opts.days,
        orders: opts.orders,
        speed: SPEED,
        origin_ms: Some(meta.origin_ms),
        push: Some(PushConfig {
            retry_scale: 0.001,
            heartbeat_ms: 1_000,
            ..PushConfig::new(push_url)
        }),
        ..SimConfig::default()
    };
    let sim = sim::start(
        sim_config,
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        clock.clone(),
    )
    .await?;
    let result = drive(
        opts,
        started,
        &sim,
        meta.resume_ms,
        &file,
        daemon_listener,
        progress,
    )
    .await;
    // The world stops here; the next demo resumes it from this instant.
    sim.state.mutating.store(false, Ordering::SeqCst);
    let stopped_at = sim.state.mutator.lock().map(|m| m.now_ms()).ok();
    sim.stop().await;
    let report = result?;
    if let Some(at) = stopped_at {
        meta.resume_ms = at;
        meta.complete = report.failures.is_empty();
        write_meta(&opts.db, &meta)?;
    }
    Ok(report)
}

/// The demo between starting the simulator and stopping it.
async fn drive(
    opts: &DemoOptions,
    started: Instant,
    sim: &SimHandle,
    resumed_at: i64,
    file: &FileUse,
    listener: tokio::net::TcpListener,
    progress: Arc<dyn SyncProgress>,
) -> anyhow::Result<DemoReport> {
    let config = config_for_sim(sim, &opts.db)?;
    let store = Store::open(&config.database_url).await?;
    let app = App::with_store(config, store, None).await?;
    import_sim_tokens(&app.store, sim).await?;
    let daemon = crate::daemon::start(
        app.clone(),
        Some(listener),
        crate::queue::WorkerSettings::from(&app.config.queue),
    )
    .await;
    let daemon = match daemon {
        Ok(d) => d,
        Err(e) => {
            app.store.close().await;
            return Err(e.into());
        }
    };
    let run = Stages {
        app: &app,
        shops: app.shops(None)?,
        cancel: CancellationToken::new(),
    };
    let mut failures = Vec::new();
    let mut summaries = run
        .catch_up(file, resumed_at, progress, &mut failures)
        .await?;
    let_pushes_flow(opts.push_secs, &daemon).await;
    summaries.extend(run.settle_and_poll(sim, &mut failures).await);
    let pushes_received = received(&daemon);
    let events_applied = daemon.worker.done.load(Ordering::Relaxed);
    daemon.stop().await;
    failures.extend(
        summaries
            .iter()
            .filter(|s| s.outcome != RunOutcome::CaughtUp)
            .map(|s| {
                format!(
                    "{} {}: {}",
                    s.shop_id,
                    s.stream.as_str(),
                    super::sync::outcome_text(&s.outcome)
                )
            }),
    );
    let read = read_views(&app).await;
    app.store.close().await;
    let (mirror, daily, top_items) = read?;
    Ok(DemoReport {
        db: opts.db.clone(),
        file: file.clone(),
        mirror,
        truth: truth_totals(sim, 0)?,
        pushes_received,
        events_applied,
        daily,
        top_items,
        seconds: started.elapsed().as_secs_f64(),
        failures,
    })
}

/// The demo's application, its shops and the token that would stop its runs.
struct Stages<'a> {
    app: &'a App,
    shops: Vec<String>,
    cancel: CancellationToken,
}

impl Stages<'_> {
    /// 1. Catch up (a backfill on a new file), and on a reused file re-read what changed
    ///    between the last demo's stop and its last poll.
    async fn catch_up(
        &self,
        file: &FileUse,
        resumed_at: i64,
        progress: Arc<dyn SyncProgress>,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<Vec<crate::sync::RunSummary>> {
        let (app, shops) = (self.app, &self.shops);
        eprintln!(
            "{} the shop's history from the simulator ...",
            if *file == FileUse::Reused {
                "Catching up on"
            } else {
                "Backfilling"
            }
        );
        let summaries =
            super::sync::sync_once(app, shops, &Stream::ALL, progress, self.cancel.clone()).await;
        if *file != FileUse::Reused {
            return Ok(summaries);
        }
        let cx = app.sync_context();
        for shop in shops {
            for stream in [Stream::Orders, Stream::Refunds] {
                cx.request_resync(shop, stream, ResyncKind::Resync, Some(resumed_at))
                    .await?;
            }
        }
        let resyncs = super::sync::resync_once(
            app,
            shops,
            &Stream::ALL,
            Arc::new(NoProgress),
            self.cancel.clone(),
        )
        .await?;
        for (request, outcome) in resyncs {
            if outcome != RunOutcome::CaughtUp {
                failures.push(format!(
                    "resync of {} {}: {}",
                    request.shop_id,
                    request.stream.as_str(),
                    super::sync::outcome_text(&outcome)
                ));
            }
        }
        Ok(summaries)
    }

    /// 3. Stops the world, lets the last pushes land, and polls once more past the settle
    ///    delay.
    async fn settle_and_poll(
        &self,
        sim: &SimHandle,
        failures: &mut Vec<String>,
    ) -> Vec<crate::sync::RunSummary> {
        let app = self.app;
        sim.state.mutating.store(false, Ordering::SeqCst);
        if !wait_for_quiet(sim, &app.store, Duration::from_secs(20)).await {
            failures.push("pushes still outstanding after 20 s".to_string());
        }
        let settle = Stream::ALL
            .iter()
            .map(|s| app.config.stream(*s).settle)
            .max()
            .unwrap_or_default();
        tokio::time::sleep(settle.div_f64(SPEED) + Duration::from_millis(50)).await;
        let cancel = self.cancel.clone();
        super::sync::sync_once(app, &self.shops, &Stream::ALL, Arc::new(NoProgress), cancel).await
    }
}

/// Pushes the receiver took in.
fn received(daemon: &crate::daemon::DaemonHandle) -> u64 {
    daemon
        .receiver
        .as_ref()
        .map_or(0, |r| r.accepted.load(Ordering::Relaxed))
}

/// 2. Pushes: the simulator keeps selling; the receiver stores, the worker merges.
async fn let_pushes_flow(secs: u64, daemon: &crate::daemon::DaemonHandle) {
    eprintln!("Letting pushes flow for {secs} s ...");
    let bar = push_phase_bar(secs);
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bar.inc(1);
        bar.set_message(format!(
            "{} received, {} applied",
            received(daemon),
            daemon.worker.done.load(Ordering::Relaxed)
        ));
    }
    bar.finish_and_clear();
}

/// 4. The report's figures, from the views: the mirror's totals, the last week's sales and the
///    best sellers.
async fn read_views(
    app: &App,
) -> Result<
    (
        ShopTotals,
        Vec<crate::store::DailySales>,
        Vec<crate::store::ItemSales>,
    ),
    crate::store::StoreError,
> {
    let all = ReportFilter {
        shop_id: Some(SHOP.to_string()),
        ..ReportFilter::default()
    };
    let mirror = app.store.shop_totals(SHOP).await?;
    let mut daily = app.store.daily_sales(&all).await?;
    let keep_from = daily.len().saturating_sub(7);
    daily.drain(..keep_from);
    let mut top_items = app.store.item_sales(&all).await?;
    top_items.truncate(5);
    Ok((mirror, daily, top_items))
}
