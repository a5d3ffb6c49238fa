//! Running resync requests (an operator's `resync`, or the daily deep reconcile): the range is
//! re-read window by window with the request's own cursor, upserted under the version guard
//! (`source = resync`), without touching the live checkpoint. Items have no time range: their
//! resync is a fresh full scan.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::window::{HORIZON_MS, Window};
use super::windowed::{ResyncSink, read_window};
use super::{Counts, RunOutcome, SyncContext, SyncError, SyncProgress, items};
use crate::api::ErrorClass;
use crate::store::{ResyncKind, ResyncRequest, ResyncStatus, Stream, StreamState};

impl SyncContext {
    /// Asks for `[since, now − settle]` of a (shop, stream) to be re-read — the one way a resync
    /// is requested, whoever asks (`resync`, SIGUSR1, `run --resync`, the deep reconcile, the
    /// demo). `since` is held to the platform's 90 days (the default); a request merges into
    /// one already waiting for the stream. Returns the request's id and whether it merged.
    pub async fn request_resync(
        &self,
        shop_id: &str,
        stream: Stream,
        kind: ResyncKind,
        since_ms: Option<i64>,
    ) -> Result<(i64, bool), SyncError> {
        let now = self.clock.now_ms();
        let horizon = now - HORIZON_MS;
        let since = since_ms.unwrap_or(horizon).max(horizon);
        let until = now - self.config.stream(stream).settle.as_millis() as i64;
        Ok(self
            .store
            .request_resync(shop_id, stream, kind, since, until, now)
            .await?)
    }

    /// Asks for the last `days` of orders and refunds of a shop to be re-read (the deep
    /// reconcile: pushes can be lost, and orders keep changing through delivery and after-sales).
    pub async fn request_reconcile(&self, shop_id: &str, days: u32) -> Result<(), SyncError> {
        let since = self.clock.now_ms() - i64::from(days) * crate::clock::DAY_MS;
        for stream in [Stream::Orders, Stream::Refunds] {
            self.request_resync(shop_id, stream, ResyncKind::Reconcile, Some(since))
                .await?;
        }
        Ok(())
    }

    /// Asks for a resync of every configured shop and stream from `since` (default: the 90
    /// days); returns how many requests that made.
    pub async fn request_resync_all(&self, since_ms: Option<i64>) -> Result<usize, SyncError> {
        let mut n = 0;
        for shop in &self.config.shops {
            for stream in Stream::ALL {
                self.request_resync(&shop.id, stream, ResyncKind::Resync, since_ms)
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Runs every open resync request of `shop_id` (all shops when `None`), oldest first.
    pub async fn run_open_resyncs(
        &self,
        shop_id: Option<&str>,
        progress: &dyn SyncProgress,
        cancel: &CancellationToken,
    ) -> Result<Vec<(ResyncRequest, RunOutcome)>, SyncError> {
        let mut done = Vec::new();
        for request in self.store.open_resyncs().await? {
            if shop_id.is_some_and(|s| s != request.shop_id) {
                continue;
            }
            if cancel.is_cancelled() {
                break;
            }
            let outcome = self.run_resync(request.clone(), progress, cancel).await;
            done.push((request, outcome));
        }
        Ok(done)
    }

    /// Runs one request until it is done, stopped, paused or failed.
    pub async fn run_resync(
        &self,
        mut request: ResyncRequest,
        progress: &dyn SyncProgress,
        cancel: &CancellationToken,
    ) -> RunOutcome {
        let started = self.clock.now_ms();
        let run = self
            .begin_run(&request.shop_id, request.stream, request.kind.into())
            .await;
        if request.status == ResyncStatus::Pending {
            request.status = ResyncStatus::Running;
            request.started_at_ms = Some(started);
            if let Err(e) = self.store.save_resync(&request).await {
                let outcome = RunOutcome::Failed {
                    class: None,
                    message: format!("database: {e}"),
                };
                self.end_run(run, &outcome, &Counts::default()).await;
                return outcome;
            }
        }
        let mut counts = Counts::default();
        let result = match request.stream {
            Stream::Items => {
                self.rescan_items(&request.shop_id, progress, cancel, &mut counts)
                    .await
            }
            _ => {
                self.reread_range(&mut request, progress, cancel, &mut counts)
                    .await
            }
        };
        let now = self.clock.now_ms();
        // A tripped defence (a repeated cursor, too many pages) would trip again on the same
        // range: the request ends failed with its message instead of being re-run forever.
        let permanent = matches!(result, Err(SyncError::Protocol(_)));
        let fenced = result.as_ref().is_err_and(SyncError::is_fenced);
        let outcome = self.resync_outcome(&request, result, now).await;
        record_resync(&mut request, &outcome, permanent, now);
        if !fenced && let Err(e) = self.store.save_resync(&request).await {
            warn!(shop = request.shop_id, error = %e, "could not save the resync's progress");
        }
        self.end_run(run, &outcome, &counts).await;
        outcome
    }

    /// The outcome of a resync run's `result`: a stop when another daemon took the lease over,
    /// else as for any run ([`SyncContext::failed_run`]).
    async fn resync_outcome(
        &self,
        request: &ResyncRequest,
        result: Result<RunOutcome, SyncError>,
        now: i64,
    ) -> RunOutcome {
        match result {
            Ok(o) => o,
            // Another daemon took the lease over: it carries the request on; nothing of this
            // run's last page was written, and its progress is not ours to save.
            Err(e) if e.is_fenced() => {
                warn!(shop = request.shop_id, stream = request.stream.as_str(), error = %e, "resync stopped");
                RunOutcome::Stopped
            }
            Err(e) => {
                self.failed_run(&request.shop_id, request.stream, e, now)
                    .await
            }
        }
    }

    /// Re-reads the request's range, window after window, from its stored position.
    async fn reread_range(
        &self,
        request: &mut ResyncRequest,
        progress: &dyn SyncProgress,
        cancel: &CancellationToken,
        counts: &mut Counts,
    ) -> Result<RunOutcome, SyncError> {
        let stream = request.stream;
        let width = (self.config.stream(stream).window.as_millis() as i64).max(60_000);
        loop {
            if cancel.is_cancelled() {
                return Ok(RunOutcome::Stopped);
            }
            let horizon = self.clock.now_ms() - HORIZON_MS;
            let (window, cursor) = match (request.window_begin_ms, request.window_end_ms) {
                // A window stored wider than the width in force is planned again from its
                // start (below), as the live poller does.
                (Some(b), Some(e)) if b >= horizon && e - b <= width => (
                    Window {
                        begin_ms: b,
                        end_ms: e,
                    },
                    request.cursor.clone().unwrap_or_default(),
                ),
                (begin, _) => {
                    // A resync re-reads at most the platform's 90 days.
                    let b = begin
                        .unwrap_or(request.since_ms)
                        .max(request.since_ms)
                        .max(horizon);
                    if b >= request.until_ms {
                        return Ok(RunOutcome::CaughtUp);
                    }
                    (
                        Window {
                            begin_ms: b,
                            end_ms: (b + width).min(request.until_ms),
                        },
                        String::new(),
                    )
                }
            };
            request.window_begin_ms = Some(window.begin_ms);
            request.window_end_ms = Some(window.end_ms);
            progress.window(
                &request.shop_id,
                stream,
                window.begin_ms,
                window.end_ms,
                request.since_ms,
                request.until_ms,
            );
            let shop = request.shop_id.clone();
            let mut sink = ResyncSink {
                request: &mut *request,
            };
            if !read_window(
                self, &shop, stream, window, cursor, &mut sink, progress, cancel, counts,
            )
            .await?
            {
                return Ok(RunOutcome::Stopped);
            }
        }
    }

    /// An item resync: restart the item scan from its first page and run it to the end.
    async fn rescan_items(
        &self,
        shop: &str,
        progress: &dyn SyncProgress,
        cancel: &CancellationToken,
        counts: &mut Counts,
    ) -> Result<RunOutcome, SyncError> {
        let mut state = self
            .store
            .load_state(shop, Stream::Items)
            .await?
            .unwrap_or_else(|| StreamState::new(shop, Stream::Items));
        state.scan_id = None;
        state.cursor = None;
        self.store.save_state(&state).await?;
        items::run(self, shop, progress, cancel, counts).await
    }
}

/// What a resync run's outcome changes in its request: done, failed for good (a tripped
/// defence or a permanent answer), or still running after a passing failure.
fn record_resync(request: &mut ResyncRequest, outcome: &RunOutcome, permanent: bool, now: i64) {
    match outcome {
        RunOutcome::CaughtUp => {
            request.status = ResyncStatus::Done;
            request.finished_at_ms = Some(now);
            request.error = None;
            info!(
                shop = request.shop_id,
                stream = request.stream.as_str(),
                kind = request.kind.as_str(),
                rows = request.rows,
                "resync done"
            );
        }
        // A passing failure (the database, a retryable answer) leaves the request running:
        // the next tick resumes it.
        RunOutcome::Failed { class, message }
            if !permanent && class.is_none_or(ErrorClass::is_retryable) =>
        {
            request.error = Some(message.clone())
        }
        RunOutcome::Failed { message, .. } => {
            warn!(
                shop = request.shop_id,
                stream = request.stream.as_str(),
                error = message,
                "resync failed"
            );
            request.status = ResyncStatus::Failed;
            request.finished_at_ms = Some(now);
            request.error = Some(message.clone());
        }
        _ => {}
    }
}
