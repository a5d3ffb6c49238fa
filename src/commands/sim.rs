//! `kwaishop-sync sim`: the platform simulator (the `kwaishop-sim` crate) on an address, with
//! the fake app's credentials and a ready kwaishop-sync config file written for it, until
//! stopped. The config is this product's format, so it is written here, not by the simulator.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use kwaishop_sim::faults::FaultConfig;
use kwaishop_sim::push::PushConfig;
use kwaishop_sim::variants::PlatformVariants;
use kwaishop_sim::{Latency, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

/// What `kwaishop-sync sim` is told.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Seed of the data generator: the same seed gives the same shops, items and orders.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of shops.
    #[arg(long, default_value_t = 1)]
    pub shops: usize,
    /// Days of order history to generate (at most 90 are reachable through the API).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Orders per shop in the generated history.
    #[arg(long, default_value_t = 2_000)]
    pub orders: usize,
    /// Items per shop (default: orders / 30, between 20 and 2000).
    #[arg(long)]
    pub items: Option<usize>,
    /// Share of paid orders that get a refund.
    #[arg(long)]
    pub refund_rate: Option<f64>,
    /// QPS limit per API method (default: the platform's 100, and 300 for the order list).
    #[arg(long)]
    pub qps: Option<f64>,
    /// Daily call quota per shop (China-time days on the simulator's clock).
    #[arg(long)]
    pub daily_quota: Option<u64>,
    /// How many times faster than real time the simulator's clock runs.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Do not create or change orders, refunds and items while running.
    #[arg(long)]
    pub no_mutate: bool,
    /// New orders per shop per simulated day while running (default: orders / days).
    #[arg(long)]
    pub orders_per_day: Option<f64>,
    /// Share of API calls that fail (split evenly over 5xx, timeouts, throttling, slow and cut answers).
    #[arg(long, default_value_t = 0.0)]
    pub faults: f64,
    /// Round-trip time added to every API answer, as the distance to the real platform
    /// (30–200 ms from a shop): half before the request is handled, half after.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Up to this much more latency per request, at random.
    #[arg(long, default_value_t = 0)]
    pub latency_jitter_ms: u64,
    /// Answer with the platform's standard spellings only (no alternative field names).
    #[arg(long)]
    pub no_quirks: bool,
    /// Where the platform's behaviour is not known for sure, pick one plausible answer per
    /// point from this seed (docs/platform-variants.md lists them; four seeds cover them all).
    #[arg(long, value_name = "SEED")]
    pub platform_variants: Option<u64>,
    /// Send push messages for every change to this URL.
    #[arg(long)]
    pub push_url: Option<String>,
    /// Scale of the push retry schedule (5, 10, 20, 30, 60 minutes); 0.001 makes it seconds.
    #[arg(long, default_value_t = 1.0)]
    pub push_retry_scale: f64,
    /// Share of push messages delivered twice.
    #[arg(long, default_value_t = 0.0)]
    pub push_duplicate: f64,
    /// Share of push messages held back so later ones overtake them.
    #[arg(long, default_value_t = 0.0)]
    pub push_out_of_order: f64,
    /// Share of push messages never delivered.
    #[arg(long, default_value_t = 0.0)]
    pub push_drop: f64,
    /// Heartbeat period in milliseconds (0: none).
    #[arg(long, default_value_t = 10_000)]
    pub push_heartbeat_ms: u64,
    /// Write the fake app's credentials and each shop's tokens to this JSON file.
    #[arg(long)]
    pub credentials_out: Option<PathBuf>,
    /// Write a kwaishop-sync config file pointing at this simulator (secrets beside it).
    #[arg(long)]
    pub config_out: Option<PathBuf>,
    /// Database URL to put into the written config (default: a SQLite file beside it).
    #[arg(long)]
    pub db: Option<String>,
}

impl SimArgs {
    /// The simulator's settings these arguments describe.
    pub fn sim_config(&self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            shops: self.shops.max(1),
            days: self.days.max(1),
            orders: self.orders,
            items: self.items,
            refund_rate: self.refund_rate,
            qps: self.qps,
            daily_quota: self.daily_quota,
            speed: self.speed,
            mutate: !self.no_mutate,
            orders_per_day: self.orders_per_day,
            faults: FaultConfig::uniform(self.faults),
            latency: Latency {
                base: Duration::from_millis(self.latency_ms),
                jitter: Duration::from_millis(self.latency_jitter_ms),
            },
            push: self.push_url.as_ref().map(|url| PushConfig {
                retry_scale: self.push_retry_scale,
                duplicate: self.push_duplicate,
                out_of_order: self.push_out_of_order,
                drop: self.push_drop,
                heartbeat_ms: self.push_heartbeat_ms,
                ..PushConfig::new(url.clone())
            }),
            quirks: !self.no_quirks,
            variants: self
                .platform_variants
                .map(PlatformVariants::from_seed)
                .unwrap_or_default(),
            ..SimConfig::default()
        }
    }
}

/// Runs the simulator until `shutdown`.
pub async fn run(args: SimArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let handle = kwaishop_sim::run::launch(
        args.sim_config(),
        &args.listen,
        args.credentials_out.as_deref(),
    )
    .await
    .context("starting the simulator")?;
    println!("simulator listening on {}", handle.base_url());
    println!(
        "  {} shop(s), data generated in {:.1}s; truth at {}/__sim/truth, call log at {}/__sim/calls",
        handle.credentials().shops.len(),
        started.elapsed().as_secs_f64(),
        handle.base_url(),
        handle.base_url()
    );
    if let Some(path) = &args.credentials_out {
        println!("  credentials written to {}", path.display());
    }
    if let Some(path) = &args.config_out {
        let limits = Limits {
            qps: args.qps,
            daily_quota: args.daily_quota,
        };
        write_config(&handle, path, args.db.as_deref(), limits)?;
        println!("  config written to {}", path.display());
    }
    shutdown.cancelled().await;
    println!("stopping the simulator");
    handle.stop().await;
    Ok(())
}

/// The limits a written config sets, as the simulator was told them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub qps: Option<f64>,
    pub daily_quota: Option<u64>,
}

/// The queue worker's claim lease for a kwaishop-sync that follows a clock running `speed` times
/// as fast: the lease is measured on that clock, so this keeps the default five minutes of real
/// time (at 600x the default would expire in half a second, in the middle of a fetch).
pub fn queue_lease_secs(speed: f64) -> u64 {
    (300.0 * speed.max(1.0)).round() as u64
}

/// Writes a kwaishop-sync config file for the simulator at `path`, each secret and token in its
/// own owner-only file under `<stem>.secrets/` beside it; `db` defaults to `<stem>.db` there.
pub fn write_config(
    sim: &SimHandle,
    path: &Path,
    db: Option<&str>,
    limits: Limits,
) -> anyhow::Result<()> {
    let creds = sim.credentials();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("kwaishop-sync");
    let secrets = format!("{stem}.secrets");
    let put =
        |name: &str, value: &str| write_private(&dir.join(&secrets).join(name), value.as_bytes());
    put("app_secret", &creds.app_secret)?;
    put("sign_secret", &creds.sign_secret)?;
    put("msg_secret", &creds.msg_secret)?;
    let db = db
        .map(str::to_string)
        .unwrap_or_else(|| format!("sqlite://{stem}.db"));
    let mut out = format!(
        "# Written by `kwaishop-sync sim --config-out`: kwaishop-sync against the local simulator.\n\
         # Paths are relative to this file. The secrets are the simulator's fake ones.\n\n\
         [platform]\nbase_url = {}\napp_key = {}\napp_secret_file = {}\nsign_secret_file = {}\nmsg_secret_file = {}\n\n\
         [database]\nurl = {}\n",
        toml_str(&sim.base_url()),
        toml_str(&creds.app_key),
        toml_str(&format!("{secrets}/app_secret")),
        toml_str(&format!("{secrets}/sign_secret")),
        toml_str(&format!("{secrets}/msg_secret")),
        toml_str(&db),
    );
    let clock = &sim.state.clock;
    if (clock.speed() - 1.0).abs() > f64::EPSILON {
        let (wall_origin, origin) = clock.origin();
        let speed = clock.speed();
        out.push_str(&format!(
            "\n# The simulator's clock runs {speed}x: kwaishop-sync follows it.\n[clock]\nspeed = {speed:?}\nwall_origin_ms = {wall_origin}\norigin_ms = {origin}\n",
        ));
        out.push_str(&format!(
            "\n[queue]\nlease_secs = {}\n",
            queue_lease_secs(speed)
        ));
    }
    if limits.qps.is_some() || limits.daily_quota.is_some() {
        out.push_str("\n[limits]\n");
        if let Some(q) = limits.qps {
            out.push_str(&format!("qps = {{ default = {q:?} }}\n"));
        }
        if let Some(q) = limits.daily_quota {
            out.push_str(&format!("daily_quota = {q}\n"));
        }
    }
    for (i, shop) in creds.shops.iter().enumerate() {
        let token = serde_json::json!({
            "access_token": shop.access_token,
            "refresh_token": shop.refresh_token,
            "access_expires_at": shop.access_expires_at,
            "refresh_expires_at": shop.refresh_expires_at,
            "open_id": shop.open_id,
        });
        put(&format!("shop-{i}.token.json"), &token.to_string())?;
        out.push_str(&format!(
            "\n[[shops]]\nid = {}\nopen_id = {}\nseller_id = {}\ntoken_file = {}\n",
            toml_str(&format!("shop-{i}")),
            toml_str(&shop.open_id),
            shop.seller_id,
            toml_str(&format!("{secrets}/shop-{i}.token.json")),
        ));
    }
    write_private(path, out.as_bytes())
}

/// A TOML basic string: JSON's string escapes are valid TOML.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Writes a file readable by its owner only (it holds the simulator's fake secrets, but habits
/// matter), making its folder first.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))
}
