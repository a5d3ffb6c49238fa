//! The `kwaishop-sync` command line: parses the arguments, turns the process's signals into
//! calls, and runs the command (each lives in `kwaishop_sync::commands`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kwaishop_sync::commands::{self, ConfigArg};
use kwaishop_sync::daemon::service::Control;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
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
    Demo(commands::demo::DemoOptions),
    /// The service: pollers on their schedules, push receiver, queue worker, token keeper.
    Run(commands::run::RunArgs),
    /// Ask for a range to be re-read (durably), and wake the running daemon.
    Resync(commands::resync::ResyncArgs),
    /// Catch up every shop and stream (or the ones named) and exit.
    Sync(commands::sync::SyncArgs),
    /// Look at and manage the push queue.
    #[command(subcommand)]
    Queue(commands::queue::QueueCommand),
    /// Records that could not be read or stored, set aside while their pages moved on.
    #[command(subcommand)]
    Quarantine(commands::quarantine::QuarantineCommand),
    /// Authorize a shop: the authorize link, the code exchange, or a token from the console.
    #[command(subcommand)]
    Auth(commands::auth::AuthCommand),
    /// Per shop and stream: checkpoint, lag, last run, rows, last error.
    Status(commands::status::StatusArgs),
    /// The reporting views: sales per day, refunds by status and way, sales per item and SKU.
    Report(commands::report::ReportArgs),
    /// Create or upgrade the database schema (every command also does this at start).
    Migrate(ConfigArg),
    /// Validate a config file and list every error in it.
    CheckConfig(ConfigArg),
    /// Run the local simulator of the Kuaishou open platform (for trying, testing, benchmarking).
    Sim(Box<commands::sim::SimArgs>),
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
}

fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let terminal = std::io::stderr().is_terminal();
    // Progress bars and log lines share the terminal: under bars, only warnings are logged.
    // The demo says a line per stage itself, on a terminal or not.
    let bars = terminal && matches!(cli.command, Command::Sync(_));
    let quiet = bars || matches!(cli.command, Command::Demo(_));
    let default = if quiet { "warn" } else { "info" };
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

/// The one place signals are handled. The first SIGTERM or SIGINT cancels the returned token
/// (the command stops gracefully); a second exits at once. With `service`, SIGHUP asks it to
/// reload its config and SIGUSR1 to pick up resync requests; without, they keep their default.
fn handle_signals(service: Option<mpsc::UnboundedSender<Control>>) -> CancellationToken {
    let shutdown = CancellationToken::new();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("warning: cannot install the signal handlers; Ctrl-C ends at once");
        return shutdown;
    };
    let mut controls = service.and_then(|tx| {
        let hup = signal(SignalKind::hangup()).ok()?;
        let usr1 = signal(SignalKind::user_defined1()).ok()?;
        Some((tx, hup, usr1))
    });
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let control = tokio::select! {
                _ = term.recv() => None,
                _ = int.recv() => None,
                Some(c) = next_control(&mut controls) => Some(c),
            };
            match control {
                Some((tx, c)) => {
                    let _ = tx.send(c);
                }
                None if stop.is_cancelled() => {
                    tracing::warn!("second signal: exiting at once");
                    std::process::exit(130);
                }
                None => stop.cancel(),
            }
        }
    });
    shutdown
}

type Controls = (
    mpsc::UnboundedSender<Control>,
    tokio::signal::unix::Signal,
    tokio::signal::unix::Signal,
);

/// The next SIGHUP or SIGUSR1 as a call on the service; never, without one.
async fn next_control(
    controls: &mut Option<Controls>,
) -> Option<(mpsc::UnboundedSender<Control>, Control)> {
    let Some((tx, hup, usr1)) = controls.as_mut() else {
        return std::future::pending().await;
    };
    let control = tokio::select! {
        _ = hup.recv() => Control::Reload,
        _ = usr1.recv() => Control::Resync,
    };
    Some((tx.clone(), control))
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(opts) => commands::demo::run(opts).await,
        Command::Run(args) => {
            let (tx, controls) = mpsc::unbounded_channel();
            commands::run::run(args, handle_signals(Some(tx)), controls).await
        }
        Command::Resync(args) => commands::resync::run(args).await,
        Command::Sync(args) => commands::sync::run(args, handle_signals(None)).await,
        Command::Queue(cmd) => commands::queue::run(cmd).await,
        Command::Quarantine(cmd) => commands::quarantine::run(cmd).await,
        Command::Auth(cmd) => commands::auth::run(cmd).await,
        Command::Bench(cmd) => commands::bench::run(cmd).await,
        Command::Status(args) => commands::status::run(args).await,
        Command::Report(args) => commands::report::run(args).await,
        Command::Migrate(arg) => commands::schema::migrate(arg).await,
        Command::CheckConfig(arg) => commands::schema::check_config(arg),
        Command::Sim(args) => commands::sim::run(*args, handle_signals(None)).await,
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
