//! Writes the client's hourly answer counts to `api_calls` every few seconds, where the status
//! page reads the last 24 hours (the same for every daemon on one database, and across
//! restarts), and drops hours older than [`RETENTION_MS`] once an hour.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::app::App;
use crate::clock::{DAY_MS, hour_start};

/// How often the counts are written: the status page is this far behind at most.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// How long hourly counts are kept.
pub const RETENTION_MS: i64 = 30 * DAY_MS;

/// Flushes every `every` until `shutdown`. It leaves the last flush to the caller, which
/// makes it once every other task (the worker's last fetches) has ended.
pub(crate) async fn flush_loop(app: App, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pruned_hour = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Outside the select: a write in progress is never cut off half-way.
        app.flush_api_calls().await;
        let hour = hour_start(app.clock.now_ms());
        if pruned_hour != Some(hour) {
            match app.store.prune_api_calls(hour - RETENTION_MS).await {
                Ok(_) => pruned_hour = Some(hour),
                Err(e) => warn!(error = %e, "cannot drop old API call counts; trying again later"),
            }
        }
    }
}
