//! `kwaishop-sync sync --once`: catch every selected (shop, stream) up and exit, with progress
//! bars on a terminal and plain log lines otherwise, and a summary at the end.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use std::sync::Arc;

use crate::app::App;
use crate::clock::format_ms;
use crate::daemon::runner::Runner;
use crate::store::Stream;
use crate::sync::{RunOutcome, RunSummary, SyncProgress};

/// Progress bars, one per (shop, stream).
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<(String, Stream), (ProgressBar, u64)>>,
}

impl Bars {
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, shop: &str, stream: Stream) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.entry((shop.to_string(), stream))
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(1000));
                let style =
                    ProgressStyle::with_template("{prefix:>18} [{bar:30}] {percent:>3}% {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(format!("{shop} {}", stream.as_str()));
                (bar, 0)
            })
            .0
            .clone()
    }

    fn add_rows(&self, shop: &str, stream: Stream, rows: usize) -> u64 {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        bars.get_mut(&(shop.to_string(), stream))
            .map(|(_, n)| {
                *n += rows as u64;
                *n
            })
            .unwrap_or(0)
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncProgress for Bars {
    fn window(&self, shop: &str, stream: Stream, begin: i64, end: i64, from: i64, to: i64) {
        let bar = self.bar(shop, stream);
        let span = (to - from).max(1) as f64;
        bar.set_position((((begin - from) as f64 / span) * 1000.0).clamp(0.0, 1000.0) as u64);
        bar.set_message(format!(
            "window {} → {}",
            short_date(begin),
            short_date(end)
        ));
    }

    fn page(&self, shop: &str, stream: Stream, rows: usize, page: i64, of: Option<i64>) {
        let bar = self.bar(shop, stream);
        let total = self.add_rows(shop, stream, rows);
        if let Some(of) = of {
            bar.set_length(of.max(1) as u64);
            bar.set_position(page as u64);
            bar.set_message(format!("page {page}/{of}, {total} records"));
        } else {
            bar.set_message(format!("{total} records"));
        }
    }

    fn finished(&self, shop: &str, stream: Stream, outcome: &RunOutcome) {
        let bar = self.bar(shop, stream);
        if *outcome == RunOutcome::CaughtUp {
            bar.set_position(bar.length().unwrap_or(1000));
        }
        bar.finish_with_message(outcome_text(outcome));
    }
}

/// Log lines instead of bars, for journals and pipes.
#[derive(Debug, Default)]
pub struct LogLines;

impl SyncProgress for LogLines {
    fn window(&self, shop: &str, stream: Stream, begin: i64, end: i64, _from: i64, _to: i64) {
        info!(shop, stream = stream.as_str(), begin = %format_ms(begin), end = %format_ms(end), "window");
    }

    fn finished(&self, shop: &str, stream: Stream, outcome: &RunOutcome) {
        info!(shop, stream = stream.as_str(), outcome = %outcome_text(outcome), "finished");
    }
}

fn short_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
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
    let runner = Arc::new(Runner::new(None, app.config.daemon.lease));
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
            if !app
                .config
                .stream(stream.as_str())
                .is_some_and(|c| c.enabled)
            {
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
    app.flush_api_calls().await;
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
    let runner = Runner::new(None, app.config.daemon.lease);
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
    app.flush_api_calls().await;
    Ok(out)
}

/// The progress reporter for this process: bars on a terminal, log lines otherwise.
pub fn progress_for_terminal() -> Arc<dyn SyncProgress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bars::new())
    } else {
        Arc::new(LogLines)
    }
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
