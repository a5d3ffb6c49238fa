//! The status page's figures, as `GET /status.json` serves them and `GET /` shows them: per shop
//! its tokens' expiry (never the tokens), quota used today and each stream's checkpoint, lag,
//! rows and errors; the latest runs; the push queue; the platform's answers per method and per
//! hour over the last 24 hours. Everything comes from the database within one deadline (like a
//! scrape), so every daemon on one database shows the same page, and a restart loses nothing.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::ObserveSources;
use super::snapshot::{Reads, ShopFigures, Snapshot, read_with};
use crate::api::Method;
use crate::clock::{HOUR_MS, hour_start};
use crate::store::{ApiCallRow, QueueStats, RunRow, ShopRow, Stream, StreamState};
use crate::sync::StallLimits;

/// How many runs the page lists.
pub const RECENT_RUNS: i64 = 10;
/// How many hours of API calls the page sums up, the current one included.
pub const API_HOURS: i64 = 24;

/// Everything the status page shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub service: &'static str,
    pub version: &'static str,
    /// The app clock's now, which lags and ages are measured against.
    pub generated_at_ms: i64,
    /// The configured calls per shop per China-time day, if any.
    pub daily_quota: Option<u64>,
    pub shops: Vec<ShopView>,
    /// When the shops' `rows` were counted (app clock): a large mirror is counted between
    /// views, not at each.
    pub rows_counted_at_ms: Option<i64>,
    /// `None` when the read failed (as for `queue` and `api_calls`).
    pub runs: Option<Vec<RunView>>,
    pub queue: Option<QueueView>,
    pub api_calls: Option<ApiCallsView>,
    /// Database reads that failed or missed the deadline: their figures are missing.
    pub failed_reads: u64,
}

/// One shop.
#[derive(Debug, Clone, Serialize)]
pub struct ShopView {
    pub shop_id: String,
    pub name: Option<String>,
    /// `active` or `needs_reauth`.
    pub status: &'static str,
    pub status_reason: Option<String>,
    pub access_expires_at_ms: Option<i64>,
    pub refresh_expires_at_ms: Option<i64>,
    /// Calls today (China time), all methods together, from `api_usage`.
    pub calls_today: Option<u64>,
    /// Set while the daily quota is spent.
    pub quota_paused_until_ms: Option<i64>,
    /// Rows per mirror table (`orders`, `refunds`, `items`, `skus`).
    pub rows: BTreeMap<&'static str, i64>,
    pub streams: Vec<StreamView>,
}

/// One stream of a shop.
#[derive(Debug, Clone, Serialize)]
pub struct StreamView {
    pub stream: &'static str,
    /// Whether the stream ever ran (has a stored state).
    pub ran: bool,
    pub checkpoint_ms: Option<i64>,
    /// Now minus the checkpoint.
    pub lag_ms: Option<i64>,
    /// Rows of the stream's table.
    pub rows: Option<i64>,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<i64>,
    /// Runs in a row that ended with `last_error`.
    pub failures_in_row: i64,
    /// The stream's own pause or the shop's quota pause, while it lasts.
    pub paused_until_ms: Option<i64>,
    /// Set when the stream is stalled: how far behind its checkpoint was when its last run
    /// ended "caught up" (further than a window, a schedule interval and the settle delay).
    pub stalled_behind_ms: Option<i64>,
    /// Records of the stream set aside in quarantine.
    pub quarantined: i64,
}

/// One run from the run log.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub id: i64,
    pub shop_id: String,
    pub stream: &'static str,
    pub kind: &'static str,
    pub started_at_ms: i64,
    /// `None` while the run goes on.
    pub duration_ms: Option<i64>,
    pub outcome: Option<String>,
    pub pages: i64,
    pub rows: i64,
    pub calls: i64,
    pub error: Option<String>,
}

/// The push queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub pending: i64,
    pub running: i64,
    pub dead: i64,
    pub unknown_shop: i64,
    pub done: i64,
    /// How long the oldest pending event has waited.
    pub oldest_pending_age_ms: Option<i64>,
}

/// The platform's answers over the last [`API_HOURS`] hours, all shops together.
#[derive(Debug, Clone, Serialize)]
pub struct ApiCallsView {
    /// The first hour counted.
    pub since_ms: i64,
    /// Every method the client calls, then any other name found, by name.
    pub methods: Vec<MethodCalls>,
    /// All methods together.
    pub total: MethodCalls,
    /// One per hour, oldest first, hours without calls included.
    pub hours: Vec<HourCalls>,
}

/// Answers of one method (or of all, in [`ApiCallsView::total`]).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MethodCalls {
    pub method: String,
    pub calls: i64,
    pub ok: i64,
    pub failed: i64,
    /// Failed answers per failure class.
    pub failures: BTreeMap<String, i64>,
    /// `ok / calls`; `None` without calls.
    pub success_rate: Option<f64>,
}

/// Answers in one hour.
#[derive(Debug, Clone, Serialize)]
pub struct HourCalls {
    pub hour_ms: i64,
    pub ok: i64,
    pub failed: i64,
}

/// Reads the report from the database; a failed read leaves its part out and is counted.
pub async fn read_status(sources: &ObserveSources) -> StatusReport {
    let reads = Reads::new();
    let snapshot = read_with(&reads, sources).await;
    let store = &sources.store;
    let since_ms = hour_start(snapshot.now_ms) - (API_HOURS - 1) * HOUR_MS;
    let (runs, calls) = tokio::join!(
        reads.read("runs", store.recent_runs(None, RECENT_RUNS)),
        reads.read("API calls", store.api_calls_since(None, since_ms)),
    );
    reads.warn_failures("status page");
    StatusReport {
        service: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        generated_at_ms: snapshot.now_ms,
        daily_quota: sources.daily_quota,
        shops: shop_views(&snapshot, &sources.stalls),
        rows_counted_at_ms: snapshot.rows_counted_at_ms,
        runs: runs.map(|runs| runs.into_iter().map(run_view).collect()),
        queue: snapshot.queue.map(|q| queue_view(q, snapshot.now_ms)),
        api_calls: calls.map(|rows| api_calls_view(&rows, since_ms)),
        failed_reads: reads.failed(),
    }
}

fn shop_views(s: &Snapshot, stalls: &StallLimits) -> Vec<ShopView> {
    let shops: HashMap<&str, &ShopRow> = s.shops.iter().map(|r| (r.shop_id.as_str(), r)).collect();
    let states: HashMap<(&str, Stream), &StreamState> = s
        .states
        .iter()
        .map(|st| ((st.shop_id.as_str(), st.stream), st))
        .collect();
    s.figures
        .iter()
        .map(|f| {
            let row = shops.get(f.shop_id.as_str()).copied();
            let quota_pause = row
                .and_then(|r| r.quota_paused_until)
                .filter(|t| *t > s.now_ms);
            let streams = Stream::ALL
                .into_iter()
                .map(|stream| {
                    let state = states.get(&(f.shop_id.as_str(), stream)).copied();
                    let mut view = stream_view(stream, state, f, quota_pause, s.now_ms, stalls);
                    view.quarantined = s.quarantined(&f.shop_id, stream);
                    view
                })
                .collect();
            ShopView {
                shop_id: f.shop_id.clone(),
                name: row.and_then(|r| r.name.clone()),
                status: row.map_or("active", |r| r.status.as_str()),
                status_reason: row.and_then(|r| r.status_reason.clone()),
                access_expires_at_ms: f.token_expiry.map(|t| t.0),
                refresh_expires_at_ms: f.token_expiry.map(|t| t.1),
                calls_today: f.calls_today,
                quota_paused_until_ms: quota_pause,
                rows: f.rows.iter().copied().collect(),
                streams,
            }
        })
        .collect()
}

fn stream_view(
    stream: Stream,
    state: Option<&StreamState>,
    figures: &ShopFigures,
    quota_pause: Option<i64>,
    now_ms: i64,
    stalls: &StallLimits,
) -> StreamView {
    let checkpoint_ms = state.and_then(|st| st.checkpoint_ms);
    let own_pause = state
        .and_then(|st| st.paused_until_ms)
        .filter(|t| *t > now_ms);
    StreamView {
        stream: stream.as_str(),
        ran: state.is_some(),
        checkpoint_ms,
        lag_ms: checkpoint_ms.map(|c| (now_ms - c).max(0)),
        rows: figures
            .rows
            .iter()
            .find(|(table, _)| *table == stream.as_str())
            .map(|(_, n)| *n),
        last_success_ms: state.and_then(|st| st.last_success_ms),
        last_error: state.and_then(|st| st.last_error.clone()),
        last_error_at_ms: state.and_then(|st| st.last_error_at_ms),
        failures_in_row: state.map_or(0, |st| st.failures_in_row),
        paused_until_ms: own_pause.max(quota_pause),
        stalled_behind_ms: state.and_then(|st| stalls.stalled_by(st)),
        quarantined: 0,
    }
}

fn run_view(r: RunRow) -> RunView {
    RunView {
        id: r.id,
        stream: r.stream.as_str(),
        duration_ms: r.finished_at_ms.map(|f| (f - r.started_at_ms).max(0)),
        shop_id: r.shop_id,
        kind: r.kind.as_str(),
        started_at_ms: r.started_at_ms,
        outcome: r.outcome,
        pages: r.pages,
        rows: r.rows,
        calls: r.calls,
        error: r.error,
    }
}

fn queue_view(q: QueueStats, now_ms: i64) -> QueueView {
    QueueView {
        pending: q.pending,
        running: q.running,
        dead: q.dead,
        unknown_shop: q.unknown_shop,
        done: q.done,
        oldest_pending_age_ms: q.oldest_pending_received_at_ms.map(|t| (now_ms - t).max(0)),
    }
}

impl MethodCalls {
    fn add(&mut self, outcome: &str, calls: i64) {
        self.calls += calls;
        if outcome == "ok" {
            self.ok += calls;
        } else {
            self.failed += calls;
            *self.failures.entry(outcome.to_string()).or_insert(0) += calls;
        }
        self.success_rate = (self.calls > 0).then(|| self.ok as f64 / self.calls as f64);
    }
}

/// Sums the stored rows per method and per hour.
fn api_calls_view(rows: &[ApiCallRow], since_ms: i64) -> ApiCallsView {
    let mut methods: BTreeMap<String, MethodCalls> = BTreeMap::new();
    for m in Method::ALL {
        let name = m.name().to_string();
        let calls = MethodCalls {
            method: name.clone(),
            ..MethodCalls::default()
        };
        methods.insert(name, calls);
    }
    let mut total = MethodCalls {
        method: "all methods".into(),
        ..MethodCalls::default()
    };
    let mut hours: Vec<HourCalls> = (0..API_HOURS)
        .map(|i| HourCalls {
            hour_ms: since_ms + i * HOUR_MS,
            ok: 0,
            failed: 0,
        })
        .collect();
    for r in rows {
        let method = methods
            .entry(r.method.clone())
            .or_insert_with(|| MethodCalls {
                method: r.method.clone(),
                ..MethodCalls::default()
            });
        method.add(&r.outcome, r.calls);
        total.add(&r.outcome, r.calls);
        let slot = usize::try_from((r.hour_ms - since_ms).div_euclid(HOUR_MS)).ok();
        if let Some(hour) = slot.and_then(|i| hours.get_mut(i)) {
            match r.outcome.as_str() {
                "ok" => hour.ok += r.calls,
                _ => hour.failed += r.calls,
            }
        }
    }
    ApiCallsView {
        since_ms,
        methods: methods.into_values().collect(),
        total,
        hours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, hour_ms: i64, outcome: &str, calls: i64) -> ApiCallRow {
        ApiCallRow {
            method: method.into(),
            hour_ms,
            outcome: outcome.into(),
            calls,
        }
    }

    #[test]
    fn api_calls_add_up_per_method_class_and_hour() {
        let since = 100 * HOUR_MS;
        let list = Method::OrderCursorList.name();
        let rows = [
            row(list, since, "ok", 90),
            row(list, since, "throttled", 6),
            row(list, since + 23 * HOUR_MS, "transient", 4),
            row("open.some.new.api", since + HOUR_MS, "ok", 1),
        ];
        let view = api_calls_view(&rows, since);
        assert_eq!(view.methods.len(), Method::ALL.len() + 1);
        let orders = view
            .methods
            .iter()
            .find(|m| m.method == list)
            .expect("the order list");
        assert_eq!((orders.calls, orders.ok, orders.failed), (100, 90, 10));
        assert_eq!(orders.failures["throttled"], 6);
        assert_eq!(orders.success_rate, Some(0.9));
        let detail = Method::OrderDetail.name();
        let unused = view.methods.iter().find(|m| m.method == detail);
        assert_eq!(unused.map(|m| (m.calls, m.success_rate)), Some((0, None)));
        assert_eq!((view.total.calls, view.total.ok), (101, 91));
        assert_eq!(view.hours.len(), 24);
        assert_eq!((view.hours[0].ok, view.hours[0].failed), (90, 6));
        assert_eq!(view.hours[1].ok, 1);
        assert_eq!(
            (view.hours[23].hour_ms, view.hours[23].failed),
            (since + 23 * HOUR_MS, 4)
        );
    }
}
