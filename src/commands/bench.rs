//! `kwaishop-sync bench push`: how fast the receiver acknowledges. A simulated shop and a daemon
//! (receiver and worker, on a SQLite file) run in this process; a load generator sends encrypted
//! pushes over loopback at a fixed rate (open loop: a slow answer does not slow the senders) and
//! records the time from sending each request to its `{"result":1}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpListener;

use crate::app::App;
use crate::daemon;
use crate::push::MessageKey;
use crate::queue::WorkerSettings;
use crate::store::Store;
use kwaishop_sim::ScaledClock;
use kwaishop_sim::{self as sim, SimConfig};

/// `bench`'s subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Time to acknowledge pushes at a fixed rate (receiver + worker on a SQLite file).
    Push {
        /// Pushes per second.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// How long to send.
        #[arg(long, default_value_t = 30)]
        seconds: u32,
        /// The SQLite file (replaced); default a temporary file.
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

/// Runs a `bench` subcommand.
pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Push { rate, seconds, db } => {
            let dir = std::env::temp_dir().join(format!("kwaishop-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let path = db.unwrap_or_else(|| dir.join("bench.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            println!(
                "sending {rate} pushes/s for {seconds} s to a receiver on {} (SQLite) ...",
                path.display()
            );
            let r = push(rate, seconds, &path).await?;
            println!(
                "sent {}, acknowledged {}, failed {}; time to acknowledge: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; applied by the worker: {}",
                r.sent, r.acked, r.failed, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.applied
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

/// The outcome of a push benchmark.
#[derive(Debug, Clone)]
pub struct PushBenchReport {
    pub sent: usize,
    pub acked: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub applied: i64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The load generator: encrypted pushes about the simulated shop's orders.
struct Load {
    http: reqwest::Client,
    url: String,
    key: MessageKey,
    creds: kwaishop_sim::SimCredentials,
    oids: Vec<i64>,
}

impl Load {
    /// Sends `total` pushes at `rate` a second, open loop (a slow answer does not slow the
    /// senders); returns the times to acknowledge, in ms, and how many were not acknowledged.
    async fn send(&self, rate: u32, total: usize) -> (Vec<f64>, usize) {
        let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let start = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            tokio::time::sleep_until(start + period * i as u32).await;
            let body = self.body(&format!("bench-{}-{i}", start.elapsed().as_nanos()), i);
            let (http, url) = (self.http.clone(), self.url.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let ok = match http.post(&url).body(body).send().await {
                    Ok(r) => {
                        r.status() == 200 && r.text().await.is_ok_and(|t| t == r#"{"result":1}"#)
                    }
                    Err(_) => false,
                };
                (ok, sent.elapsed().as_secs_f64() * 1000.0)
            });
        }
        let mut latencies = Vec::with_capacity(total);
        let mut failed = 0;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((true, ms)) => latencies.push(ms),
                _ => failed += 1,
            }
        }
        (latencies, failed)
    }

    /// The `i`-th push: an order paid, sealed with the app's message key.
    fn body(&self, event_id: &str, i: usize) -> String {
        let oid = self.oids[i % self.oids.len()];
        let shop = &self.creds.shops[0];
        let plain = json!({
            "eventId": event_id, "bizId": oid,
            "userId": shop.seller_id, "openId": shop.open_id,
            "appKey": self.creds.app_key, "event": "kwaishop_order_paySuccess",
            "info": json!({"oid": oid, "status": 30}).to_string(),
        });
        self.key.encrypt(plain.to_string().as_bytes())
    }
}

/// Runs the benchmark: `rate` pushes a second for `seconds`, into the SQLite file `db`.
pub async fn push(rate: u32, seconds: u32, db: &Path) -> anyhow::Result<PushBenchReport> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let config = SimConfig {
        orders: 2_000,
        days: 10,
        mutate: false,
        qps: Some(2_000.0),
        ..SimConfig::default()
    };
    let sim = sim::start(config, listener, Arc::new(ScaledClock::starting_now(1.0))).await?;
    let mut config = super::demo::config_for_sim(&sim, db)?;
    config.push.enabled = true;
    config.limits.qps = crate::api::Method::ALL
        .iter()
        .map(|m| (*m, 2_000.0))
        .collect();
    let store = Store::open(&config.database_url).await?;
    let app = App::with_store(config, store, None).await?;
    super::demo::import_sim_tokens(&app.store, &sim).await?;
    let receiver = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}{}", receiver.local_addr()?, app.config.push.path);
    let handle = daemon::start(app.clone(), Some(receiver), WorkerSettings::default()).await?;

    let creds = sim.credentials().clone();
    let key = MessageKey::from_secret(&creds.msg_secret)?;
    let oids: Vec<i64> = sim
        .state
        .shops
        .read()
        .map(|s| s[0].orders.ids_sorted())
        .unwrap_or_default();
    anyhow::ensure!(!oids.is_empty(), "the simulated shop has no orders");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()?;
    let total = (rate * seconds) as usize;
    let load = Load {
        http,
        url,
        key,
        creds,
        oids,
    };
    let (mut latencies, failed) = load.send(rate, total).await;
    latencies.sort_by(f64::total_cmp);
    let applied = app.store.queue_stats().await.map(|s| s.done).unwrap_or(0);
    handle.stop().await;
    sim.stop().await;
    Ok(PushBenchReport {
        sent: total,
        acked: latencies.len(),
        failed,
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        applied,
    })
}
