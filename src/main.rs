//! The `kwaishop-sync` command line. Everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kwaishop_sync::sim::{self, SimConfig, faults::FaultConfig, push::PushConfig, run::SimOutputs};

#[derive(Parser, Debug)]
#[command(
    name = "kwaishop-sync",
    version,
    about = "Mirror Kuaishou shops (orders, refunds, items, SKUs) into SQLite or Postgres"
)]
struct Cli {
    /// Log filter (tracing syntax, e.g. `info`, `kwaishop_sync=debug`); overrides RUST_LOG.
    #[arg(long, global = true, env = "KWAISHOP_SYNC_LOG")]
    log: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the local simulator of the Kuaishou open platform (for trying, testing, benchmarking).
    Sim(SimArgs),
}

#[derive(Args, Debug)]
struct SimArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Seed of the data generator: the same seed gives the same shops, items and orders.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of shops.
    #[arg(long, default_value_t = 1)]
    shops: usize,
    /// Days of order history to generate (at most 90 are reachable through the API).
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Orders per shop in the generated history.
    #[arg(long, default_value_t = 2_000)]
    orders: usize,
    /// Items per shop (default: orders / 30, between 20 and 2000).
    #[arg(long)]
    items: Option<usize>,
    /// Share of paid orders that get a refund.
    #[arg(long)]
    refund_rate: Option<f64>,
    /// QPS limit per API method (default: the platform's 100, and 300 for the order list).
    #[arg(long)]
    qps: Option<f64>,
    /// Daily call quota per shop (China-time days on the simulator's clock).
    #[arg(long)]
    daily_quota: Option<u64>,
    /// How many times faster than real time the simulator's clock runs.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Do not create or change orders, refunds and items while running.
    #[arg(long)]
    no_mutate: bool,
    /// New orders per shop per simulated day while running (default: orders / days).
    #[arg(long)]
    orders_per_day: Option<f64>,
    /// Share of API calls that fail (split evenly over 5xx, timeouts, throttling, slow and cut answers).
    #[arg(long, default_value_t = 0.0)]
    faults: f64,
    /// Answer with the platform's standard spellings only (no alternative field names).
    #[arg(long)]
    no_quirks: bool,
    /// Send push messages for every change to this URL.
    #[arg(long)]
    push_url: Option<String>,
    /// Scale of the push retry schedule (5, 10, 20, 30, 60 minutes); 0.001 makes it seconds.
    #[arg(long, default_value_t = 1.0)]
    push_retry_scale: f64,
    /// Share of push messages delivered twice.
    #[arg(long, default_value_t = 0.0)]
    push_duplicate: f64,
    /// Share of push messages held back so later ones overtake them.
    #[arg(long, default_value_t = 0.0)]
    push_out_of_order: f64,
    /// Share of push messages never delivered.
    #[arg(long, default_value_t = 0.0)]
    push_drop: f64,
    /// Heartbeat period in milliseconds (0: none).
    #[arg(long, default_value_t = 10_000)]
    push_heartbeat_ms: u64,
    /// Write the fake app's credentials and each shop's tokens to this JSON file.
    #[arg(long)]
    credentials_out: Option<PathBuf>,
    /// Write a kwaishop-sync config file pointing at this simulator (secrets beside it).
    #[arg(long)]
    config_out: Option<PathBuf>,
    /// Database URL to put into the written config (default: a SQLite file beside it).
    #[arg(long)]
    db: Option<String>,
}

impl SimArgs {
    fn config(&self) -> SimConfig {
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
            push: self.push_url.as_ref().map(|url| PushConfig {
                retry_scale: self.push_retry_scale,
                duplicate: self.push_duplicate,
                out_of_order: self.push_out_of_order,
                drop: self.push_drop,
                heartbeat_ms: self.push_heartbeat_ms,
                ..PushConfig::new(url.clone())
            }),
            quirks: !self.no_quirks,
            ..SimConfig::default()
        }
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = cli
        .log
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    let outputs = SimOutputs {
        credentials_out: args.credentials_out.clone(),
        config_out: args.config_out.clone(),
        db: args.db.clone(),
    };
    let config = args.config();
    let started = std::time::Instant::now();
    let handle = sim::run::launch(config, &args.listen, &outputs)
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
    if let Some(path) = &outputs.credentials_out {
        println!("  credentials written to {}", path.display());
    }
    if let Some(path) = &outputs.config_out {
        println!("  config written to {}", path.display());
    }
    shutdown_signal().await;
    println!("stopping the simulator");
    handle.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sim(args) => run_sim(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
