//! The `kwaishop-sync` command line. Everything it runs lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use kwaishop_sync::app::App;
use kwaishop_sync::commands;
use kwaishop_sync::config::Config;
use kwaishop_sync::store::{Store, Stream};
use kwaishop_sync::sync::RunOutcome;
use tokio_util::sync::CancellationToken;

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
    /// Try it: a simulated shop mirrored into ./kwaishop-demo.db by the daemon (backfill and
    /// pushes), then a report checked against the simulator.
    Demo(DemoArgs),
    /// The service: pollers on their schedules, push receiver, queue worker, token keeper.
    Run(RunArgs),
    /// Ask for a range to be re-read (durably), and wake the running daemon.
    Resync(ResyncArgs),
    /// Catch up every shop and stream (or the ones named) and exit.
    Sync(SyncArgs),
    /// Look at and manage the push queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Records that could not be read or stored, set aside while their pages moved on.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Authorize a shop: the authorize link, the code exchange, or a token from the console.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Per shop and stream: checkpoint, lag, last run, rows, last error.
    Status(StatusArgs),
    /// The reporting views: sales per day, refunds by status and way, sales per item and SKU.
    Report(ReportArgs),
    /// Create or upgrade the database schema (every command also does this at start).
    Migrate(ConfigArg),
    /// Validate a config file and list every error in it.
    CheckConfig(ConfigArg),
    /// Run the local simulator of the Kuaishou open platform (for trying, testing, benchmarking).
    Sim(Box<commands::sim::SimArgs>),
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Request a resync of every shop and stream at start.
    #[arg(long)]
    resync: bool,
}

#[derive(Args, Debug)]
struct ResyncArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this shop.
    #[arg(long)]
    shop: Option<String>,
    /// Only this stream.
    #[arg(long, value_enum)]
    stream: Option<StreamArg>,
    /// From this date (YYYY-MM-DD, Beijing time) or instant (RFC 3339); default and limit: the
    /// platform's 90 days.
    #[arg(long)]
    since: Option<String>,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
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

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// Print the link the merchant opens to authorize the app for a shop.
    Url {
        #[command(flatten)]
        config: ConfigArg,
        /// The shop's id in the config.
        #[arg(long)]
        shop: String,
        /// An opaque value the platform echoes back to the callback.
        #[arg(long, default_value = "kwaishop-sync")]
        state: String,
    },
    /// Exchange the code the callback received for the shop's tokens (stored in the database).
    Exchange {
        #[command(flatten)]
        config: ConfigArg,
        /// The shop's id in the config.
        #[arg(long)]
        shop: String,
        /// The authorization code (valid for 2 minutes, once).
        #[arg(long)]
        code: String,
    },
    /// Store a token copied from the platform console, read as JSON from a file or stdin.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The shop's id in the config.
        #[arg(long)]
        shop: String,
        /// The JSON file ({"access_token": …, "refresh_token": …, "expires_in": …}); `-` is stdin.
        #[arg(long, default_value = "-")]
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum QueueCommand {
    /// List the newest events (all statuses, or one).
    Ls {
        #[command(flatten)]
        config: ConfigArg,
        /// Only events with this status: pending, running, done, dead, unknown_shop.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// List dead events with their last error.
    Dead {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put a dead (or unknown-shop) event back in the queue.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// The event's id (first column of `queue ls`).
        id: i64,
        /// For an unknown-shop event: the shop it belongs to.
        #[arg(long)]
        shop: Option<String>,
    },
    /// Remove done events older than a duration (e.g. 7d, 12h).
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "DURATION")]
        done_older_than: String,
    },
}

#[derive(Subcommand, Debug)]
enum QuarantineCommand {
    /// List the quarantined records with their errors (the JSON of each with --json).
    Ls {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this shop's.
        #[arg(long)]
        shop: Option<String>,
        /// Everything, raw JSON included, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch quarantined records again by id and store them; those still unreadable stay.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this shop's.
        #[arg(long)]
        shop: Option<String>,
        /// Only these keys (second column of `quarantine ls`); all when none.
        keys: Vec<String>,
    },
    /// Remove a record from quarantine without storing it (one whose id cannot be read, after
    /// a resync of its range).
    Drop {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        shop: String,
        #[arg(long, value_enum)]
        stream: StreamArg,
        key: String,
    },
}

/// The config file read when none is named.
const DEFAULT_CONFIG: &str = "kwaishop-sync.toml";

#[derive(Args, Debug)]
struct ConfigArg {
    /// The config file.
    #[arg(
        long,
        short,
        env = "KWAISHOP_SYNC_CONFIG",
        default_value = DEFAULT_CONFIG
    )]
    config: PathBuf,
}

#[derive(Args, Debug)]
struct SyncArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this shop (its id in the config).
    #[arg(long)]
    shop: Option<String>,
    /// Only this stream.
    #[arg(long, value_enum)]
    stream: Option<StreamArg>,
    /// Catch up and exit (the only mode of this command; `run` is the service).
    #[arg(long)]
    once: bool,
    /// Also re-read the last days of orders and refunds (the deep reconcile; days from the config).
    #[arg(long)]
    reconcile: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum StreamArg {
    Orders,
    Refunds,
    Items,
}

impl From<StreamArg> for Stream {
    fn from(s: StreamArg) -> Stream {
        match s {
            StreamArg::Orders => Stream::Orders,
            StreamArg::Refunds => Stream::Refunds,
            StreamArg::Items => Stream::Items,
        }
    }
}

#[derive(Args, Debug)]
struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ReportArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Read this database instead of the config's (a SQLite path, `sqlite://…` or
    /// `postgres://…`), e.g. `--db kwaishop-demo.db` after the demo.
    #[arg(long)]
    db: Option<String>,
    /// Only this shop (its id in the config).
    #[arg(long)]
    shop: Option<String>,
    /// First China-time day to include (YYYY-MM-DD).
    #[arg(long, value_parser = commands::report::parse_day)]
    from: Option<String>,
    /// Last China-time day to include (YYYY-MM-DD).
    #[arg(long, value_parser = commands::report::parse_day)]
    to: Option<String>,
    /// Only these views (repeatable; default: all three).
    #[arg(long, value_enum)]
    view: Vec<commands::report::View>,
    #[arg(long, value_enum, default_value = "table")]
    format: commands::report::Format,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// The SQLite file to mirror into (reused when an earlier demo made it with the same seed
    /// and size; a file the demo did not make is left alone).
    #[arg(long, default_value = commands::demo::DEFAULT_DB)]
    db: PathBuf,
    /// Seed of the simulated shop.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Days of order history.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Orders in the history.
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Seconds of pushes after the backfill.
    #[arg(long, default_value_t = 5)]
    push_secs: u64,
    /// Recreate the database even when it could be reused.
    #[arg(long)]
    fresh: bool,
}

fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let terminal = std::io::stderr().is_terminal();
    // Progress bars and log lines share the terminal: under bars, only warnings are logged.
    let bars = terminal && matches!(cli.command, Command::Demo(_) | Command::Sync(_));
    let default = if bars { "warn" } else { "info" };
    let filter = cli
        .log
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    Config::load(&arg.config).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    let opts = commands::demo::DemoOptions {
        db: args.db,
        seed: args.seed,
        days: args.days,
        orders: args.orders,
        push_secs: args.push_secs,
        fresh: args.fresh,
    };
    println!(
        "Starting a simulated shop ({} orders over {} days) and syncing it into {} ...",
        opts.orders,
        opts.days,
        opts.db.display()
    );
    let report = commands::demo::run(&opts, commands::sync::progress_for_terminal()).await?;
    print!("{}", commands::demo::render(&report));
    anyhow::ensure!(report.failures.is_empty(), "the demo sync did not complete");
    anyhow::ensure!(
        report.mirror == report.truth,
        "the mirror's totals differ from the simulator's"
    );
    Ok(())
}

async fn run_sync(args: SyncArgs) -> anyhow::Result<()> {
    if !args.once {
        anyhow::bail!(
            "`sync` catches up and exits: add --once (the service is `kwaishop-sync run`)"
        );
    }
    let config = load_config(&args.config)?;
    let mut app = App::open(config).await?;
    let shops = app.shops(args.shop.as_deref())?;
    anyhow::ensure!(!shops.is_empty(), "no [[shops]] in the config");
    let streams: Vec<Stream> = match args.stream {
        Some(s) => vec![s.into()],
        None => Stream::ALL.to_vec(),
    };
    // One instance among the others: the SQLite file's lock, or on Postgres a share of the QPS
    // budget and the streams' leases.
    let presence =
        kwaishop_sync::daemon::instance::Presence::enter(&mut app, "sync --once").await?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        eprintln!("stopping after the current page (press Ctrl-C again to exit at once)");
        stop.cancel();
        shutdown_signal().await;
        std::process::exit(130);
    });
    let progress = commands::sync::progress_for_terminal();
    let summaries = commands::sync::sync_once_as(
        &app,
        &shops,
        &streams,
        progress.clone(),
        cancel.clone(),
        presence.runner(),
    )
    .await;
    print!("{}", commands::sync::summary_table(&summaries));
    if args.reconcile {
        let cx = app.sync_context();
        for shop in &shops {
            cx.request_reconcile(shop, app.config.sync.reconcile_days)
                .await?;
        }
    }
    // Then the resyncs waiting for these shops and streams (`kwaishop-sync resync`, the deep
    // reconcile).
    let resyncs = commands::sync::resync_once_as(
        &app,
        &shops,
        &streams,
        progress,
        cancel,
        &presence.runner(),
    )
    .await;
    presence.leave().await;
    let mut failed = summaries
        .iter()
        .filter(|s| {
            matches!(
                s.outcome,
                RunOutcome::Failed { .. } | RunOutcome::NeedsReauth
            )
        })
        .count();
    for (request, outcome) in resyncs? {
        println!(
            "{} {}: resync #{} {}",
            request.shop_id,
            request.stream.as_str(),
            request.id,
            commands::sync::outcome_text(&outcome)
        );
        if matches!(outcome, RunOutcome::Failed { .. } | RunOutcome::NeedsReauth) {
            failed += 1;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} run(s) did not finish; see above");
    Ok(())
}

async fn run_status(args: StatusArgs) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    let clock = kwaishop_sync::app::clock_for(&config);
    let stalls = kwaishop_sync::sync::StallLimits::from_config(&config);
    let lines = commands::status::status_lines(&store, clock.now_ms(), &stalls).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else if lines.is_empty() {
        println!("no shops in the database yet: run `kwaishop-sync sync --once` first");
    } else {
        print!("{}", commands::status::render(&lines));
    }
    Ok(())
}

async fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    let url = match &args.db {
        Some(db) if db.contains("://") => db.clone(),
        Some(path) => {
            anyhow::ensure!(
                std::path::Path::new(path).exists(),
                "no database at {path}: run `kwaishop-sync demo` or `kwaishop-sync sync --once` first"
            );
            format!("sqlite://{path}")
        }
        None => match commands::report::demo_database(&args.config.config, DEFAULT_CONFIG) {
            Some(url) => url,
            None => load_config(&args.config)?.database_url,
        },
    };
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let filter = kwaishop_sync::store::ReportFilter {
        shop_id: args.shop,
        from: args.from,
        to: args.to,
    };
    if let (Some(from), Some(to)) = (&filter.from, &filter.to) {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    }
    let report = commands::report::read(&store, &filter, &args.view).await?;
    store.close().await;
    let text = commands::report::render(&report, args.format).map_err(anyhow::Error::msg)?;
    print!("{text}");
    Ok(())
}

async fn run_daemon(args: RunArgs) -> anyhow::Result<()> {
    let opts = kwaishop_sync::daemon::service::ServiceOptions {
        config_path: args.config.config,
        resync_at_start: args.resync,
        listener: None,
    };
    kwaishop_sync::daemon::service::run(opts).await?;
    Ok(())
}

/// A date (Beijing midnight) or an RFC 3339 instant, as epoch ms.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("--since {text:?}: expected YYYY-MM-DD or an RFC 3339 time")
    })?;
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(0);
    Ok(midnight - kwaishop_sync::clock::BEIJING_OFFSET_MS)
}

async fn run_resync(args: ResyncArgs) -> anyhow::Result<()> {
    let (config, store) = open_store(&args.config).await?;
    let shops: Vec<String> = match &args.shop {
        Some(s) => {
            anyhow::ensure!(config.shop(s).is_some(), "no shop {s:?} in the config");
            vec![s.clone()]
        }
        None => config.shops.iter().map(|s| s.id.clone()).collect(),
    };
    let streams: Vec<Stream> = args
        .stream
        .map(|s| vec![s.into()])
        .unwrap_or_else(|| Stream::ALL.to_vec());
    let now = kwaishop_sync::app::clock_for(&config).now_ms();
    let horizon = now - kwaishop_sync::sync::HORIZON_MS;
    let since = match &args.since {
        Some(text) => parse_since(text)?,
        None => horizon,
    };
    if since < horizon {
        eprintln!(
            "note: the platform keeps 90 days; the resync starts at {}",
            kwaishop_sync::clock::format_ms(horizon)
        );
    }
    for shop in &shops {
        store
            .ensure_shop(&kwaishop_sync::store::ShopRow::new(shop))
            .await?;
        for stream in &streams {
            let settle = config
                .stream(stream.as_str())
                .map(|c| c.settle.as_millis() as i64)
                .unwrap_or(60_000);
            let (id, merged) = store
                .request_resync(
                    shop,
                    *stream,
                    kwaishop_sync::store::ResyncKind::Resync,
                    since.max(horizon),
                    now - settle,
                    now,
                )
                .await?;
            println!(
                "{shop} {}: resync #{id} {}",
                stream.as_str(),
                if merged {
                    "(merged into the waiting one)"
                } else {
                    "requested"
                }
            );
        }
    }
    match kwaishop_sync::daemon::wake_daemon(&config.daemon.state_dir) {
        Some(pid) => println!("woke the running daemon (pid {pid})"),
        None => println!(
            "no daemon is running here: the next `kwaishop-sync run` or `sync --once` does it"
        ),
    }
    Ok(())
}

async fn open_store(config: &ConfigArg) -> anyhow::Result<(Config, Store)> {
    let config = load_config(config)?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    Ok((config, store))
}

async fn run_quarantine(cmd: QuarantineCommand) -> anyhow::Result<()> {
    use commands::quarantine::{RetryOutcome, render, retry_one};
    match cmd {
        QuarantineCommand::Ls { config, shop, json } => {
            let (_, store) = open_store(&config).await?;
            let rows = store.quarantined(shop.as_deref()).await?;
            if json {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "shop": r.shop_id, "stream": r.stream.as_str(), "key": r.record_key,
                            "has_id": r.has_id, "error": r.error, "raw": r.raw,
                            "first_seen_ms": r.first_seen_ms, "last_seen_ms": r.last_seen_ms,
                            "times_seen": r.times_seen,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render(&rows));
            }
        }
        QuarantineCommand::Retry { config, shop, keys } => {
            let config = load_config(&config)?;
            let mut app = App::open(config).await?;
            let presence =
                kwaishop_sync::daemon::instance::Presence::enter(&mut app, "quarantine retry")
                    .await?;
            let rows: Vec<_> = app
                .store
                .quarantined(shop.as_deref())
                .await?
                .into_iter()
                .filter(|r| keys.is_empty() || keys.contains(&r.record_key))
                .collect();
            let (mut stored, mut kept) = (0, 0);
            for row in &rows {
                let what = format!("{} {} {}", row.shop_id, row.stream.as_str(), row.record_key);
                match retry_one(&app, row).await {
                    Ok(RetryOutcome::Stored) => {
                        stored += 1;
                        println!("{what}: stored");
                    }
                    Ok(RetryOutcome::Gone) => {
                        stored += 1;
                        println!("{what}: the platform no longer lists it; removed");
                    }
                    Ok(RetryOutcome::Kept(why)) => {
                        kept += 1;
                        println!("{what}: still in quarantine: {why}");
                    }
                    Err(e) => {
                        kept += 1;
                        println!("{what}: not retried: {e}");
                    }
                }
            }
            app.finish_calls().await;
            presence.leave().await;
            println!("{stored} out of quarantine, {kept} still in it");
            anyhow::ensure!(kept == 0, "{kept} record(s) still in quarantine");
        }
        QuarantineCommand::Drop {
            config,
            shop,
            stream,
            key,
        } => {
            let (_, store) = open_store(&config).await?;
            let stream: Stream = stream.into();
            anyhow::ensure!(
                store.release_quarantined(&shop, stream, &key).await?,
                "no record {key} of {shop} {} in quarantine",
                stream.as_str()
            );
            println!("{shop} {} {key}: removed from quarantine", stream.as_str());
        }
    }
    Ok(())
}

async fn run_queue(cmd: QueueCommand) -> anyhow::Result<()> {
    use commands::queue::{parse_duration, parse_status, render};
    match cmd {
        QueueCommand::Ls {
            config,
            status,
            limit,
        } => {
            let (_, store) = open_store(&config).await?;
            let status = status
                .as_deref()
                .map(parse_status)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let stats = store.queue_stats().await?;
            println!(
                "pending {}, running {}, done {}, dead {}, unknown shop {}",
                stats.pending, stats.running, stats.done, stats.dead, stats.unknown_shop
            );
            print!("{}", render(&store.list_events(status, limit).await?));
        }
        QueueCommand::Dead { config, limit } => {
            let (_, store) = open_store(&config).await?;
            print!(
                "{}",
                render(
                    &store
                        .list_events(Some(kwaishop_sync::store::EventStatus::Dead), limit)
                        .await?
                )
            );
        }
        QueueCommand::Retry { config, id, shop } => {
            let (config, store) = open_store(&config).await?;
            if let Some(s) = &shop {
                anyhow::ensure!(config.shop(s).is_some(), "no shop {s:?} in the config");
            }
            let now = kwaishop_sync::app::clock_for(&config).now_ms();
            anyhow::ensure!(
                store.retry_event(id, shop.as_deref(), now).await?,
                "no dead or unknown-shop event {id}"
            );
            println!("event {id} is queued again");
        }
        QueueCommand::Purge {
            config,
            done_older_than,
        } => {
            let (config, store) = open_store(&config).await?;
            let age = parse_duration(&done_older_than).map_err(anyhow::Error::msg)?;
            let now = kwaishop_sync::app::clock_for(&config).now_ms();
            let n = store
                .purge_done_events(now - age.as_millis() as i64)
                .await?;
            println!("removed {n} done event(s)");
        }
    }
    Ok(())
}

async fn run_auth(cmd: AuthCommand) -> anyhow::Result<()> {
    match cmd {
        AuthCommand::Url {
            config,
            shop,
            state,
        } => {
            let config = load_config(&config)?;
            anyhow::ensure!(
                config.shop(&shop).is_some(),
                "no shop {shop:?} in the config"
            );
            let redirect = config.platform.redirect_uri.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "set platform.redirect_uri (the callback registered in the console)"
                )
            })?;
            let url = kwaishop_sync::api::oauth::authorize_url(
                &config.platform.authorize_url,
                &config.platform.app_key,
                &redirect,
                &kwaishop_sync::api::REQUIRED_SCOPES,
                &state,
            );
            println!(
                "Open this link as the merchant of {shop}, approve, then run\n  kwaishop-sync auth exchange --shop {shop} --code <the code in the callback URL>\n\n{url}"
            );
        }
        AuthCommand::Exchange { config, shop, code } => {
            let config = load_config(&config)?;
            anyhow::ensure!(
                config.shop(&shop).is_some(),
                "no shop {shop:?} in the config"
            );
            let app = App::open(config).await?;
            let tokens = app.client.exchange_code(&shop, code.trim()).await?;
            app.store
                .set_shop_status(&shop, kwaishop_sync::store::ShopStatus::Active, None)
                .await?;
            println!(
                "shop {shop} is authorized (open_id {}); the access token expires at {}, the grant at {}",
                tokens.open_id,
                kwaishop_sync::clock::format_ms(tokens.access_expires_at),
                kwaishop_sync::clock::format_ms(tokens.refresh_expires_at)
            );
            print_identity(&app, &shop).await;
        }
        AuthCommand::Import { config, shop, file } => {
            let config = load_config(&config)?;
            anyhow::ensure!(
                config.shop(&shop).is_some(),
                "no shop {shop:?} in the config"
            );
            let app = App::open(config).await?;
            let (config, store) = (&app.config, &app.store);
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let now = kwaishop_sync::app::clock_for(config).now_ms();
            let tokens = commands::auth::parse_pasted(&text, now).map_err(anyhow::Error::msg)?;
            store
                .ensure_shop(&kwaishop_sync::store::ShopRow::new(&shop))
                .await?;
            store.save_tokens(&shop, &tokens).await?;
            store
                .set_shop_status(&shop, kwaishop_sync::store::ShopStatus::Active, None)
                .await?;
            println!(
                "stored the token of shop {shop}; it expires at {}",
                kwaishop_sync::clock::format_ms(tokens.access_expires_at)
            );
            print_identity(&app, &shop).await;
        }
    }
    Ok(())
}

/// Learns who the just-authorized shop is (its pushes are routed by it) and says so; a failure
/// is only a warning: the daemon tries again at its start.
async fn print_identity(app: &App, shop: &str) {
    let within = std::time::Duration::from_secs(30);
    match kwaishop_sync::identity::learn_within(app, shop, within).await {
        Ok(who) => println!(
            "shop {shop} is seller {}{}; its pushes are routed by that id",
            who.seller_id,
            who.name.map(|n| format!(" ({n})")).unwrap_or_default()
        ),
        Err(e) => eprintln!(
            "warning: cannot learn who shop {shop} is yet ({e}); `kwaishop-sync run` tries again at start, and its pushes wait until then"
        ),
    }
}

async fn run_bench(cmd: BenchCommand) -> anyhow::Result<()> {
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
            let r = commands::bench::push(rate, seconds, &path).await?;
            println!(
                "sent {}, acknowledged {}, failed {}; time to acknowledge: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; applied by the worker: {}",
                r.sent, r.acked, r.failed, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.applied
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

async fn run_migrate(arg: ConfigArg) -> anyhow::Result<()> {
    let config = load_config(&arg)?;
    let store = Store::connect(&config.database_url).await?;
    store.migrate().await?;
    println!(
        "the database at {} is up to date",
        kwaishop_sync::store::redact_url(&config.database_url)
    );
    Ok(())
}

fn run_check_config(arg: ConfigArg) -> anyhow::Result<()> {
    let config = load_config(&arg)?;
    println!(
        "{} is valid: {} shop(s), database {}",
        arg.config.display(),
        config.shops.len(),
        kwaishop_sync::store::redact_url(&config.database_url)
    );
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
            Command::Demo(args) => run_demo(args).await,
            Command::Run(args) => run_daemon(args).await,
            Command::Resync(args) => run_resync(args).await,
            Command::Sync(args) => run_sync(args).await,
            Command::Queue(cmd) => run_queue(cmd).await,
            Command::Quarantine(cmd) => run_quarantine(cmd).await,
            Command::Auth(cmd) => run_auth(cmd).await,
            Command::Bench(cmd) => run_bench(cmd).await,
            Command::Status(args) => run_status(args).await,
            Command::Report(args) => run_report(args).await,
            Command::Migrate(arg) => run_migrate(arg).await,
            Command::CheckConfig(arg) => run_check_config(arg),
            Command::Sim(args) => {
                let shutdown = CancellationToken::new();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    stop.cancel();
                });
                commands::sim::run(*args, shutdown).await
            }
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
