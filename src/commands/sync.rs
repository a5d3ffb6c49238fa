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

/// Progress bars, one per (shop, stream): how much of its span is read, its records, their
/// rate, the windows in flight and an estimate of the time left.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<(String, Stream), BarState>>,
}

struct BarState {
    bar: ProgressBar,
    rows: u64,
    /// Windows being read side by side, when more than one.
    in_flight: Option<usize>,
    /// The window being read, when one at a time.
    range: Option<String>,
}

impl BarState {
    fn show(&self, page: Option<(i64, i64)>) {
        let secs = self.bar.elapsed().as_secs_f64().max(0.001);
        let rate = self.rows as f64 / secs;
        let mut msg = self
            .range
            .as_ref()
            .map(|r| format!("{r}, "))
            .unwrap_or_default();
        match page {
            Some((page, of)) => msg.push_str(&format!("page {page}/{of}, {} records", self.rows)),
            None => msg.push_str(&format!("{} records", self.rows)),
        }
        msg.push_str(&format!(", {rate:.0}/s"));
        if let Some(n) = self.in_flight {
            msg.push_str(&format!(", {n} windows in flight"));
        }
        self.bar.set_message(msg);
    }
}

impl Bars {
    pub fn new() -> Self {
        Self::with_target(indicatif::ProgressDrawTarget::stderr())
    }

    /// Bars drawn to `target` (hidden in tests).
    pub fn with_target(target: indicatif::ProgressDrawTarget) -> Self {
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the (shop, stream)'s bar, made on first use.
    fn with_bar<T>(&self, shop: &str, stream: Stream, f: impl FnOnce(&mut BarState) -> T) -> T {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let state = bars.entry((shop.to_string(), stream)).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(1000));
            let style = ProgressStyle::with_template(
                "{prefix:>18} [{bar:30}] {percent:>3}% {msg} (left {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{shop} {}", stream.as_str()));
            BarState {
                bar,
                rows: 0,
                in_flight: None,
                range: None,
            }
        });
        f(state)
    }

    /// The (shop, stream)'s bar: its position, length and message.
    pub fn snapshot(&self, shop: &str, stream: Stream) -> (u64, Option<u64>, String) {
        self.with_bar(shop, stream, |s| {
            (s.bar.position(), s.bar.length(), s.bar.message())
        })
    }
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

/// Per mille of `[from, to]` that `done` is.
fn per_mille(done: i64, from: i64, to: i64) -> u64 {
    let span = (to - from).max(1) as f64;
    ((done as f64 / span) * 1000.0).clamp(0.0, 1000.0) as u64
}

impl SyncProgress for Bars {
    fn window(&self, shop: &str, stream: Stream, begin: i64, end: i64, from: i64, to: i64) {
        self.with_bar(shop, stream, |s| {
            s.bar.set_position(per_mille(begin - from, from, to));
            s.in_flight = None;
            s.range = Some(format!(
                "window {} → {}",
                short_date(begin),
                short_date(end)
            ));
            s.show(None);
        });
    }

    fn windows(&self, shop: &str, stream: Stream, done: i64, in_flight: usize, from: i64, to: i64) {
        self.with_bar(shop, stream, |s| {
            // Never back: a resumed batch counts from where it resumed.
            let at = per_mille(done, from, to).max(s.bar.position());
            s.bar.set_position(at);
            s.in_flight = Some(in_flight);
            s.range = None;
            s.show(None);
        });
    }

    fn page(&self, shop: &str, stream: Stream, rows: usize, page: i64, of: Option<i64>) {
        self.with_bar(shop, stream, |s| {
            s.rows += rows as u64;
            match of {
                Some(of) => {
                    s.bar.set_length(of.max(1) as u64);
                    s.bar.set_position(page as u64);
                    s.show(Some((page, of)));
                }
                None => s.show(None),
            }
        });
    }

    fn finished(&self, shop: &str, stream: Stream, outcome: &RunOutcome) {
        self.with_bar(shop, stream, |s| {
            if *outcome == RunOutcome::CaughtUp {
                s.bar.set_position(s.bar.length().unwrap_or(1000));
            }
            s.bar.finish_with_message(outcome_text(outcome));
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_per_stream_moves_with_the_windows_read() {
        let bars = Bars::with_target(indicatif::ProgressDrawTarget::hidden());
        let (from, to) = (0, 100_000);
        bars.windows("s", Stream::Orders, 0, 16, from, to);
        bars.page("s", Stream::Orders, 50, 0, None);
        bars.page("s", Stream::Orders, 50, 0, None);
        bars.windows("s", Stream::Orders, 25_000, 16, from, to);
        let (at, len, msg) = bars.snapshot("s", Stream::Orders);
        assert_eq!((at, len), (250, Some(1000)));
        assert!(
            msg.starts_with("100 records, ") && msg.contains("/s"),
            "{msg}"
        );
        assert!(msg.ends_with("16 windows in flight"), "{msg}");
        // Never back; another stream has its own bar.
        bars.windows("s", Stream::Orders, 10_000, 3, from, to);
        assert_eq!(bars.snapshot("s", Stream::Orders).0, 250);
        assert_eq!(bars.snapshot("s", Stream::Refunds).0, 0);
        // One window at a time: its range.
        bars.window("s", Stream::Refunds, 50_000, 60_000, from, to);
        let (at, _, msg) = bars.snapshot("s", Stream::Refunds);
        assert_eq!(at, 500);
        assert!(
            msg.starts_with("window ") && !msg.contains("in flight"),
            "{msg}"
        );
        bars.finished("s", Stream::Orders, &RunOutcome::CaughtUp);
        assert_eq!(bars.snapshot("s", Stream::Orders).0, 1000);
    }
}
