//! `kwaishop-sync sync --once`: catch every selected (shop, stream) up and exit, with progress
//! bars on a terminal and plain log lines otherwise, and a summary at the end.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::progress::progress_for_terminal;
use super::{ConfigArg, StreamArg, streams};
use crate::app::App;
use crate::clock::format_ms;
use crate::daemon::instance::Presence;
use crate::daemon::runner::Runner;
use crate::store::Stream;
use crate::sync::{RunOutcome, RunSummary, SyncProgress};

/// What `sync` is told.
#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this shop (its id in the config).
    #[arg(long)]
    pub shop: Option<String>,
    /// Only this stream.
    #[arg(long, value_enum)]
    pub stream: Option<StreamArg>,
    /// Catch up and exit (the only mode of this command; `run` is the service).
    #[arg(long)]
    pub once: bool,
    /// Also re-read the last days of orders and refunds (the deep reconcile; days from the config).
    #[arg(long)]
    pub reconcile: bool,
}

/// `sync --once`: catches the selected shops and streams up, then runs the resyncs waiting for
/// them; stops after the current page at `shutdown`.
pub async fn run(args: SyncArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.once,
        "`sync` catches up and exits: add --once (the service is `kwaishop-sync run`)"
    );
    // One instance among the others: the SQLite file's lock, or on Postgres a share of the QPS
    // budget and the streams' leases.
    let (app, presence) = Presence::open(args.config.load()?, "sync --once").await?;
    let shops = app.shops(args.shop.as_deref())?;
    anyhow::ensure!(!shops.is_empty(), "no [[shops]] in the config");
    let streams = streams(args.stream);
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.cancelled().await;
        eprintln!("stopping after the current page (press Ctrl-C again to exit at once)");
    });
    let progress = progress_for_terminal();
    let runner = presence.runner();
    let summaries = sync_once_as(
        &app,
        &shops,
        &streams,
        progress.clone(),
        shutdown.clone(),
        runner.clone(),
    )
    .await;
    print!("{}", summary_table(&summaries));
    if args.reconcile {
        let cx = app.sync_context();
        for shop in &shops {
            cx.request_reconcile(shop, app.config.sync.reconcile_days)
                .await?;
        }
    }
    // Then the resyncs waiting for these shops and streams (`kwaishop-sync resync`, the deep
    // reconcile).
    let resyncs = resync_once_as(&app, &shops, &streams, progress, shutdown, &runner).await;
    presence.leave().await;
    let unfinished =
        |o: &RunOutcome| matches!(o, RunOutcome::Failed { .. } | RunOutcome::NeedsReauth);
    let mut failed = summaries.iter().filter(|s| unfinished(&s.outcome)).count();
    for (request, outcome) in resyncs? {
        println!(
            "{} {}: resync #{} {}",
            request.shop_id,
            request.stream.as_str(),
            request.id,
            outcome_text(&outcome)
        );
        failed += usize::from(unfinished(&outcome));
    }
    anyhow::ensure!(failed == 0, "{failed} run(s) did not finish; see above");
    Ok(())
}

/// A one-line description of an outcome.
pub fn outcome_text(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::CaughtUp => "caught up".into(),
        RunOutcome::Stopped => "stopped (resumes from the last page)".into(),
        RunOutcome::Paused { until_ms } => {
            format!("quota spent, paused until {}", format_ms(*until_ms))
        }
        RunOutcome::NeedsReauth => {
            "authorization revoked: run `kwaishop-sync auth url` and authorize again".into()
        }
        RunOutcome::Failed { message, .. } => format!("failed: {message}"),
        RunOutcome::Skipped => "skipped: another instance holds its lease and serves it".into(),
    }
}

/// Runs the selected streams of the selected shops concurrently, in a process that owns the
/// database (no leases): [`sync_once_as`] with a runner of its own.
pub async fn sync_once(
    app: &App,
    shops: &[String],
    streams: &[Stream],
    progress: Arc<dyn SyncProgress>,
    cancel: CancellationToken,
) -> Vec<RunSummary> {
    let runner = Arc::new(Runner::new(
        None,
        app.config.daemon.lease,
        app.config.sync.runs_at_once as usize,
    ));
    sync_once_as(app, shops, streams, progress, cancel, runner).await
}

/// Runs the selected streams of the selected shops concurrently (the client's limiters keep the
/// pace), each through `runner` (under its lease when the database is shared: a stream another
/// instance holds is skipped), writes the client's call counts to `api_calls`, and returns the
/// summaries.
pub async fn sync_once_as(
    app: &App,
    shops: &[String],
    streams: &[Stream],
    progress: Arc<dyn SyncProgress>,
    cancel: CancellationToken,
    runner: Arc<Runner>,
) -> Vec<RunSummary> {
    let mut tasks = JoinSet::new();
    for shop in shops {
        for stream in streams {
            if !app.config.stream(*stream).enabled {
                continue;
            }
            let (mut cx, shop, stream, progress, cancel, runner) = (
                app.sync_context(),
                shop.clone(),
                *stream,
                progress.clone(),
                cancel.clone(),
                runner.clone(),
            );
            tasks.spawn(async move {
                let (store, clock) = (cx.store.clone(), cx.clock.clone());
                let (job_shop, job_progress) = (shop.clone(), progress.clone());
                let run = runner
                    .exclusive(&store, &clock, &shop, stream, &cancel, |token, store| {
                        cx.store = store;
                        async move {
                            cx.sync_stream(&job_shop, stream, job_progress.as_ref(), &token)
                                .await
                        }
                    })
                    .await;
                run.unwrap_or_else(|| {
                    progress.finished(&shop, stream, &RunOutcome::Skipped);
                    RunSummary {
                        shop_id: shop,
                        stream,
                        outcome: RunOutcome::Skipped,
                        pages: 0,
                        received: 0,
                        written: 0,
                        checkpoint_ms: None,
                    }
                })
            });
        }
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(summary) = done {
            out.push(summary);
        }
    }
    out.sort_by(|a, b| (&a.shop_id, a.stream.as_str()).cmp(&(&b.shop_id, b.stream.as_str())));
    // The status page's 24 hours include what a one-off sync called.
    app.finish_calls().await;
    out
}

/// Runs the open resync requests of the selected shops and streams in a process that owns the
/// database: [`resync_once_as`] with a runner of its own.
pub async fn resync_once(
    app: &App,
    shops: &[String],
    streams: &[Stream],
    progress: Arc<dyn SyncProgress>,
    cancel: CancellationToken,
) -> Result<Vec<(crate::store::ResyncRequest, RunOutcome)>, crate::sync::SyncError> {
    let runner = Runner::new(
        None,
        app.config.daemon.lease,
        app.config.sync.runs_at_once as usize,
    );
    resync_once_as(app, shops, streams, progress, cancel, &runner).await
}

/// Runs the open resync requests (an operator's `resync`, the deep reconcile) of the selected
/// shops and streams, after the live catch-up, each through `runner` (a request whose stream
/// another instance holds is left to it).
pub async fn resync_once_as(
    app: &App,
    shops: &[String],
    streams: &[Stream],
    progress: Arc<dyn SyncProgress>,
    cancel: CancellationToken,
    runner: &Runner,
) -> Result<Vec<(crate::store::ResyncRequest, RunOutcome)>, crate::sync::SyncError> {
    let mut out = Vec::new();
    for request in app.store.open_resyncs().await? {
        if !shops.contains(&request.shop_id)
            || !streams.contains(&request.stream)
            || cancel.is_cancelled()
        {
            continue;
        }
        let mut cx = app.sync_context();
        let (shop, stream) = (request.shop_id.clone(), request.stream);
        let job_request = request.clone();
        let outcome = runner
            .exclusive(
                &app.store,
                &app.clock,
                &shop,
                stream,
                &cancel,
                |token, store| {
                    cx.store = store;
                    let progress = progress.clone();
                    async move { cx.run_resync(job_request, progress.as_ref(), &token).await }
                },
            )
            .await
            .unwrap_or(RunOutcome::Skipped);
        out.push((request, outcome));
    }
    app.finish_calls().await;
    Ok(out)
}

/// The summary table printed at the end.
pub fn summary_table(summaries: &[RunSummary]) -> String {
    let mut out = format!(
        "{:<16} {:<8} {:>7} {:>9} {:>9}  {:<24} {}\n",
        "shop", "stream", "pages", "received", "written", "checkpoint", "outcome"
    );
    for s in summaries {
        out.push_str(&format!(
            "{:<16} {:<8} {:>7} {:>9} {:>9}  {:<24} {}\n",
            s.shop_id,
            s.stream.as_str(),
            s.pages,
            s.received,
            s.written,
            s.checkpoint_ms.map(format_ms).unwrap_or_else(|| "-".into()),
            outcome_text(&s.outcome)
        ));
    }
    out
}
