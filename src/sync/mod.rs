//! The pollers: page through orders and refunds by update-time windows and through items by page
//! number, upserting each page and its cursor in one transaction (I3), so that a crash or a
//! restart resumes where it stopped. Windows, lookback, settle delay, backfill horizon and the
//! defences follow design.md's sync algorithm.

mod items;
mod planner;
mod progress;
mod resync;
mod window;
mod windowed;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::{ApiClient, ApiError, ErrorClass};
use crate::clock::{SharedClock, format_ms};
use crate::config::Config;
use crate::store::{
    FinishedRun, RunEnd, RunKind, ShopStatus, Store, StoreError, Stream, StreamState,
};

pub use progress::{NoProgress, SyncProgress};
pub use window::{HORIZON_MS, Window, plan_window};

/// What a sync run needs: the client, the store, the settings, the clock.
#[derive(Debug, Clone)]
pub struct SyncContext {
    pub client: ApiClient,
    pub store: Store,
    pub config: Arc<Config>,
    pub clock: SharedClock,
}

/// Why a stream's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// Everything up to `now − settle` is mirrored (or the item scan completed).
    CaughtUp,
    /// Asked to stop; the last committed page is the resume point.
    Stopped,
    /// The daily quota is spent until then (epoch ms).
    Paused { until_ms: i64 },
    /// The shop's authorization is gone: it is marked `needs_reauth`.
    NeedsReauth,
    /// The window (or scan) failed; its checkpoint did not move.
    Failed {
        class: Option<ErrorClass>,
        message: String,
    },
    /// Not run: another instance holds the (shop, stream) lease and serves it (one-off
    /// commands on a shared database).
    Skipped,
}

impl RunOutcome {
    /// How the run log keeps it.
    pub fn end(&self) -> RunEnd {
        match self {
            RunOutcome::CaughtUp => RunEnd::CaughtUp,
            RunOutcome::Stopped => RunEnd::Stopped,
            RunOutcome::Paused { .. } => RunEnd::Paused,
            RunOutcome::NeedsReauth => RunEnd::NeedsReauth,
            RunOutcome::Failed { .. } => RunEnd::Failed,
            RunOutcome::Skipped => RunEnd::Skipped,
        }
    }

    /// The word stored in the run log.
    pub fn as_str(&self) -> &'static str {
        self.end().as_str()
    }
}

/// A run open in the run log, from [`SyncContext::begin_run`] to [`SyncContext::end_run`]: the
/// one way polls and resyncs are recorded.
pub(crate) struct OpenRun {
    id: Option<i64>,
    shop_id: String,
    stream: Stream,
    /// The client's calls of the stream's list API when the run began.
    sent_before: u64,
}

/// What one run of one (shop, stream) did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub shop_id: String,
    pub stream: Stream,
    pub outcome: RunOutcome,
    pub pages: u64,
    pub received: u64,
    pub written: u64,
    pub checkpoint_ms: Option<i64>,
}

/// The list API a stream pages through.
pub fn stream_method(stream: Stream) -> crate::api::Method {
    match stream {
        Stream::Orders => crate::api::Method::OrderCursorList,
        Stream::Refunds => crate::api::Method::RefundList,
        Stream::Items => crate::api::Method::ItemList,
    }
}

/// When a windowed stream counts as stalled: its last run ended caught up while its checkpoint
/// was further behind than a window, a schedule interval and the settle delay (each stream's
/// [`crate::config::StreamConfig::stall_after`]). Its runs then report success while the mirror
/// falls behind, so `status`, the status page, `/metrics` and `/healthz` say so. Clones share
/// the limits: [`StallLimits::update`] (a reloaded config) reaches every holder.
#[derive(Debug, Clone, Default)]
pub struct StallLimits {
    limits: Arc<std::sync::RwLock<Vec<(Stream, i64)>>>,
}

impl StallLimits {
    /// The limits of the windowed streams of `config`.
    pub fn from_config(config: &Config) -> Self {
        Self::of(Self::limits_of(|stream| {
            config.stream(stream).stall_after()
        }))
    }

    /// The limits of the default stream settings (a database read without its config: the
    /// demo's).
    pub fn defaults() -> Self {
        Self::of(Self::limits_of(|stream| {
            crate::config::StreamConfig::default_for(stream).stall_after()
        }))
    }

    fn of(limits: Vec<(Stream, i64)>) -> Self {
        Self {
            limits: Arc::new(std::sync::RwLock::new(limits)),
        }
    }

    /// Each windowed stream's limit, from its settings' `stall_after`.
    fn limits_of(stall_after: impl Fn(Stream) -> std::time::Duration) -> Vec<(Stream, i64)> {
        [Stream::Orders, Stream::Refunds]
            .into_iter()
            .map(|stream| (stream, stall_after(stream).as_millis() as i64))
            .collect()
    }

    /// Takes the limits of a new config, for this value and every clone of it.
    pub fn update(&self, config: &Config) {
        let limits = Self::limits_of(|stream| config.stream(stream).stall_after());
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// How far behind the checkpoint was when the stream last caught up, if that is further than
    /// its limit allows.
    pub fn stalled_by(&self, state: &StreamState) -> Option<i64> {
        let limit = self
            .limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(stream, _)| *stream == state.stream)?
            .1;
        let behind = state.last_success_ms? - state.checkpoint_ms?;
        (behind > limit).then_some(behind)
    }
}

/// Whether two failure messages tell the same failure: equal once the platform's request id,
/// which differs at every answer, is left out.
fn same_failure(a: &str, b: &str) -> bool {
    let strip = |m: &str| m.split(" request_id ").next().unwrap_or(m).to_string();
    strip(a) == strip(b)
}

/// Counters a run accumulates.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub pages: u64,
    pub received: u64,
    pub written: u64,
}

impl Counts {
    /// Adds `pages` pages committed with `outcome`.
    pub(crate) fn add(&mut self, pages: u64, outcome: crate::store::PageOutcome) {
        self.pages += pages;
        self.received += outcome.received as u64;
        self.written += outcome.written;
    }
}

/// A failure inside a run, before it is turned into an outcome.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// A defence tripped: a repeated cursor, an empty page claiming more, a runaway window.
    #[error("{0}")]
    Protocol(String),
}

impl SyncError {
    /// Whether the run's lease was taken over by another daemon while it ran: its last write
    /// was rolled back ([`StoreError::Fenced`]) and the run must stop without saving anything.
    pub fn is_fenced(&self) -> bool {
        matches!(self, SyncError::Store(StoreError::Fenced { .. }))
    }
}

impl SyncContext {
    /// Runs one stream of one shop until it is caught up, stopped, paused or failed.
    pub async fn sync_stream(
        &self,
        shop_id: &str,
        stream: Stream,
        progress: &dyn SyncProgress,
        cancel: &CancellationToken,
    ) -> RunSummary {
        let run = self.begin_run(shop_id, stream, RunKind::Poll).await;
        let mut counts = Counts::default();
        let result = match stream {
            Stream::Orders | Stream::Refunds => {
                windowed::run(self, shop_id, stream, progress, cancel, &mut counts).await
            }
            Stream::Items => items::run(self, shop_id, progress, cancel, &mut counts).await,
        };
        let outcome = self.outcome_of(shop_id, stream, result).await;
        let state = self.store.load_state(shop_id, stream).await.ok().flatten();
        self.end_run(run, &outcome, &counts).await;
        progress.finished(shop_id, stream, &outcome);
        RunSummary {
            shop_id: shop_id.to_string(),
            stream,
            outcome,
            pages: counts.pages,
            received: counts.received,
            written: counts.written,
            checkpoint_ms: state.and_then(|s| s.checkpoint_ms),
        }
    }

    /// Opens a run in the log (a failure to is only a warning: the run goes on unrecorded).
    pub(crate) async fn begin_run(&self, shop_id: &str, stream: Stream, kind: RunKind) -> OpenRun {
        let started = self.clock.now_ms();
        let id = match self.store.start_run(shop_id, stream, kind, started).await {
            Ok(id) => Some(id),
            Err(e) => {
                warn!(shop = shop_id, stream = stream.as_str(), error = %e, "could not record the run's start");
                None
            }
        };
        OpenRun {
            id,
            shop_id: shop_id.to_string(),
            stream,
            sent_before: self.client.sent(shop_id, stream_method(stream)),
        }
    }

    /// Closes a run in the log with its outcome, pages, rows and the calls it made.
    pub(crate) async fn end_run(&self, run: OpenRun, outcome: &RunOutcome, counts: &Counts) {
        let Some(id) = run.id else {
            return;
        };
        let calls = self
            .client
            .sent(&run.shop_id, stream_method(run.stream))
            .saturating_sub(run.sent_before);
        let finished = FinishedRun {
            finished_at_ms: self.clock.now_ms(),
            end: outcome.end(),
            pages: counts.pages as i64,
            rows: counts.written as i64,
            calls: calls as i64,
            error: match outcome {
                RunOutcome::Failed { message, .. } => Some(message.clone()),
                _ => None,
            },
        };
        if let Err(e) = self.store.finish_run(id, &finished).await {
            warn!(shop = run.shop_id, stream = run.stream.as_str(), error = %e, "could not record the run");
        }
    }

    /// Turns a run's result into its outcome and records it in the stream's state.
    async fn outcome_of(
        &self,
        shop_id: &str,
        stream: Stream,
        result: Result<RunOutcome, SyncError>,
    ) -> RunOutcome {
        let now = self.clock.now_ms();
        if let Err(e) = &result
            && e.is_fenced()
        {
            // The new holder owns the stream's state now: nothing to record here.
            warn!(shop = shop_id, stream = stream.as_str(), error = %e, "run stopped");
            return RunOutcome::Stopped;
        }
        let mut state = match self.store.load_state(shop_id, stream).await {
            Ok(s) => s.unwrap_or_else(|| StreamState::new(shop_id, stream)),
            Err(e) => {
                return RunOutcome::Failed {
                    class: None,
                    message: format!("database: {e}"),
                };
            }
        };
        let outcome = match result {
            Ok(o) => o,
            Err(e) => self.failed_run(shop_id, stream, e, now).await,
        };
        record_outcome(&mut state, &outcome, now);
        state.updated_at_ms = now;
        if let Err(e) = self.store.save_state(&state).await {
            warn!(shop = shop_id, stream = stream.as_str(), error = %e, "could not record the stream state");
        }
        if outcome == RunOutcome::CaughtUp {
            info!(shop = shop_id, stream = stream.as_str(), checkpoint = ?state.checkpoint_ms.map(format_ms), "caught up");
        }
        outcome
    }

    /// The outcome of a run that failed with `e`: paused for the day, the shop to authorize
    /// again, or failed.
    async fn failed_run(
        &self,
        shop_id: &str,
        stream: Stream,
        e: SyncError,
        now: i64,
    ) -> RunOutcome {
        let e = match e {
            SyncError::Api(e) => e,
            e => {
                error!(shop = shop_id, stream = stream.as_str(), error = %e, "window failed; its checkpoint stays");
                return RunOutcome::Failed {
                    class: None,
                    message: e.to_string(),
                };
            }
        };
        match e.class {
            ErrorClass::QuotaExhausted => {
                let until = e.retry_at_ms.unwrap_or(now);
                warn!(shop = shop_id, stream = stream.as_str(), until = %format_ms(until), "daily quota spent; paused");
                RunOutcome::Paused { until_ms: until }
            }
            ErrorClass::AuthorizationRevoked => {
                error!(shop = shop_id, error = %e, "authorization revoked: the shop needs to authorize the app again");
                if let Err(se) = self
                    .store
                    .set_shop_status(shop_id, ShopStatus::NeedsReauth, Some(&e.message))
                    .await
                {
                    warn!(shop = shop_id, error = %se, "could not mark the shop needs_reauth");
                }
                RunOutcome::NeedsReauth
            }
            class => {
                error!(shop = shop_id, stream = stream.as_str(), class = %class, error = %e, "window failed; its checkpoint stays");
                RunOutcome::Failed {
                    class: Some(class),
                    message: e.to_string(),
                }
            }
        }
    }
}

/// What a run's outcome changes in its stream's state: the last success, the pause, the error
/// and how many runs in a row ended with it.
fn record_outcome(state: &mut StreamState, outcome: &RunOutcome, now: i64) {
    match outcome {
        RunOutcome::CaughtUp => {
            state.last_success_ms = Some(now);
            state.failures_in_row = 0;
            state.last_error = None;
            state.last_error_at_ms = None;
            state.paused_until_ms = None;
        }
        RunOutcome::Paused { until_ms } => state.paused_until_ms = Some(*until_ms),
        RunOutcome::Failed { message, .. } => {
            // The same failure again (the platform's request id aside): counted, so
            // `status` can say the window keeps failing this way rather than once.
            let same = state
                .last_error
                .as_deref()
                .is_some_and(|last| same_failure(last, message));
            state.failures_in_row = if same { state.failures_in_row + 1 } else { 1 };
            state.last_error = Some(message.clone());
            state.last_error_at_ms = Some(now);
        }
        RunOutcome::NeedsReauth => {
            state.last_error = Some("authorization revoked: authorize the app again".into());
            state.last_error_at_ms = Some(now);
        }
        RunOutcome::Stopped | RunOutcome::Skipped => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reloaded config's windows reach every holder of the limits (the status page, `/metrics`
    /// and `/healthz` hold clones made at start).
    #[test]
    fn an_update_reaches_every_clone() {
        let mut config: Config = "[platform]\napp_key = \"ks000000000000000001\"\n\
             app_secret = \"a\"\nsign_secret = \"s\"\n[[shops]]\nid = \"main\"\n"
            .parse()
            .expect("a valid config");
        let limits = StallLimits::from_config(&config);
        let held = limits.clone();
        let mut state = StreamState::new("s", Stream::Orders);
        state.checkpoint_ms = Some(0);
        let before = held
            .limits
            .read()
            .expect("limits")
            .iter()
            .find(|(s, _)| *s == Stream::Orders)
            .expect("orders")
            .1;
        state.last_success_ms = Some(before + 1);
        assert!(held.stalled_by(&state).is_some());
        config.orders.window *= 2;
        limits.update(&config);
        assert_eq!(
            held.stalled_by(&state),
            None,
            "the wider window reached the clone"
        );
    }
}
