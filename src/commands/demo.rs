//! `kwaishop-sync demo`: the simulator in this process with a seeded shop, a sync of it into a
//! local SQLite file, and a short summary — what a newcomer runs first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::api::oauth::TokenSet;
use crate::app::App;
use crate::clock::ScaledClock;
use crate::config::Config;
use crate::secret::Secret;
use crate::sim::{self, SimConfig, SimHandle};
use crate::store::{Store, Stream};
use crate::sync::{RunOutcome, SyncProgress};

/// What the demo is asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub db: PathBuf,
    pub seed: u64,
    pub days: u32,
    pub orders: usize,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub db: PathBuf,
    pub recreated: bool,
    pub orders: i64,
    pub refunds: i64,
    pub items: i64,
    pub skus: i64,
    pub seconds: f64,
    pub failures: Vec<String>,
}

/// The config of a kwaishop-sync that syncs the given simulator into `db`.
pub fn config_for_sim(sim: &SimHandle, db: &Path) -> Result<Config, crate::config::ConfigErrors> {
    let creds = sim.credentials();
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut text = format!(
        "[platform]\nbase_url = {}\napp_key = {}\napp_secret = {}\nsign_secret = {}\nmsg_secret = {}\n\n[database]\nurl = {}\n",
        q(&sim.base_url()),
        q(&creds.app_key),
        q(&creds.app_secret),
        q(&creds.sign_secret),
        q(&creds.msg_secret),
        q(&format!("sqlite://{}", db.display())),
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

fn remove_db(path: &Path) -> std::io::Result<bool> {
    let existed = path.exists();
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::remove_file(p)?;
        }
    }
    Ok(existed)
}

/// Runs the demo: simulator, sync, summary.
pub async fn run(
    opts: &DemoOptions,
    progress: Arc<dyn SyncProgress>,
) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    // Each demo simulates a new world (its own "now"), so an earlier demo file is replaced.
    let recreated = remove_db(&opts.db)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let config = SimConfig {
        seed: opts.seed,
        days: opts.days,
        orders: opts.orders,
        ..SimConfig::default()
    };
    let sim = sim::start(config, listener, Arc::new(ScaledClock::starting_now(1.0))).await?;
    let config = config_for_sim(&sim, &opts.db)?;
    let store = Store::connect(&config.database_url).await?;
    let app = App::with_store(config, store).await?;
    import_sim_tokens(&app.store, &sim).await?;
    let shops = app.shops(None)?;
    let summaries = super::sync::sync_once(
        &app,
        &shops,
        &Stream::ALL,
        progress,
        CancellationToken::new(),
    )
    .await;
    let failures = summaries
        .iter()
        .filter(|s| s.outcome != RunOutcome::CaughtUp)
        .map(|s| {
            format!(
                "{} {}: {}",
                s.shop_id,
                s.stream.as_str(),
                super::sync::outcome_text(&s.outcome)
            )
        })
        .collect();
    let count = |table: &'static str| {
        let store = app.store.clone();
        async move { store.count_rows(table, "shop-0").await.unwrap_or(0) }
    };
    let report = DemoReport {
        db: opts.db.clone(),
        recreated,
        orders: count("orders").await,
        refunds: count("refunds").await,
        items: count("items").await,
        skus: count("skus").await,
        seconds: started.elapsed().as_secs_f64(),
        failures,
    };
    app.store.close().await;
    sim.stop().await;
    Ok(report)
}

/// The text printed at the end of the demo.
pub fn render(report: &DemoReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\nMirrored a simulated shop into {} ({}) in {:.1}s:\n  orders (incl. gift sub-orders): {}\n  refunds: {}\n  items: {} with {} SKUs\n",
        report.db.display(),
        if report.recreated { "recreated" } else { "created" },
        report.seconds,
        report.orders,
        report.refunds,
        report.items,
        report.skus,
    ));
    for f in &report.failures {
        out.push_str(&format!("  problem: {f}\n"));
    }
    out.push_str(&format!(
        "\nTry it:\n  sqlite3 {db} \"select status, count(*), sum(total_fee)/100.0 as yuan from orders group by status\"\n  sqlite3 {db} \"select status, count(*), sum(refund_fee)/100.0 from refunds group by status\"\n  sqlite3 {db} \"select title, price/100.0 from items where deleted_at is null order by price desc limit 5\"\n",
        db = report.db.display()
    ));
    out
}
